"""A task = a prompt source (train / test problems, optional worked solutions) + a prompt template.

The reward is chosen by the ``reward`` config; every built-in task is graded on its final answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from itero.tasks.arithmetic import Problem, make_splits
from itero.tasks.jsonl import read_problems


@dataclass
class Task:
    train: list[Problem]  # RL prompts (and SFT solutions where they have one)
    test: list[Problem]  # held out, for evaluation
    template: str = "{prompt}"  # how a problem's text becomes the model's prompt

    def render(self, problem: Problem) -> str:
        return self.template.replace("{prompt}", problem.prompt)


def build_task(cfg) -> Task:
    """``cfg`` is the ``task`` config section."""
    if cfg.name == "arithmetic":
        a = cfg.arithmetic
        train, test = make_splits(
            a.num_train,
            a.num_test,
            digits=a.digits,
            num_ops=a.num_ops,
            ops=a.ops,
            small_multiplier=a.small_multiplier,
            fixed_ops=a.fixed_ops,
            seed=a.seed,
        )
        return Task(train=train, test=test)
    j = cfg.jsonl
    fields = dict(prompt_field=j.prompt_field, answer_field=j.answer_field, solution_field=j.solution_field)
    train = read_problems(j.train_path, **fields)
    test = read_problems(j.test_path, **fields) if j.test_path else train[: j.num_test]
    if not j.test_path:
        train = train[j.num_test :]
    return Task(train=train, test=test, template=j.template)


__all__ = ["Problem", "Task", "build_task"]
