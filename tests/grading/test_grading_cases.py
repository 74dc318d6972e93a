"""The hand-written case file: every case is one test (see grading_cases.py for the cases)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grading_cases import CASES  # noqa: E402

from itero.grading import grade  # noqa: E402

CASE_LIMIT_SECONDS = 3.0


def _case_id(index: int) -> str:
    category, response, gold, expected = CASES[index]
    return f"{index:03d}-{category}-{'ok' if expected else 'no'}"


@pytest.mark.parametrize("index", range(len(CASES)), ids=_case_id)
def test_case(index):
    category, response, gold, expected = CASES[index]
    verdict = grade(response, gold)
    assert verdict.correct is expected, (
        f"{category}: extracted {verdict.extracted!r} vs gold {gold!r} -> {verdict.method}"
    )
    assert verdict.seconds < CASE_LIMIT_SECONDS
    assert not verdict.timed_out


def test_case_file_is_large_and_covers_every_category():
    categories = {category for category, *_ in CASES}
    assert len(CASES) >= 300
    assert {
        "extract",
        "normalize",
        "rational",
        "wrong",
        "tolerance",
        "symbolic",
        "interval",
        "set",
        "tuple",
        "matrix",
        "equation",
        "choice",
        "text",
        "complex",
        "malformed",
        "adversarial",
    } <= categories
    positives = sum(expected for *_, expected in CASES)
    assert 0.3 < positives / len(CASES) < 0.7, "keep the file balanced between accepts and rejects"
