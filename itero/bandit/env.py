"""The bandit of the samplers paper: one prompt, 20 actions, BT preferences, and its metrics.

The policy is π = softmax(θ) against a uniform reference, so β·log π(a) is the implicit reward of
action a up to a constant that cancels in every pairwise difference.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Drawn by the authors' script (seed 1234567, CPU torch, float32). Hard-coded because torch's RNG
# stream is not a stable interface across versions and devices.
REWARDS = (
    -1.462022185, -0.282395869, 2.455863237, 1.610924125, -1.221372366,
    0.360827059, -2.276941299, -0.568186402, 0.449364424, -0.679287434,
    -0.013017534, -0.271158874, -0.063012026, -0.047575392, -0.196766123,
    0.618166149, -2.185447931, 1.006184578, 0.066295899, 0.159153104,
)  # fmt: skip
BETA = 3.0
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def rewards(dtype: torch.dtype = torch.float32) -> Tensor:
    """The paper's reward vector r, shape (A,)."""
    return torch.tensor(REWARDS, dtype=dtype)


def optimal_value(r: Tensor, beta: float) -> Tensor:
    """V* = max_π V(π) = β·logsumexp(r/β), attained at π* = softmax(r/β)."""
    return beta * torch.logsumexp(r / beta, dim=-1)


def value(theta: Tensor, r: Tensor, beta: float) -> Tensor:
    """V(π) = Σ_a π(a)(r_a − β log π(a)): reward minus β·KL to the uniform reference, up to β log A."""
    logp = torch.log_softmax(theta, dim=-1)
    return (logp.exp() * (r - beta * logp)).sum(-1)


def param_diff(theta: Tensor, r: Tensor, beta: float) -> Tensor:
    """mean_{a,b} |(r_a − β log π_a) − (r_b − β log π_b)|: zero iff π = π*, blind to the constant."""
    gap = r - beta * torch.log_softmax(theta, dim=-1)
    return (gap[:, None] - gap[None, :]).abs().mean()


def metrics(theta: Tensor, r: Tensor, beta: float) -> tuple[Tensor, Tensor, Tensor]:
    """(Param Diff, Value, Value Diff) of the policy softmax(θ)."""
    v = value(theta, r, beta)
    return param_diff(theta, r, beta), v, optimal_value(r, beta) - v
