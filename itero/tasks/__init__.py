"""A task = a prompt source (train / test problems, optional worked solutions) + a prompt template.

The reward is chosen by the ``reward`` config; every built-in task is graded on its final answer.
With a chat template (``task.dataset.chat_template``) the prompt is rendered with the tokenizer's
``apply_chat_template``, so the runtime binds the tokenizer (``Task.bind``) before anything renders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from itero.errors import IteroError
from itero.tasks.arithmetic import Problem, make_splits
from itero.tasks.hub import read_problems


class ChatTemplateError(IteroError, ValueError):
    pass


@dataclass
class Task:
    train: list[Problem]  # RL prompts (and SFT solutions where they have one)
    test: list[Problem]  # held out, for evaluation
    template: str = "{prompt}"  # how a problem's text becomes the model's prompt
    chat_template: bool | str = False  # True: the tokenizer's chat template; a string: this Jinja template
    system_prompt: str | None = None  # a system message before the user's, with a chat template
    tokenizer: object = field(default=None, repr=False)

    def bind(self, tokenizer) -> None:
        """Give the task the tokenizer its chat template needs; a tokenizer without one is an error here."""
        if self.chat_template is True and not getattr(tokenizer, "chat_template", None):
            raise ChatTemplateError(
                "task.dataset.chat_template=true but the model's tokenizer has no chat template; give one as a "
                "Jinja string in task.dataset.chat_template, or set it to false"
            )
        self.tokenizer = tokenizer

    def render(self, problem: Problem) -> str:
        text = self.template.replace("{prompt}", problem.prompt)
        if not self.chat_template:
            return text
        if self.tokenizer is None:
            raise ChatTemplateError("a chat-template task renders prompts with the tokenizer: call Task.bind first")
        messages = [{"role": "user", "content": text}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        override = {"chat_template": self.chat_template} if isinstance(self.chat_template, str) else {}
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **override)

    def columns_index(self) -> Callable[[str, str], Mapping | None] | None:
        """(rendered prompt, gold answer) -> that problem's dataset columns; None when no problem keeps any.
        The index is built on first use, since rendering every problem through a chat template takes time."""
        if not any(p.columns for p in self.train) and not any(p.columns for p in self.test):
            return None
        index: dict[tuple[str, str], Mapping] = {}

        def columns_of(prompt: str, answer: str) -> Mapping | None:
            if not index:
                for p in [*self.train, *self.test]:
                    index.setdefault((self.render(p), p.answer), p.columns)
            return index.get((prompt, answer))

        return columns_of


def build_task(cfg) -> Task:
    """``cfg`` is the ``task`` config section."""
    if cfg.name == "arithmetic":
        train, test = arithmetic_splits(cfg.arithmetic, cfg.arithmetic.num_train)
        return Task(train=train, test=test)
    if cfg.name == "dataset":
        from itero.tasks.dataset import read_splits

        d = cfg.dataset
        train, test = read_splits(d)
        return Task(train, test, template=d.template, chat_template=d.chat_template, system_prompt=d.system_prompt)
    j = cfg.jsonl
    fields = dict(prompt_field=j.prompt_field, answer_field=j.answer_field, solution_field=j.solution_field)
    train = read_problems(j.train_path, **fields)
    test = read_problems(j.test_path, **fields) if j.test_path else train[: j.num_test]
    if not j.test_path:
        train = train[j.num_test :]
    return Task(train=train, test=test, template=j.template)


__all__ = ["Problem", "Task", "build_task"]


def arithmetic_splits(a, num_train: int) -> tuple[list[Problem], list[Problem]]:
    """(train, test) of the arithmetic section ``a`` with ``num_train`` training problems: the same
    seeded sequence whatever ``num_train``, so more training problems extend the split."""
    return make_splits(
        num_train,
        a.num_test,
        digits=a.digits,
        num_ops=a.num_ops,
        ops=a.ops,
        small_multiplier=a.small_multiplier,
        fixed_ops=a.fixed_ops,
        seed=a.seed,
    )


def fresh_problems(task_cfg, n: int) -> list[Problem]:
    """``n`` arithmetic problems after the run's training problems in its generator's sequence: none is
    a training or a test problem (the splits are deduplicated by text)."""
    if task_cfg.name != "arithmetic":
        raise ValueError(
            f"fresh problems exist only for the arithmetic task (this run's task is {task_cfg.name!r}); "
            "use --fresh 0 to retest on the run's test split"
        )
    a = task_cfg.arithmetic
    try:
        train, _ = arithmetic_splits(a, a.num_train + n)
    except ValueError as err:
        raise ValueError(
            f"{n} fresh problems: {err}; the run's splits take {a.num_train + a.num_test} of them, "
            "so ask for fewer (itero retest --fresh, eval.fresh_problems)"
        ) from None
    return train[a.num_train :]
