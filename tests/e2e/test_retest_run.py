"""``itero retest`` on a tiny run: on its own test split and on fresh problems (``eval.fresh_problems``)
it agrees with the loop's evaluation."""

import json

import pytest
from test_loop_features import TINY

from itero.cli import main
from itero.config import load_config
from itero.loop import run


@pytest.mark.slow
def test_retest_of_a_tiny_run_agrees_with_the_loop_and_pairs_fresh_problems(tmp_path, capsys):
    overrides = TINY + [
        "algorithm=raft",
        "loop.iterations=1",
        "eval.fresh_problems=300",
        f"logging.run_dir={tmp_path}",
        "logging.name=r",
    ]
    run_dir = run(load_config(None, overrides))
    logged = [
        json.loads(line)["eval/fresh_greedy_accuracy"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
    ]
    # on the run's own test split the greedy verdicts are the loop's: same accuracy as its eval.json
    assert main(["retest", str(run_dir), "--fresh", "0"]) == 0
    rows = json.loads((run_dir / "retest.json").read_text())["rows"]
    assert [r["checkpoint"] for r in rows] == ["start", "iter_1"]
    for r, d in zip(rows, ("sft", "iter_1")):
        assert r["problems"] == 20
        assert r["accuracy"] == pytest.approx(json.loads((run_dir / d / "eval.json").read_text())["greedy_accuracy"])
    assert rows[0]["difference"] == 0 and rows[0]["gained"] == rows[0]["lost"] == 0
    assert rows[1]["difference"] == pytest.approx((rows[1]["gained"] - rows[1]["lost"]) / 20)
    assert main(["retest", str(run_dir), "--fresh", "300", "--iterations", "1"]) == 0
    out = capsys.readouterr().out
    assert "on 300 problems, paired with the start" in out and "| iter_1 |" in out
    assert json.loads((run_dir / "retest.json").read_text())["problems"] == "300 fresh problems"
    # the loop's eval.fresh_problems decodes the same 300 problems: the same accuracies as the retest
    assert main(["retest", str(run_dir), "--fresh", "300"]) == 0
    retested = [r["accuracy"] for r in json.loads((run_dir / "retest.json").read_text())["rows"]]
    assert retested == pytest.approx(logged) and len(logged) == 2
    # bad input: nothing to retest, an iteration without a checkpoint, a bad --iterations
    assert main(["retest", str(tmp_path / "nope")]) == 2
    assert main(["retest", str(run_dir), "--fresh", "100", "--iterations", "7"]) == 2
    with pytest.raises(SystemExit):  # more fresh problems than the one-digit task has
        main(["retest", str(run_dir), "--fresh", "2000"])
    assert "ask for fewer (itero retest --fresh" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["retest", str(run_dir), "--iterations", "one"])
