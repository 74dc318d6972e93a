"""Math answer grading: extraction, normalisation and equivalence behind every rule-based reward.

    >>> from itero.grading import grade
    >>> grade("... so the answer is $\\boxed{\\frac{1}{2}}$.", "0.5").correct
    True

Importable with the standard library and sympy only; sympy itself is loaded only in the worker
processes that do the symbolic steps (see ``worker.py``).
"""

from .extract import extract_answer
from .grader import DEFAULT_TIMEOUT, Verdict, grade, grade_batch, is_equiv, warm_up


def math_reward(response: str, gold: str) -> float:
    """Rule-based outcome reward: 1.0 if the final answer is correct, else 0.0."""
    return grade(response, gold).reward


__all__ = [
    "DEFAULT_TIMEOUT",
    "Verdict",
    "extract_answer",
    "grade",
    "grade_batch",
    "is_equiv",
    "math_reward",
    "warm_up",
]
