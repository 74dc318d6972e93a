"""Win rate and AlpacaEval-style length-controlled win rate on hand-made preferences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from itero.evaluation.chat_metrics import length_controlled, mean_and_stderr, preference_from_scores, win_rate


def test_ties_count_half_and_the_stderr_is_over_prompts():
    # two samples per prompt: prompt means 1, 0.5, 0.25 (a tie and a loss in the last)
    prefs = [1.0, 1.0, 0.5, 0.5, 0.5, 0.0]
    groups = [0, 0, 1, 1, 2, 2]
    result = win_rate(prefs, groups)
    assert result.win_rate == pytest.approx(3.5 / 6)
    assert (result.wins, result.ties, result.losses) == (2, 3, 1)
    means = np.array([1.0, 0.5, 0.25])
    assert result.stderr == pytest.approx(means.std(ddof=1) / math.sqrt(3))
    assert (result.num_pairs, result.num_prompts) == (6, 3)


def test_a_position_biased_judge_asked_both_orders_gives_ties():
    # a judge that always picks the first output: the policy wins when shown first, loses when second
    first, second = 1.0, 0.0
    prefs = [(first + second) / 2 for _ in range(10)]
    assert win_rate(prefs, range(10)).win_rate == 0.5


def test_reward_model_verdicts():
    assert [preference_from_scores(a, b) for a, b in ((2.0, 1.0), (1.0, 1.0), (0.0, 1.0))] == [1.0, 0.5, 0.0]


def test_equal_lengths_give_the_raw_win_rate_and_its_stderr():
    rng = np.random.default_rng(0)
    prefs = rng.choice([0.0, 0.5, 1.0], size=60, p=[0.3, 0.1, 0.6])
    groups = np.repeat(np.arange(20), 3)
    raw, lc = win_rate(prefs, groups), length_controlled(prefs, np.zeros(60), groups)
    assert lc.win_rate == pytest.approx(raw.win_rate, abs=1e-5)
    assert lc.stderr == pytest.approx(raw.stderr, rel=1e-3)
    assert lc.length_coef == 0.0 and math.isnan(lc.length_scale)


def test_when_the_longer_response_wins_the_lc_win_rate_is_near_half():
    # The judge prefers the longer response (logit = 3 tanh(d/s)), the policy is longer 80 % of the time:
    # the raw win rate is far above 0.5, the length-controlled one is not.
    rng = np.random.default_rng(1)
    n = 4000
    d = np.where(rng.random(n) < 0.8, 1, -1) * rng.integers(1, 200, n)
    p = 1 / (1 + np.exp(-3 * np.tanh(d / d.std(ddof=1))))
    prefs = (rng.random(n) < p).astype(float)
    raw, lc = win_rate(prefs, range(n)), length_controlled(prefs, d, range(n))
    assert raw.win_rate > 0.7
    assert abs(lc.win_rate - 0.5) < 2.5 * lc.stderr + 0.01
    assert lc.length_coef == pytest.approx(3.0, abs=0.4)


def test_longer_always_wins_with_mirrored_lengths_is_exactly_half():
    d = np.array([5, -5, 40, -40, 90, -90, 3, -3], dtype=float)
    prefs = (d > 0).astype(float)  # perfectly separated: the ridge keeps the fit finite
    lc = length_controlled(prefs, d, range(len(d)))
    assert lc.win_rate == pytest.approx(0.5, abs=1e-6)
    assert lc.length_coef > 5 and math.isfinite(lc.length_coef)


def test_lc_stderr_agrees_with_a_seeded_bootstrap_over_prompts():
    rng = np.random.default_rng(2)
    prompts, n = 150, 2
    d = rng.normal(20, 60, prompts * n)
    p = 1 / (1 + np.exp(-(0.4 + 1.0 * np.tanh(d / d.std(ddof=1)))))
    prefs = (rng.random(len(d)) < p).astype(float)
    prefs = np.where(rng.random(len(d)) < 0.1, 0.5, prefs)  # some ties
    groups = np.repeat(np.arange(prompts), n)
    lc = length_controlled(prefs, d, groups)
    boot = np.random.default_rng(123)
    values = []
    for _ in range(300):
        chosen = boot.integers(0, prompts, prompts)
        rows = (chosen[:, None] * n + np.arange(n)).ravel()
        values.append(length_controlled(prefs[rows], d[rows], np.repeat(np.arange(prompts), n)).win_rate)
    assert lc.stderr == pytest.approx(np.std(values, ddof=1), rel=0.2)


def test_mean_and_stderr_over_prompts():
    mean, se = mean_and_stderr([1.0, 3.0, 5.0, 7.0], [0, 0, 1, 1])
    assert mean == 4.0 and se == pytest.approx(np.std([2.0, 6.0], ddof=1) / math.sqrt(2))


def test_bad_preferences_are_refused():
    with pytest.raises(ValueError):
        win_rate([1.5], [0])
    with pytest.raises(ValueError):
        length_controlled([], [], [])
