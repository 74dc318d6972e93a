import json

import pytest

from itero.cli import main
from itero.tracking.compare import compare_table, load_runs
from itero.tracking.rundir import RunDirError


def fake_run(root, name, accuracies):
    run = root / name
    run.mkdir()
    rows = [{"iteration": k, "eval/greedy_accuracy": a, "score/reward_mean": -a} for k, a in enumerate(accuracies)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_table_has_start_best_last_and_gain(tmp_path):
    runs = [fake_run(tmp_path, "raft", [0.34, 0.44, 0.5, 0.49]), fake_run(tmp_path, "dpo", [0.34, 0.31])]
    curves = load_runs(runs, "eval/greedy_accuracy")
    assert curves["dpo"] == [(0, 0.34), (1, 0.31)]
    table = compare_table(curves, "eval/greedy_accuracy").splitlines()
    assert table[2] == "| raft | 34.0% | 50.0% (2) | 49.0% (3) | +15.0 |"
    assert table[3] == "| dpo | 34.0% | 34.0% (0) | 31.0% (1) | -3.0 |"


def test_cli_writes_plot_and_markdown(tmp_path, capsys):
    runs = [fake_run(tmp_path, "a", [0.1, 0.2]), fake_run(tmp_path, "b", [0.1, 0.3])]
    assert main(["compare", *map(str, runs), "--metric", "score/reward_mean", "--out", str(tmp_path / "cmp")]) == 0
    assert (tmp_path / "cmp.png").stat().st_size > 0
    assert "| b | -0.1 | -0.1 (0) | -0.3 (1) | -0.2 |" in (tmp_path / "cmp.md").read_text()


def test_missing_metric_names_what_the_run_has(tmp_path):
    run = fake_run(tmp_path, "a", [0.1])
    with pytest.raises(RunDirError, match="no 'eval/pass@4'; it has: eval/greedy_accuracy, score/reward_mean"):
        load_runs([run], "eval/pass@4")
    with pytest.raises(RunDirError, match="no metrics.jsonl"):
        load_runs([tmp_path / "nothing"], "eval/greedy_accuracy")
