"""Self-check on real data nobody here wrote (``itero grade --check``).

Positive pairs: every reference solution graded against its own gold answer must be accepted.
Negative pairs: the solution of problem i graded against the gold of problem j = i + shift,
for problems whose gold answers differ as normalised strings, must be rejected.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from itero.data import default_data_dir  # lives in itero.data; grading/cli imports it from here

from .equivalence import analyse
from .grader import Verdict, grade_batch

# dataset -> (file, response field, gold field, required acceptance)
DATASETS = {
    "math500": ("math500/test.jsonl", "solution", "answer", 0.995),
    "gsm8k": ("gsm8k/test.jsonl", "answer", "gold_answer", 1.0),
    "minerva_math": ("minerva_math/test.jsonl", "solution", "gold_answer", 1.0),
}
REQUIRED_REJECTION = 0.999
DEFAULT_SHIFTS = tuple(range(1, 11))


@dataclass
class DatasetResult:
    name: str
    accepted: int = 0
    total: int = 0
    rejected: int = 0
    negatives: int = 0
    required: float = 1.0
    seconds: float = 0.0
    timeouts: int = 0
    excluded: int = 0  # shifted pairs left out because the two golds are the same answer
    false_rejects: list = field(default_factory=list)
    false_accepts: list = field(default_factory=list)

    @property
    def acceptance(self) -> float:
        return self.accepted / max(self.total, 1)

    @property
    def rejection(self) -> float:
        return self.rejected / max(self.negatives, 1)

    @property
    def passed(self) -> bool:
        return self.acceptance >= self.required and self.rejection >= REQUIRED_REJECTION


def load_rows(path: Path, limit: int | None = None) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                rows.append(json.loads(line))
            if limit is not None and len(rows) >= limit:
                break
    return rows


def negative_pairs(rows: list[dict], response_field: str, gold_field: str, shifts=DEFAULT_SHIFTS):
    """(i, j) with different gold answers: the solution of i must not pass as the answer of j."""
    size = len(rows)
    golds = [str(row[gold_field]) for row in rows]
    keys = [analyse(gold).key for gold in golds]
    candidates = [(i, (i + shift) % size) for shift in shifts for i in range(size) if size > 1]
    differing = [(i, j) for i, j in candidates if keys[i] != keys[j]]
    # "5" and "x=5" are written differently but are the same answer: such a pair is not a mismatch
    same_value = {
        pair
        for pair, verdict in zip(differing, grade_batch([(f"\\boxed{{{golds[i]}}}", golds[j]) for i, j in differing]))
        if verdict.correct
    }
    return [pair for pair in differing if pair not in same_value], len(candidates) - len(differing) + len(same_value)


def check_dataset(
    name: str, data_dir: Path, limit: int | None = None, workers: int = 1, shifts=DEFAULT_SHIFTS
) -> DatasetResult:
    relative, response_field, gold_field, required = DATASETS[name]
    rows = load_rows(data_dir / relative, limit)
    result = DatasetResult(name, required=required)
    start = time.perf_counter()
    positives = grade_batch([(row[response_field], str(row[gold_field])) for row in rows], workers=workers)
    pairs, result.excluded = negative_pairs(rows, response_field, gold_field, shifts)
    negatives = grade_batch([(rows[i][response_field], str(rows[j][gold_field])) for i, j in pairs], workers=workers)
    result.seconds = time.perf_counter() - start
    result.total, result.negatives = len(rows), len(pairs)
    for index, verdict in enumerate(positives):
        result.accepted += verdict.correct
        result.timeouts += verdict.timed_out
        if not verdict.correct:
            result.false_rejects.append(_describe(index, verdict, rows[index][gold_field]))
    for (i, j), verdict in zip(pairs, negatives):
        result.rejected += not verdict.correct
        result.timeouts += verdict.timed_out
        if verdict.correct:
            result.false_accepts.append(_describe(f"{i}->{j}", verdict, rows[j][gold_field]))
    return result


def _describe(where, verdict: Verdict, gold) -> dict:
    return {"row": where, "extracted": verdict.extracted, "gold": str(gold), "method": verdict.method}


def run_check(data_dir: Path | None = None, limit: int | None = None, workers: int = 1) -> list[DatasetResult]:
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    return [check_dataset(name, data_dir, limit, workers) for name in DATASETS]


def format_report(results: list[DatasetResult], show: int = 10) -> str:
    lines = [f"{'dataset':<14}{'accepted':>18}{'required':>10}{'rejected (mismatched)':>30}{'time':>9}  result"]
    for r in results:
        lines.append(
            f"{r.name:<14}{r.accepted:>6}/{r.total:<5} {100 * r.acceptance:6.2f}%{100 * r.required:>9.1f}%"
            f"{r.rejected:>13}/{r.negatives:<6} {100 * r.rejection:7.3f}%{r.seconds:>8.1f}s  "
            f"{'PASS' if r.passed else 'FAIL'}"
            + (f"  ({r.timeouts} timeouts)" if r.timeouts else "")
            + (f"  [{r.excluded} shifted pairs with equal golds left out]" if r.excluded else "")
        )
        for miss in r.false_rejects[:show]:
            lines.append(f"    not accepted: {miss}")
        for miss in r.false_accepts[:show]:
            lines.append(f"    wrongly accepted: {miss}")
    return "\n".join(lines)
