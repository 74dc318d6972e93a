"""Example reward functions for ``reward.functions`` (configs/examples/custom_reward.yaml uses them).

Every function gets the batch's prompts and responses, then the dataset columns as keyword
arguments: ``answers`` (the gold answers) and each column the task keeps, all lists aligned with
``responses``. It returns one float per response. See docs/extending.md.
"""

from __future__ import annotations

import re

from itero.grading import grade_batch

BOXED_AT_END = re.compile(r"\\boxed\{[^{}]+\}\s*$")


def boxed_format(prompts: list[str], responses: list[str], **columns) -> list[float]:
    """Format reward: 1.0 when the response ends with its answer in \\boxed{...}, else 0.0."""
    return [1.0 if BOXED_AT_END.search(r) else 0.0 for r in responses]


def correctness(prompts: list[str], responses: list[str], answers: list[str], **columns) -> list[float]:
    """Correctness reward: 1.0 when the final answer equals the gold one (itero's math grader), else 0.0."""
    return [1.0 if v.correct else 0.0 for v in grade_batch(list(zip(responses, answers)))]


async def length_penalty(prompts: list[str], responses: list[str], **columns) -> list[float]:
    """An async function is awaited (a judge behind an HTTP API would be one): −0.01 per character past 60."""
    return [-0.01 * max(len(r) - 60, 0) for r in responses]


def compute_score(data_source, solution_str, ground_truth, extra_info=None) -> float:
    """The same correctness as verl's per-sample signature (``style: verl`` in the config)."""
    return float(grade_batch([(solution_str, ground_truth)])[0].correct)
