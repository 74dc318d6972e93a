"""The contexts an algorithm pulls its inputs from (``algorithms/base.py``): log-probs by role, the
critic's values and Monte-Carlo rollouts while preparing a batch, a frozen model's logits while training.

Each input is computed on first use and kept: two roles held by the same model (π_old and π_ref =
the previous iterate) are one forward. Frozen passes split the rows over the data-parallel ranks
and gather them, the same count on every rank for a sharded model.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from itero import distributed
from itero.batch import RolloutBatch
from itero.mc_values import mc_rollout
from itero.models.loading import load_model
from itero.old_logprobs import old_logprobs, sampler_is_the_policy
from itero.runtime import Runtime
from itero.training.forward import compute_logprobs, forward_logits


class PrepareContext:
    """Inputs of iteration ``k``'s selected ``batch``; ``models`` = the algorithm's ``models_needed``."""

    def __init__(self, rt: Runtime, batch: RolloutBatch, k: int, start: Path | None, models: dict, temperature: float):
        self.rt, self.batch, self.k, self.start, self.models = rt, batch, k, start, models
        self.temperature, self.tokenizer = temperature, rt.tokenizer
        self.stats: dict[str, float] = {}
        self._cache: dict[str, Tensor] = {}  # by source, or "old"
        self._per_rank = functools.partial(distributed.current().map_rows, balanced=rt.learner.sharded)

    def model(self, source: str) -> torch.nn.Module:
        return self.rt.models.model(source, self.start)

    def forward(self, model: torch.nn.Module, batch: RolloutBatch) -> Tensor:
        mbs = self.rt.cfg.training.micro_batch_size
        return self._per_rank(lambda b: compute_logprobs(model, b, mbs, self.temperature), batch)

    def logprobs(self, role: str) -> Tensor:
        if role == "old":
            return self._old_logprobs()
        source = self.models[role]
        if source not in self._cache:
            self._cache[source] = self.forward(self.model(source), self.batch)
        return self._cache[source]

    def _old_logprobs(self) -> Tensor:
        """π_old: the policy that sampled, through the learner's forward; the sampler's own log-probs
        where they are that number (``old_logprobs.py``); the previous iterate's forward if one ran."""
        if "previous" in self._cache:
            return self._cache["previous"]
        if "old" not in self._cache:
            policy = self.model("previous")
            reuse = sampler_is_the_policy(self.rt.cfg, self.k, self.temperature)
            mbs = self.rt.cfg.training.micro_batch_size
            old, stats = old_logprobs(self.batch, functools.partial(self.forward, policy), mbs, reuse)
            self._cache["old"] = old
            self.stats.update(stats)
        return self._cache["old"]

    def values(self) -> Tensor:
        from itero.models.value import compute_values

        critic = critic_for(self.rt, self.start, self.models).model
        mbs = self.rt.cfg.training.micro_batch_size
        return self._per_rank(lambda b: compute_values(critic, b, mbs), self.batch)

    def rollout(self, states: Sequence[tuple[int, int]], n: int) -> Tensor:
        self.rt.models.ensure_policy(self.start)
        rollout = mc_rollout(self.rt, self.batch, self.k, n)
        rewards = rollout(list(states))
        self.stats["mc_tokens"] = rollout.counted["tokens"]
        return rewards


class LearnerContext:
    """Frozen models' logits for a loss, per micro-batch; loaded on first use."""

    def __init__(self, rt: Runtime, start: Path | None, models: dict, temperature: float):
        self.rt, self.start, self.models, self.temperature = rt, start, models, temperature
        self._loaded: dict[str, torch.nn.Module] = {}

    def logits(self, role: str, batch: RolloutBatch) -> Tensor:
        source = self.models[role]
        if source not in self._loaded:
            self._loaded[source] = self._frozen(source)
        with torch.no_grad():
            return forward_logits(self._loaded[source], batch)

    def _frozen(self, source: str) -> torch.nn.Module:
        if source == "previous":  # the policy as this iteration started, frozen while the learner moves the live one
            path = str(self.start) if self.start is not None else self.rt.base_path
            return load_model(path, dtype=self.rt.cfg.model.dtype).requires_grad_(False).eval()
        return self.rt.models.model(source, self.start)


def critic_for(rt: Runtime, start: Path | None, models: dict):
    """The critic as ``start`` saved it, or new from the source ``models_needed`` names."""
    return rt.models.ensure_critic(start, models["critic"], rt.algo.schedule(rt.cfg.algorithm).critic_lr)
