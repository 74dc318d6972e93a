"""The algorithm contract: what the loop calls, and the context an algorithm pulls its inputs from.

The loop never reads an algorithm's config fields. It asks the module what to load
(``models_needed``), how to schedule training (``schedule``), and hands ``prepare`` a context: the
algorithm pulls the log-probs, values or Monte-Carlo rollouts it needs from it, each computed
lazily, once, and already split over the data-parallel ranks.

Sources in ``models_needed``: ``"previous"`` is the policy as the iteration started, ``"initial"``
the policy RL starts from (after the SFT warm-up), ``"run:<folder>"`` a folder of this run (RTO's
in-run DPO model), anything else a model folder or hub name. A role ending in ``_logits`` is a model
whose full next-token distributions the loss needs during training (TDPO).

State carried from one iteration to the next (the adaptive KL coefficient) is an ``IterationState``
that ``schedule`` hands over: the stages run iteration k's ``select``, ``prepare``, loss and value
loss with ``state.config(cfg)`` of the state saved after iteration k−1 (a fresh state for k = 1), and
save ``state.update(prepared)``'s result in ``iter_k/<state.name>.json`` before the prepare stage
ends. The sequence of states is a function of the run directory, so a resumed run repeats it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from itero.batch import RolloutBatch

# loss(micro_batch, logprobs (B, R)) -> (loss, metrics); with ``needs_logits`` set on the function the
# learner passes the (B, R, V) logits of the same forward as a third argument
LossFn = Callable[..., tuple[Tensor, dict[str, float]]]


class Context(Protocol):
    """Inputs of one selected batch, pulled by ``prepare`` and computed on first use."""

    temperature: float  # of every log-prob a ratio or KL uses (Schedule.logprobs_at_sampling_temperature)
    tokenizer: Any
    stats: dict[str, float]  # what prepare.json logs; an algorithm adds its own diagnostics here

    def logprobs(self, role: str) -> Tensor:
        """(B, R) log-probs of the batch's responses under ``role``: ``"old"`` (π_old, the sampling
        policy), or any role ``models_needed`` names (``"reference"``, ``"dpo_model"``, ``"teacher"`` …)."""
        ...

    def values(self) -> Tensor:
        """(B, R) the critic's V_old of every response token."""
        ...

    def rollout(self, states: Sequence[tuple[int, int]], n: int) -> Tensor:
        """(N, n) rewards of ``n`` continuations of each state (row, response prefix length)."""
        ...


class TrainContext(Protocol):
    """What a loss may pull per micro-batch while the learner trains."""

    temperature: float

    def logits(self, role: str, batch: RolloutBatch) -> Tensor:
        """(B, R, V) logits of ``role``'s model over ``batch`` (no gradient)."""
        ...


@dataclass(frozen=True)
class PreRun:
    """A run of another algorithm in ``<run>/<folder>/``, from the initial policy; afterwards the
    policy holds its result (RTO's in-run DPO model)."""

    folder: str
    algorithm: Any  # that run's algorithm config
    iterations: int
    lr: float | None = None  # None: the run's training.lr


@dataclass(frozen=True)
class DynamicSampling:
    """DAPO's dynamic sampling, run by the generate stage (``stages/dynamic_sampling.py``): groups whose
    correct flags are all equal are dropped and further prompts of the seeded pool are sampled, round
    after round, until ``loop.prompts_per_iteration`` groups are kept (verl's ``filter_groups``)."""

    max_rounds: int = 0  # generation rounds per iteration at most; 0 = no cap (verl's max_num_gen_batches)
    prompts_per_round: int | None = None  # None: loop.prompts_per_iteration (verl's gen_batch_size)
    train_when_capped: bool = False  # at the cap: train the groups kept so far; False = stop with an error (verl)


@runtime_checkable
class Algorithm(Protocol):
    """One file in ``itero/algorithms/``; ``ALGORITHMS`` maps its name to the module."""

    Config: type
    rows_per_unit: int  # rows that must stay in one micro-batch (2 for a chosen/rejected pair)

    def select(self, batch: RolloutBatch, cfg: Any, rng: torch.Generator) -> tuple[RolloutBatch, dict]: ...

    def prepare(self, batch: RolloutBatch, cfg: Any, ctx: Context | None = None) -> RolloutBatch: ...

    def loss(self, batch: RolloutBatch, logprobs: Tensor, cfg: Any) -> tuple[Tensor, dict[str, float]]: ...

    def learner_loss(self, cfg: Any, ctx: TrainContext) -> LossFn: ...

    def models_needed(self, cfg: Any) -> dict[str, str]: ...

    def schedule(self, cfg: Any) -> Schedule: ...


def plain_loss(loss: Callable, cfg: Any) -> LossFn:
    """The learner's loss for an algorithm whose loss needs log-probs only."""
    return lambda mb, lp: loss(mb, lp, cfg)


def loss_with_logits(loss: Callable, cfg: Any, temperature: float) -> LossFn:
    """The learner's loss with the policy's logits of the same forward (an entropy bonus)."""

    def with_logits(mb: RolloutBatch, lp: Tensor, logits: Tensor):
        return loss(mb, lp, cfg, logits=logits, temperature=temperature)

    with_logits.needs_logits = True
    return with_logits


def no_models(cfg: Any) -> dict[str, str]:
    return {}


def default_schedule(cfg: Any) -> Schedule:
    return Schedule()


class IterationState(Protocol):
    """What an algorithm carries across iterations (module docstring); JSON-able floats as state."""

    name: str  # the file iter_k/<name>.json

    def config(self, cfg: Any) -> Any:
        """The iteration's config: ``cfg`` with the state's values in (β of the adaptive KL)."""
        ...

    def update(self, prepared: RolloutBatch) -> dict[str, float]:
        """Advance the state with the iteration's prepared batch; returns what prepare.json logs."""
        ...

    def state_dict(self) -> dict[str, float]: ...

    def load_state_dict(self, state: dict[str, float]) -> None: ...


@dataclass(frozen=True)
class Schedule:
    """How the loop trains an algorithm, as its config decides."""

    logprobs_at_sampling_temperature: bool = False  # else every log-prob is of softmax(logits) at T = 1
    restart_from_base: bool = False  # each iteration trains the initial policy anew (RestEM)
    actor_frozen_iterations: int = 0  # the first N iterations train the critic only
    critic_lr: float | None = None  # a critic trained after the actor with the module's value_loss
    pre_runs: tuple[PreRun, ...] = ()  # runs of the same loop it needs before its first iteration
    dynamic_sampling: DynamicSampling | None = None  # refill the batch with groups of mixed correctness
    tis_cap: float | None = None  # token weights × min(π_old / π_sampler, tis_cap) (stages/prepare.py)
    state: Callable[[], IterationState] | None = None  # a fresh state carried across iterations
