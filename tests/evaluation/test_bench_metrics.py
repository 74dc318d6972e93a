"""pass@k, maj@k and the benchmark table on hand-computed numbers."""

from __future__ import annotations

import pytest

from itero.evaluation.metrics import (
    average_metrics,
    benchmark_metrics,
    flat_metrics,
    maj_at_k,
    majority_index,
    pass_at_k,
    pass_ks,
    results_table,
)
from itero.grading import is_equiv


@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (5, 2, 1, 2 / 5),  # pass@1 = c / n
        (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2)
        (4, 1, 3, 1 - 1 / 4),  # 1 - C(3,3)/C(4,3)
        (8, 3, 4, 1 - 5 / 70),  # 1 - C(5,4)/C(8,4)
        (4, 0, 4, 0.0),
        (4, 2, 3, 1.0),  # fewer wrong samples than k: some draw must hold a correct one
    ],
)
def test_pass_at_k_hand_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_rejects_k_above_n():
    with pytest.raises(ValueError, match="k <= n"):
        pass_at_k(4, 1, 5)


def test_reported_ks_are_powers_of_two_and_n():
    assert pass_ks(8) == [1, 2, 4, 8]
    assert pass_ks(6) == [1, 2, 4, 6]
    assert pass_ks(1) == [1]
    assert pass_ks(0) == []


def test_majority_groups_equivalent_answers_written_differently():
    answers = ["3", "0.5", "\\frac{1}{2}", "1/2", "3"]
    # With the grader's equivalence the three ways of writing one half are one vote of 3 against 2.
    assert majority_index(answers, is_equiv) == 1
    correct = [is_equiv(a, "\\frac12") for a in answers]
    assert correct == [False, True, True, True, False]
    assert maj_at_k(answers, correct, is_equiv) == 1.0
    # Compared as strings, "3" (twice) would win and the vote would be wrong.
    assert majority_index(answers, lambda a, b: False) == 0
    assert maj_at_k(answers, correct, lambda a, b: False) == 0.0


def test_majority_can_be_wrong_when_pass_at_k_is_right():
    answers, correct = ["3", "3", "0.5"], [False, False, True]
    assert maj_at_k(answers, correct, is_equiv) == 0.0
    assert pass_at_k(3, sum(correct), 3) == 1.0


def test_majority_ties_and_missing_answers():
    assert majority_index(["2", "3"], is_equiv) == 0  # tie: the group seen first
    assert majority_index([None, "4", None, "5", "5.0"], is_equiv) == 3  # None does not vote
    assert majority_index([None, None], is_equiv) is None
    assert maj_at_k([None, None], [False, False], is_equiv) == 0.0


def _rows():
    """2 problems; greedy: right, wrong; 3 samples each: problem 0 right once, problem 1 right twice."""
    rows = [
        {"problem_index": 0, "mode": "greedy", "extracted": "1", "correct": True, "length": 10, "truncated": False},
        {"problem_index": 1, "mode": "greedy", "extracted": None, "correct": False, "length": 30, "truncated": True},
    ]
    samples = {0: [("1", True), ("7", False), ("7", False)], 1: [("0.5", True), ("1/2", True), (None, False)]}
    for index, items in samples.items():
        for answer, ok in items:
            rows.append(
                {
                    "problem_index": index,
                    "mode": "sampled",
                    "extracted": answer,
                    "correct": ok,
                    "length": 20,
                    "truncated": answer is None,
                }
            )
    return rows


def test_benchmark_metrics_from_rows():
    m = benchmark_metrics(_rows(), is_equiv)
    assert m["num_problems"] == 2
    assert m["greedy_accuracy"] == 0.5
    assert m["greedy_response_length"] == 20.0
    assert m["greedy_truncation_rate"] == 0.5
    assert m["mean_accuracy@3"] == pytest.approx(3 / 6)
    assert m["pass@1"] == pytest.approx(0.5 * (1 / 3) + 0.5 * (2 / 3))
    assert m["pass@2"] == pytest.approx(0.5 * (1 - 1 / 3) + 0.5 * 1.0)  # 1 - C(2,2)/C(3,2); c=2 > n-k
    assert m["pass@3"] == 1.0
    assert m["maj@3"] == 0.5  # problem 0 votes "7" (wrong), problem 1 votes one half (right)
    assert m["sampled_truncation_rate"] == pytest.approx(1 / 6)


def test_unequal_sample_counts_are_an_error():
    rows = _rows()[:-1]
    with pytest.raises(ValueError, match="same number of samples"):
        benchmark_metrics(rows, is_equiv)


def test_table_and_flat_metrics_average_over_benchmarks():
    per = {
        "a": {"num_problems": 10, "greedy_accuracy": 0.5, "greedy_response_length": 100.0},
        "b": {"num_problems": 30, "greedy_accuracy": 0.2, "greedy_response_length": 50.0},
    }
    assert average_metrics(per) == {"greedy_accuracy": pytest.approx(0.35), "greedy_response_length": 75.0}
    table = results_table(per)
    lines = table.splitlines()
    assert lines[0] == "| metric | a | b | Average |"
    assert "| greedy_accuracy | 50.0 | 20.0 | 35.0 |" in lines
    assert "| greedy_response_length | 100.0 | 50.0 | 75.0 |" in lines
    assert "| num_problems | 10 | 30 |  |" in lines
    flat = flat_metrics(per)
    assert flat["bench/a/greedy_accuracy"] == 0.5
    assert flat["bench/average/greedy_accuracy"] == pytest.approx(0.35)
    assert "bench/average/num_problems" not in flat
