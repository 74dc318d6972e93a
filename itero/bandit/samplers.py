"""Pair samplers of the bandit study, as weight matrices μ(a, b) over ordered pairs (A, A).

Every function maps (θ, r, β) to a normalised (A, A) matrix, diagonal included. A sampler that
depends on θ is treated as a constant inside each step (θ is detached), as in the paper.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

PairWeights = Callable[[Tensor, Tensor, float], Tensor]


def _normalise(w: Tensor) -> Tensor:
    return w / w.sum()


def _inverse_bt_variance(gap: Tensor) -> Tensor:
    """1/(σ(g)σ(−g)) = 2 + e^g + e^−g for every pairwise gap g_ab = x_a − x_b."""
    g = gap[:, None] - gap[None, :]
    return 2.0 + g.exp() + (-g).exp()


def unif(theta: Tensor, r: Tensor, beta: float) -> Tensor:
    """DPO-Unif: both actions uniform and independent."""
    n = r.shape[-1]
    return torch.full((n, n), 1.0 / n**2, dtype=r.dtype)


def mix_r(theta: Tensor, r: Tensor, beta: float) -> Tensor:
    """DPO-Mix-R: μ ∝ 1/(σ(r_ab)σ(r_ba)), which cancels the BT curvature at every pair (oracle)."""
    return _normalise(_inverse_bt_variance(r))


def mix_p(theta: Tensor, r: Tensor, beta: float) -> Tensor:
    """DPO-Mix-P: Mix-R with r replaced by the implicit reward β log π_θ, recomputed each step."""
    return _normalise(_inverse_bt_variance(beta * theta.detach()))


def mix_p_star(theta: Tensor, r: Tensor, beta: float) -> Tensor:
    """DPO-Mix-P*: Mix-P with each weight capped at the Mix-R weight of the widest true reward gap,
    so a noisy, over-confident θ cannot put all the pairs on one cell."""
    m = r.max() - r.min()
    cap = 2.0 + m.exp() + (-m).exp()
    return _normalise(_inverse_bt_variance(beta * theta.detach()).clamp(max=cap))


# Keys are the legend names of the paper's figures.
SAMPLERS: dict[str, PairWeights] = {
    "DPO-Unif": unif,
    "DPO-Mix-R": mix_r,
    "DPO-Mix-P": mix_p,
    "DPO-Mix-P*": mix_p_star,
}


def resolve(name: str) -> str:
    """Accept 'DPO-Mix-P*', 'mix-p*' or 'mix_p_star' (no shell quoting needed); return the SAMPLERS key."""

    def key(s: str) -> str:
        s = s.lower().replace("_", "-").replace("*", "-star")
        return s[4:] if s.startswith("dpo-") else s

    for full in SAMPLERS:
        if key(full) == key(name):
            return full
    raise ValueError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}")
