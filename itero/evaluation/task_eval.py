"""Evaluate a policy on a task's held-out problems: greedy accuracy, mean accuracy and pass@k over k samples."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from itero.evaluation.metrics import pass_at_k
from itero.generation.base import Generator, SamplingParams
from itero.rewards.math import MathReward
from itero.tasks import Problem, Task


def evaluate_task(
    generator: Generator,
    encode: Callable[[str], list[int]],
    task: Task,
    problems: Sequence[Problem],
    reward: MathReward,
    *,
    k: int,
    temperature: float,
    max_new_tokens: int,
    seed: int,
    chunk: int = 64,
    advance: Callable[[int], None] | None = None,
) -> dict[str, float]:
    prompts = [encode(task.render(p)) for p in problems]
    answers = [p.answer for p in problems]
    out: dict[str, float] = {}
    runs = [("greedy", SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens))]
    if k > 0:
        runs.append(("sampled", SamplingParams(n=k, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)))
    for name, params in runs:
        correct, lengths, truncated = grade_samples(
            generator, prompts, answers, reward, params, chunk=chunk, advance=advance
        )
        n = params.n
        if name == "greedy":
            out["greedy_accuracy"] = sum(correct) / len(correct)
            out["greedy_response_length"] = sum(lengths) / len(lengths)
            out["greedy_truncation_rate"] = sum(truncated) / len(truncated)
        else:
            per_problem = [sum(correct[i * n : (i + 1) * n]) for i in range(len(prompts))]
            out[f"mean_accuracy@{n}"] = sum(correct) / len(correct)
            out[f"pass@{n}"] = sum(pass_at_k(n, c, n) for c in per_problem) / len(per_problem)
            out["sampled_response_length"] = sum(lengths) / len(lengths)
            out["sampled_truncation_rate"] = sum(truncated) / len(truncated)
    return out


def grade_samples(
    generator: Generator,
    prompts: Sequence[list[int]],
    answers: Sequence[str],
    reward: MathReward,
    params: SamplingParams,
    *,
    chunk: int = 64,
    advance: Callable[[int], None] | None = None,
) -> tuple[list[bool], list[int], list[bool]]:
    """Verdict, response length and truncation of each of the ``params.n`` samples per prompt, prompt-major."""
    correct: list[bool] = []
    lengths: list[int] = []
    truncated: list[bool] = []
    for start in range(0, len(prompts), chunk):
        batch = generator.generate(
            list(prompts[start : start + chunk]), params, answers=list(answers[start : start + chunk])
        )
        correct += reward.correct(batch.response_texts, batch.answers)
        lengths += batch.response_lengths.tolist()
        truncated += batch.truncated.tolist()
        if advance is not None:
            advance(len(prompts[start : start + chunk]))
    return correct, lengths, truncated


def greedy_verdicts(
    generator: Generator,
    encode: Callable[[str], list[int]],
    task: Task,
    problems: Sequence[Problem],
    reward: MathReward,
    max_new_tokens: int,
    advance: Callable[[int], None] | None = None,
) -> list[bool]:
    """Each problem decoded greedily once and graded: its verdict, in order (``itero retest`` and the
    loop's ``eval.fresh_problems`` pair these across checkpoints)."""
    prompts = [encode(task.render(p)) for p in problems]
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens)
    return grade_samples(generator, prompts, [p.answer for p in problems], reward, params, advance=advance)[0]
