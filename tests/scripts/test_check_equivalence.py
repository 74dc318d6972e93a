"""scripts/check_equivalence.py's comparison: timings left out, any other changed field reported."""

import json
import runpy
from pathlib import Path

SCRIPT = runpy.run_path(str(Path(__file__).parents[2] / "scripts" / "check_equivalence.py"), run_name="equivalence")


def test_equal_runs_compare_equal_and_timings_never_count(tmp_path):
    a = [{"iteration": 1, "reward_mean": 0.5, "generate_seconds": 3.0, "tokens_per_second": 10.0}]
    b = [{"iteration": 1, "reward_mean": 0.5, "generate_seconds": 9.0, "tokens_per_second": 1.0}]
    for rows, name in ((a, "a"), (b, "b")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert SCRIPT["differences"](SCRIPT["numbers"](tmp_path / "a"), SCRIPT["numbers"](tmp_path / "b"), 1e-6) == []


def test_a_changed_value_a_missing_field_and_a_missing_row_are_reported():
    differences = SCRIPT["differences"]
    assert differences([{"x": 1.0}], [{"x": 1.0 + 1e-3}], 1e-6) == ["row 0 x: 1.0 vs 1.001"]
    assert differences([{"x": 1.0}], [{"x": 1.0 + 1e-9}], 1e-6) == []
    assert differences([{"x": 1.0, "y": 2}], [{"x": 1.0}], 1e-6) == ["row 0 y: 2 vs None"]
    assert differences([{"x": 1.0}], [{"x": 1.0}, {"x": 2.0}], 1e-6) == ["1 rows vs 2"]
