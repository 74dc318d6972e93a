"""``itero retest``: the paired statistics by hand, fresh problems that no split contains
(the tiny run retested end to end: tests/e2e/test_retest_run.py)."""

from math import sqrt

import pytest

from itero.config import load_config
from itero.evaluation.retest import checkpoints, fresh_problems, mcnemar_p, paired_difference
from itero.tasks import build_task

T, F = True, False


def test_mcnemar_exact_p_by_hand():
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(5, 0) == pytest.approx(2 / 32)  # all five discordant problems gained: 2 · 0.5^5
    assert mcnemar_p(1, 3) == pytest.approx(2 * (1 + 4) / 16)  # P(X <= 1), X ~ Bin(4, 1/2), two-sided
    assert mcnemar_p(2, 1) == 1.0  # 2 · (1 + 3) / 8 = 1, capped
    assert mcnemar_p(12, 2) == pytest.approx(2 * (1 + 14 + 91) / 2**14)


def test_paired_difference_by_hand():
    start = [T, T, F, F, F]
    after = [T, F, T, T, F]  # d = 0, −1, +1, +1, 0: mean 0.2, squared deviations sum to 2.8
    r = paired_difference(start, after)
    assert r["accuracy"] == pytest.approx(0.6) and r["start_accuracy"] == pytest.approx(0.4)
    assert r["difference"] == pytest.approx(0.2)
    assert r["standard_error"] == pytest.approx(sqrt(2.8 / 4 / 5))
    assert (r["gained"], r["lost"], r["problems"]) == (2, 1, 5)
    assert r["p_value"] == 1.0
    assert paired_difference(start, start)["standard_error"] == 0.0
    with pytest.raises(ValueError, match="two verdicts per problem"):
        paired_difference(start, after[:4])


def test_fresh_problems_are_in_neither_split_and_deterministic():
    cfg = load_config(None, ["task.arithmetic.num_train=300", "task.arithmetic.num_test=40"]).task
    task = build_task(cfg)
    fresh = fresh_problems(cfg, 500)
    assert len(fresh) == 500 == len({p.prompt for p in fresh})
    seen = {p.prompt for p in task.train + task.test}
    assert not seen & {p.prompt for p in fresh}
    assert [p.prompt for p in fresh_problems(cfg, 500)] == [p.prompt for p in fresh]
    assert [p.prompt for p in fresh_problems(cfg, 100)] == [p.prompt for p in fresh[:100]]  # more = an extension
    with pytest.raises(ValueError, match="only for the arithmetic task"):
        fresh_problems(load_config(None, ["task.name=jsonl", "task.jsonl.train_path=x.jsonl"]).task, 10)


def test_checkpoints_lists_the_start_and_the_asked_iterations(tmp_path):
    for d in ("sft/checkpoint", "iter_1/checkpoint", "iter_3/checkpoint", "iter_2"):
        (tmp_path / d).mkdir(parents=True)
    labels = [label for label, _ in checkpoints(tmp_path, sft_enabled=True)]
    assert labels == ["start", "iter_1", "iter_3"]  # iter_2 has no checkpoint
    assert checkpoints(tmp_path, sft_enabled=False, iterations=[3])[0] == ("start", None)  # the base model
    with pytest.raises(FileNotFoundError, match=r"iteration\(s\) \[2\]"):
        checkpoints(tmp_path, sft_enabled=True, iterations=[2, 3])
