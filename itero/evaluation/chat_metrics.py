"""Win rate and length-controlled win rate of a policy against a reference, from per-pair preferences.

A pair is one policy response and the reference response to the same prompt; its preference y is the
policy's share of the verdict in [0, 1] (1 = policy better, 0.5 = tie, the mean of the two orders
for an LLM judge). With ``--n`` samples a prompt has several pairs, which are not independent of each
other, so every standard error here treats the prompt as the unit (clustered by prompt).

The length-controlled win rate follows AlpacaEval 2 (Dubois et al., 2024, "Length-Controlled
AlpacaEval"; tatsu-lab/alpaca_eval ``metrics/glm_winrate.py``): fit a logistic model of the judge's
preference with the length difference as a regressor and predict it at zero length difference. With
one policy, one reference and no per-instruction difficulty we fit the reduced model

    logit P(policy preferred) = b0 + b1 * tanh(d / s),  d = len(policy) - len(reference) in characters,
                                                         s = sample std of d (n-1)

by maximum likelihood with the soft labels y (AlpacaEval's log loss on probabilities), plus a ridge of
``RIDGE`` on (b0, b1) only so that a perfectly separated set (every longer response wins) still has a
finite fit. The length-controlled win rate is the mean over pairs of sigmoid(b0 + b1 * tanh(0)) =
sigmoid(b0). Its standard error is the delta method, sigmoid'(b0) * sqrt(V00), on the sandwich
covariance V = H^-1 (G/(G-1) sum_g s_g s_g^T) H^-1 clustered by prompt (H: the penalised Hessian;
s_g: the prompt's summed score (y - p) x), which is right for soft labels and correlated samples.
When every pair has the same length difference the length term is dropped and the result equals the
raw win rate and its standard error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RIDGE = 1e-4
_MAX_NEWTON_STEPS = 100


@dataclass(frozen=True)
class WinRate:
    win_rate: float
    stderr: float  # of the mean over prompts of their mean preference (n-1)
    wins: int  # pairs with y > 0.5
    ties: int
    losses: int
    num_pairs: int
    num_prompts: int


@dataclass(frozen=True)
class LengthControlled:
    win_rate: float  # sigmoid(b0)
    stderr: float
    intercept: float  # b0
    length_coef: float  # b1; 0 when the length term was dropped
    length_scale: float  # s, characters; nan when dropped


def _groups(groups: Sequence) -> tuple[np.ndarray, int]:
    _, index = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
    return index, int(index.max()) + 1 if len(index) else 0


def _check(preferences: Sequence[float], groups: Sequence) -> np.ndarray:
    y = np.asarray(preferences, dtype=np.float64)
    if len(y) == 0:
        raise ValueError("no preferences to summarise")
    if len(groups) != len(y) or not np.all((y >= 0) & (y <= 1)):
        raise ValueError("need one group per preference and every preference in [0, 1]")
    return y


def win_rate(preferences: Sequence[float], groups: Sequence) -> WinRate:
    """Mean preference (ties count half) and its standard error over prompts."""
    y = _check(preferences, groups)
    index, count = _groups(groups)
    per_prompt = np.bincount(index, weights=y, minlength=count) / np.bincount(index, minlength=count)
    stderr = float(per_prompt.std(ddof=1) / math.sqrt(count)) if count > 1 else float("nan")
    return WinRate(
        win_rate=float(y.mean()),
        stderr=stderr,
        wins=int((y > 0.5).sum()),
        ties=int((y == 0.5).sum()),
        losses=int((y < 0.5).sum()),
        num_pairs=len(y),
        num_prompts=count,
    )


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


def _loss(beta: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    z = x @ beta
    # -[y log s(z) + (1-y) log(1-s(z))] = y * softplus(-z) + (1-y) * softplus(z), stable for large |z|
    return float((y * np.logaddexp(0.0, -z) + (1 - y) * np.logaddexp(0.0, z)).sum() + 0.5 * RIDGE * beta @ beta)


def fit_logistic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ridge-penalised logistic regression on soft labels by damped Newton; returns (beta, penalised Hessian)."""
    beta = np.zeros(x.shape[1])
    ridge = RIDGE * np.eye(x.shape[1])
    for _ in range(_MAX_NEWTON_STEPS):
        p = _sigmoid(x @ beta)
        grad = x.T @ (p - y) + RIDGE * beta
        hessian = x.T @ (x * (p * (1 - p))[:, None]) + ridge
        step = np.linalg.solve(hessian, grad)
        size, before = 1.0, _loss(beta, x, y)
        while _loss(beta - size * step, x, y) > before and size > 1e-10:  # the full step can overshoot
            size /= 2
        beta = beta - size * step
        if np.max(np.abs(size * step)) < 1e-10:
            break
    p = _sigmoid(x @ beta)
    return beta, x.T @ (x * (p * (1 - p))[:, None]) + ridge


def length_controlled(
    preferences: Sequence[float], length_differences: Sequence[float], groups: Sequence
) -> LengthControlled:
    """AlpacaEval 2's length-controlled win rate on the reduced model of the module docstring."""
    y = _check(preferences, groups)
    d = np.asarray(length_differences, dtype=np.float64)
    if len(d) != len(y):
        raise ValueError("need one length difference per preference")
    scale = float(d.std(ddof=1)) if len(d) > 1 else 0.0
    keep_length = scale > 0 and math.isfinite(scale)
    columns = [np.ones_like(y)] + ([np.tanh(d / scale)] if keep_length else [])
    x = np.stack(columns, axis=1)
    beta, hessian = fit_logistic(x, y)
    index, count = _groups(groups)
    residual = (y - _sigmoid(x @ beta))[:, None] * x
    scores = np.zeros((count, x.shape[1]))
    np.add.at(scores, index, residual)
    lc = float(_sigmoid(np.array([beta[0]]))[0])
    if count > 1:
        inverse = np.linalg.inv(hessian)
        covariance = inverse @ (scores.T @ scores * count / (count - 1)) @ inverse
        stderr = lc * (1 - lc) * math.sqrt(max(float(covariance[0, 0]), 0.0))
    else:
        stderr = float("nan")
    return LengthControlled(
        win_rate=lc,
        stderr=stderr,
        intercept=float(beta[0]),
        length_coef=float(beta[1]) if keep_length else 0.0,
        length_scale=scale if keep_length else float("nan"),
    )


def mean_and_stderr(values: Sequence[float], groups: Sequence) -> tuple[float, float]:
    """Mean of per-pair values (e.g. rewards) and its standard error over prompts."""
    v = np.asarray(values, dtype=np.float64)
    index, count = _groups(groups)
    per_prompt = np.bincount(index, weights=v, minlength=count) / np.bincount(index, minlength=count)
    return float(v.mean()), float(per_prompt.std(ddof=1) / math.sqrt(count)) if count > 1 else float("nan")


def preference_from_scores(policy: float, reference: float) -> float:
    """A reward-model verdict: 1 when the policy's response scores higher, 0.5 on a tie, 0 otherwise."""
    return 1.0 if policy > reference else 0.5 if policy == reference else 0.0
