"""Hard time limits, threads, batches: no input may block the caller."""

from __future__ import annotations

import threading
import time

import pytest

from itero.grading import grade, grade_batch, warm_up

# Equal in value, but sympy's simplify needs about 4 s on it: a real input beyond the 2 s limit.
SLOW_RESPONSE = "\\boxed{(\\sin x + \\cos x)^{30}}"
SLOW_GOLD = "(1+\\sin 2x)^{15}"


@pytest.fixture(scope="module", autouse=True)
def warm_workers():
    warm_up(2)


def _grade_in_thread(response, gold, **kwargs):
    box = {}

    def target():
        start = time.monotonic()
        box["verdict"] = grade(response, gold, **kwargs)
        box["wall"] = time.monotonic() - start

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "grade() blocked its thread"
    return box["verdict"], box["wall"]


def test_slow_symbolic_case_times_out_from_a_thread_and_counts_as_wrong():
    verdict, wall = _grade_in_thread(SLOW_RESPONSE, SLOW_GOLD)
    assert verdict.timed_out
    assert verdict.method == "timeout"
    assert not verdict.correct
    assert wall < 3.0


def test_worker_is_replaced_after_a_timeout():
    verdict, _ = _grade_in_thread(SLOW_RESPONSE, SLOW_GOLD, timeout=0.3)
    assert verdict.timed_out
    after, wall = _grade_in_thread("\\boxed{\\sqrt{8}}", "2\\sqrt{2}")
    assert after.correct and not after.timed_out
    assert wall < 3.0


def test_custom_timeout_is_honoured():
    start = time.monotonic()
    verdict = grade(SLOW_RESPONSE, SLOW_GOLD, timeout=0.2)
    assert verdict.timed_out
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize(
    "response,gold",
    [
        ("\\boxed{10^{10^{10}}}", "1"),
        ("\\boxed{2^{2^{2^{2^{2^{2}}}}}}", "3"),
        ("\\boxed{(10^{10})!}", "1"),
        ("\\boxed{" + "{" * 300 + "1" + "}" * 300 + "}", "1"),
        ("\\boxed{1" + "+\\frac{1}{1" * 30 + "}" * 30 + "}", "2"),
        ("x" * 30000 + "\\boxed{" + "(" * 5000, "1"),
        ("The answer is " + "\\sqrt{" * 2000 + "2" + "}" * 2000, "2"),
    ],
)
def test_adversarial_inputs_finish_quickly_in_a_thread(response, gold):
    verdict, wall = _grade_in_thread(response, gold)
    assert wall < 3.0
    assert not verdict.correct


def test_many_threads_at_once_each_within_the_limit():
    results = [None] * 6
    pairs = [(SLOW_RESPONSE, SLOW_GOLD), ("\\boxed{x^2-1}", "(x-1)(x+1)"), ("\\boxed{\\sqrt{50}}", "5\\sqrt2")] * 2

    def target(index):
        start = time.monotonic()
        verdict = grade(*pairs[index])
        results[index] = (verdict, time.monotonic() - start)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(len(pairs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=15)
    for (verdict, wall), (response, _gold) in zip(results, pairs):
        assert wall < 3.0
        assert verdict.correct == (response != SLOW_RESPONSE)


def test_grade_batch_preserves_order_and_matches_grade():
    pairs = []
    for k in range(40):
        pairs.append((f"\\boxed{{{k}}}", str(k if k % 3 else k + 1)))
        pairs.append((f"\\boxed{{\\sqrt{{{4 * k * k + 8}}}}}", f"2\\sqrt{{{k * k + 2}}}"))
        pairs.append(("no final answer", str(k)))
    expected = [grade(r, g) for r, g in pairs]
    for workers in (1, 2):
        verdicts = grade_batch(pairs, workers=workers)
        assert [v.correct for v in verdicts] == [v.correct for v in expected]
        assert [v.extracted for v in verdicts] == [v.extracted for v in expected]
    assert sum(v.correct for v in expected) == 40 + 26  # k % 3 != 0 boxed ints (26) + all 40 radicals


def test_grade_batch_isolates_a_slow_case():
    pairs = [("\\boxed{1}", "1"), (SLOW_RESPONSE, SLOW_GOLD), ("\\boxed{\\sqrt8}", "2\\sqrt2"), ("\\boxed{3}", "4")]
    verdicts = grade_batch(pairs, workers=2, timeout=0.5)
    assert [v.correct for v in verdicts] == [True, False, True, False]
    assert [v.timed_out for v in verdicts] == [False, True, False, False]
    assert all(v.seconds < 3.0 for v in verdicts)
