"""The exact and empirical runs of the bandit study: plain SGD on θ from zeros, one step per iteration."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from itero.bandit.env import BETA, metrics, rewards
from itero.bandit.objective import exact_targets, preference_grad, sampled_targets
from itero.bandit.samplers import SAMPLERS


@dataclass(frozen=True)
class Setting:
    lr: float
    steps: int
    samplers: tuple[str, ...]
    num_pairs: int | None  # pairs drawn per step; None = exact (population) gradient


# The paper's two configurations. Mix-P runs only with exact gradients and Mix-P* only with
# sampled ones: uncapped Mix-P weights explode on a noisy θ.
SETTINGS: dict[str, Setting] = {
    "exact": Setting(lr=10.0, steps=100, samplers=("DPO-Unif", "DPO-Mix-R", "DPO-Mix-P"), num_pairs=None),
    "empirical": Setting(lr=0.05, steps=3000, samplers=("DPO-Unif", "DPO-Mix-R", "DPO-Mix-P*"), num_pairs=8192),
}


@dataclass
class Trajectory:
    """Metrics of one run; entry i is measured after i updates, i.e. before update i + 1."""

    sampler: str
    param_diff: Tensor  # (steps + 1,)
    value: Tensor  # (steps + 1,)
    value_diff: Tensor  # (steps + 1,)


def sampler_seed(seed: int, sampler: str) -> int:
    """A seed per (seed, sampler), so a sampler's curve does not depend on which others ran."""
    return (seed * 1_000_003 + zlib.crc32(sampler.encode())) % 2**63


@contextmanager
def single_thread() -> Iterator[None]:
    """Run the (A, A)-sized ops on one thread: with a second thread contended by another process,
    hand-offs made an empirical run 60× slower (72 s instead of 1.2 s) on a 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run(
    sampler: str,
    setting: Setting,
    *,
    dtype: torch.dtype = torch.float32,
    seed: int = 1234567,
    lr: float | None = None,
    steps: int | None = None,
    beta: float = BETA,
) -> Trajectory:
    """Train softmax(θ), θ = 0, with SGD on the DPO loss under `sampler`'s pair distribution."""
    lr = setting.lr if lr is None else lr
    steps = setting.steps if steps is None else steps
    pair_weights = SAMPLERS[sampler]
    r = rewards(dtype)
    theta = torch.zeros_like(r)
    generator = torch.Generator().manual_seed(sampler_seed(seed, sampler))
    history = torch.empty(steps + 1, 3, dtype=dtype)
    with single_thread():
        for t in range(steps + 1):
            history[t] = torch.stack(metrics(theta, r, beta))
            if t == steps:
                break
            win, lose = exact_targets(pair_weights(theta, r, beta), r)
            if setting.num_pairs is not None:
                win, lose = sampled_targets(win, lose, setting.num_pairs, generator)
            theta = theta - lr * preference_grad(theta, win, lose, beta)
    return Trajectory(sampler, *history.unbind(1))


def run_all(setting: Setting, samplers: tuple[str, ...] | None = None, **kwargs) -> dict[str, Trajectory]:
    return {name: run(name, setting, **kwargs) for name in (samplers or setting.samplers)}


class Floor(NamedTuple):
    step: int  # updates until Param Diff first comes within `margin`× of the level
    level: float  # median Param Diff over the run's tail


def floor_step(
    param_diff: Tensor,
    tail_fraction: float = 0.2,
    flat_ratio: float = 2.0,
    margin: float = 2.0,
    drop: float = 10.0,
) -> Floor | None:
    """The floor a run ends on, and when it got there; None if it has not levelled off.

    The level is the median of the last `tail_fraction` of the run; the run counts as levelled
    if that level is `drop`× below the start and the first half of the tail sits no more than
    `flat_ratio`× above the second half.
    """
    k = min(param_diff.numel(), max(4, int(param_diff.numel() * tail_fraction)))
    if k < 2:
        return None
    tail = param_diff[-k:]
    level = tail.median().item()
    if tail[: k // 2].median() > flat_ratio * tail[k // 2 :].median() or level * drop > param_diff[0]:
        return None
    return Floor(int((param_diff <= margin * level).nonzero()[0]), level)
