import json

import pytest

from itero.cli import main
from itero.tracking.compare import compare, compare_table, load_runs
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
    assert load_runs(runs, "eval/greedy_accuracy", until=1)["raft"] == [(0, 0.34), (1, 0.44)]
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


def test_budget_axes_are_running_sums_and_the_table_reads_each_run_within_the_smallest_budget(tmp_path):
    def timed_run(name, accuracies, seconds, tokens, mc_tokens=0):
        run = tmp_path / name
        run.mkdir()
        # the start row holds the SFT warm-up's seconds (sft/time.json): not part of RL's budget
        rows = [{"iteration": 0, "eval/greedy_accuracy": accuracies[0], "time/train": 500.0}]
        for k, a in enumerate(accuracies[1:], start=1):  # 4 timed stages of seconds/4 each
            rows.append(
                {
                    "iteration": k,
                    "eval/greedy_accuracy": a,
                    "generate/tokens": tokens,
                    "prepare/mc_tokens": mc_tokens,
                    **{f"time/{s}": seconds / 4 for s in ("generate", "score", "prepare", "train")},
                    "time/eval": 99.0,
                }
            )
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return run

    fast = timed_run("fast", [0.3, 0.4, 0.5, 0.6], seconds=10, tokens=100)
    slow = timed_run("slow", [0.3, 0.7], seconds=25, tokens=100, mc_tokens=300)
    curves = load_runs([fast, slow], "eval/greedy_accuracy", x="seconds")
    assert curves["fast"] == [(0, 0.3), (10, 0.4), (20, 0.5), (30, 0.6)]  # evaluation time is not counted
    assert curves["slow"] == [(0, 0.3), (25, 0.7)]
    table = compare_table(curves, "eval/greedy_accuracy", x="seconds").splitlines()
    assert table[0].endswith("within 25 s |")  # the smaller of the two totals (30 s, 25 s)
    assert table[2].endswith("| 50.0% |") and table[3].endswith("| 70.0% |")  # fast had reached 20 s ≤ 25 s
    tokens = load_runs([fast, slow], "eval/greedy_accuracy", x="tokens")
    assert tokens["slow"] == [(0, 0.3), (400, 0.7)]  # samples + MC continuations
    assert compare_table(tokens, "eval/greedy_accuracy", x="tokens").splitlines()[2].endswith("| 60.0% |")
    # a given budget: fast is read at 300 tokens, slow stopped at 400 and is marked so
    table = compare_table(tokens, "eval/greedy_accuracy", x="tokens", budget=300).splitlines()
    assert table[0].endswith("within 300 tok |")
    assert table[2].endswith("| 60.0% |") and table[3].endswith("| 30.0% |")
    table = compare_table(tokens, "eval/greedy_accuracy", x="tokens", budget=500).splitlines()
    assert table[2].endswith("| 60.0% (stopped at 300 tok) |") and table[3].endswith("| 70.0% (stopped at 400 tok) |")
    with pytest.raises(ValueError, match="--budget needs --x seconds or --x tokens"):
        compare([fast], budget=5)


def test_cli_refuses_a_budget_on_the_iteration_axis(tmp_path, capsys):
    run = fake_run(tmp_path, "a", [0.1, 0.2])
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(run), "--budget", "5", "--out", str(tmp_path / "c")])
    assert exit_info.value.code == 2 and "--budget needs --x seconds or --x tokens" in capsys.readouterr().err
    assert not (tmp_path / "c.png").exists()


def test_retest_accuracy_is_a_metric_when_every_run_was_retested_alike(tmp_path):
    runs = [fake_run(tmp_path, "a", [0.34, 0.40, 0.45]), fake_run(tmp_path, "b", [0.34, 0.30])]

    def retested(run, accuracies, problems="2000 fresh problems"):
        labels = ["start"] + [f"iter_{k}" for k in range(1, len(accuracies))]
        rows = [{"checkpoint": c, "accuracy": a, "difference": a - accuracies[0]} for c, a in zip(labels, accuracies)]
        (run / "retest.json").write_text(json.dumps({"problems": problems, "rows": rows}))

    with pytest.raises(RunDirError, match="no retest.json: run `itero retest"):
        load_runs(runs, "retest/accuracy")
    retested(runs[0], [0.37, 0.39])  # iteration 2 not retested: the curve skips it
    retested(runs[1], [0.37, 0.36, 0.35][:2])
    curves = load_runs(runs, "retest/accuracy")
    assert curves == {"a": [(0, 0.37), (1, 0.39)], "b": [(0, 0.37), (1, 0.36)]}
    assert load_runs(runs, "retest/difference")["a"][1][1] == pytest.approx(0.02)
    assert "| a | 37.0% | 39.0% (1) | 39.0% (1) | +2.0 |" in compare_table(curves, "retest/accuracy")
    retested(runs[1], [0.37, 0.36], problems="the test split (200 problems)")
    with pytest.raises(RunDirError, match="retested on different problems"):
        load_runs(runs, "retest/accuracy")
