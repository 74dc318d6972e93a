"""Reference solutions against their own gold (accept) and against other problems' golds (reject).

A subset keeps the suite fast; ``itero grade --check`` runs the full data.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from itero.grading.check import DATASETS, REQUIRED_REJECTION, check_dataset

DATA_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
SUBSET_ROWS = 250


@pytest.mark.parametrize("name", list(DATASETS))
def test_reference_solutions_on_real_data(name):
    if not (DATA_DIR / DATASETS[name][0]).is_file():
        pytest.skip(f"{DATA_DIR} has no {name} data")
    result = check_dataset(name, DATA_DIR, limit=SUBSET_ROWS, shifts=(1, 2, 5))
    assert result.total == min(SUBSET_ROWS, result.total) and result.total > 100
    assert result.negatives > 2 * result.total
    assert result.acceptance >= result.required, result.false_rejects[:5]
    assert result.rejection >= REQUIRED_REJECTION, result.false_accepts[:5]
    assert result.timeouts == 0
