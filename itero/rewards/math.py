"""Rule-based math reward on the final answer, graded by ``itero.grading``.

Three values, as the sources use them: correct, wrong-but-answered, no answer (no \\boxed{} or
other final-answer marker, or cut off by truncation). Presets: Online-DPO-R1 1 / −0.5 / −1,
VinePPO 1 / 0 / 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from itero.grading import Verdict, grade_batch
from itero.rewards.state import NormState


class RewardFn(Protocol):
    """What the loop scores with: the math grader, a reward model, or the weighted functions of
    ``reward.functions`` (``runtime.build_reward``)."""

    last_metrics: dict[str, float]  # diagnostics of the last graded batch, logged in score.json

    def grade(
        self, responses: Sequence[str], answers: Sequence[str], prompts: Sequence[str] | None = None
    ) -> tuple[list[float], list[bool]]:
        """(rewards, the grader's correct flags), in input order."""
        ...

    def correct(self, responses: Sequence[str], answers: Sequence[str]) -> list[bool]:
        """The verifier's correct flags alone: no reward model is called, no running normaliser moves
        (DAPO's dynamic sampling, evaluation). All False where the reward has no verifier."""
        ...

    def state_dict(self) -> dict:
        """The running state a resumed run needs (a reward model's normaliser); {} when stateless."""
        ...

    def load_state_dict(self, state: dict | None) -> None:
        """Continue from ``state``; None starts afresh."""
        ...


class MathReward(NormState):
    def __init__(
        self,
        correct: float = 1.0,
        wrong: float = -0.5,
        no_answer: float = -1.0,
        workers: int = 1,
        extraction: str = "strict",
    ):
        self.values = (correct, wrong, no_answer)
        self.workers = workers
        self.extraction = extraction  # "strict" or "lenient" (itero.grading.extract)
        self.last_metrics: dict[str, float] = {}

    def value(self, verdict: Verdict) -> float:
        correct, wrong, no_answer = self.values
        if verdict.extracted is None:
            return no_answer
        return correct if verdict.correct else wrong

    def grade(
        self, responses: Sequence[str], answers: Sequence[str], prompts: Sequence[str] | None = None
    ) -> tuple[list[float], list[bool]]:
        """(rewards, correct flags), in input order. ``prompts`` is unused (RewardModel.grade's signature)."""
        verdicts = grade_batch(list(zip(responses, answers)), workers=self.workers, mode=self.extraction)
        return [self.value(v) for v in verdicts], [v.correct for v in verdicts]

    def correct(self, responses: Sequence[str], answers: Sequence[str]) -> list[bool]:
        return self.grade(responses, answers)[1]

    def __call__(self, responses: Sequence[str], answers: Sequence[str]) -> list[float]:
        return self.grade(responses, answers)[0]
