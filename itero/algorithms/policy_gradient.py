"""What GRPO, REINFORCE++, RLOO, PPO, VinePPO and RTO share: clip / KL config fields, the token-level
clipped loss, diagnostics.

Not an algorithm itself (it is not in ALGORITHMS): each of those files adds its baseline (``prepare``)
and picks the loss. The ratio ρ_t = π_θ(y_t)/π_old(y_t) uses ``old_logprobs`` that the loop recomputes
with the learner before training (``needs_old_logprobs``). By default every log-prob (old, ref, the
trained one) is of softmax(logits / T) at the sampling temperature T, as TRL and VinePPO do, so the
ratio compares the distribution the rollouts really came from; ``logprobs_at_sampling_temperature:
false`` uses T = 1.

β can move between iterations (``kl_ctrl: adaptive``, Ziegler et al. 2019 as verl's ``algorithm.kl_ctrl``):
iteration k runs with the β the controller holds after iteration k−1's update, and its own prepared
batch's KL(π_old‖π_ref) then updates it (:class:`AdaptiveKLCoef`, carried by the loop as an
``IterationState``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ClassVar, Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor

from itero.algorithms.base import Context, LossFn, Schedule, TrainContext, loss_with_logits, plain_loss
from itero.batch import RolloutBatch
from itero.core.advantages import scale_negative_advantages, zero_variance_group_fraction
from itero.core.kl import AdaptiveKLController, kl_estimate, mean_sequence_kl
from itero.core.logprobs import token_entropy
from itero.core.losses import clipped_pg_loss, entropy_bonus_loss
from itero.core.masked import mean_metric
from itero.schema import Section

# dr-grpo = Σ / (B · L), TRL's dr_grpo; seq-mean-token-sum-norm is the same mode under its older name,
# which is not verl's mode of that name (verl sums the sequences: B times larger per micro-batch of B)
LossAgg = Literal["token-mean", "seq-mean-token-mean", "dr-grpo", "seq-mean-token-sum-norm"]


class KLCoefConfig(Section):
    """The KL coefficient β and how it moves between iterations (verl's ``algorithm.kl_ctrl``)."""

    beta: float = Field(0.0, ge=0.0)  # KL coefficient (TRL GRPO 0.0: no reference model is loaded)
    kl_ctrl: Literal["fixed", "adaptive"] = "fixed"  # adaptive: β starts at ``beta``, steered toward kl_target
    kl_target: float = Field(0.1, gt=0.0)  # verl's target_kl: the per-token KL(π_old‖π_ref) aimed at
    kl_horizon: float = Field(10000.0, gt=0.0)  # verl's and TRL's horizon, in samples: β moves by ±20 %·n/horizon

    @model_validator(mode="after")
    def _adaptive_needs_beta(self):
        if self.kl_ctrl == "adaptive" and self.beta == 0:
            raise ValueError(
                "algorithm.kl_ctrl=adaptive multiplies β, which is algorithm.beta=0 here and would stay 0: "
                "set algorithm.beta to the starting coefficient (verl's kl_coef, e.g. 0.001)"
            )
        return self


class PolicyGradientConfig(KLCoefConfig):
    """Fields of every clipped policy-gradient algorithm; each algorithm's ``Config`` adds its own."""

    epsilon: float = Field(0.2, gt=0.0, lt=1.0)  # ε_low: ρ is clipped below at 1 − ε
    epsilon_high: float | None = Field(None, gt=0.0)  # ρ clipped above at 1 + ε_high; None = ε (DAPO: 0.28)
    reference: Literal["initial", "previous"] = "initial"  # the KL's π_ref: initial model (TRL) or previous iterate
    # clamp the per-token KL estimate (loss or reward) to ±c: verl, OpenRLHF and VinePPO use 10; null = TRL (none)
    kl_clamp: float | None = Field(10.0, gt=0.0)
    # Dual-clip PPO: for A < 0 the token loss is capped at −A·c (verl's clip_ratio_c = 3); None = off
    dual_clip: float | None = Field(None, gt=1.0)
    # verl's entropy_coeff: subtracts coef·H(π_θ(·|s_t)) per token; needs the logits from the learner
    entropy_coef: float = Field(0.0, ge=0.0)
    # skip (zero the loss of) a micro-batch whose mean ratio exceeds this: a stale or diverged batch (VinePPO: 10)
    ratio_threshold: float | None = Field(None, gt=1.0)
    # ratios, KL and entropy of softmax(logits / T) at the sampling temperature T (TRL, VinePPO), or at 1
    logprobs_at_sampling_temperature: bool = True
    # scales the negative advantages after the algorithm computed them: 1 = as published; 0 = only
    # better-than-baseline samples are reinforced (the "PSR" ablation of Zhu et al. 2025); applied by the loop
    negative_weight: float = Field(1.0, ge=0.0)
    # Truncated importance sampling (itero/core/importance.py): weight each token by
    # min(π_old/π_sampler, tis_cap) to correct the engine/learner log-prob mismatch (vLLM); None = off
    tis_cap: float | None = Field(None, gt=0.0)

    min_samples_per_prompt: ClassVar[int] = 2  # a group of one has no baseline
    needs_old_logprobs: ClassVar[bool] = True

    @property
    def needs_reference(self) -> bool:
        return self.beta > 0

    @property
    def kl_loss_coef(self) -> float:
        """β of the k3 KL loss term; an algorithm that puts the KL in the reward instead returns 0."""
        return self.beta

    @property
    def measured_kl_estimator(self) -> str:
        """The estimator of the KL the adaptive controller reads: that of the KL term (k3 for the loss)."""
        return "k3"

    @property
    def clip_high(self) -> float:
        return self.epsilon if self.epsilon_high is None else self.epsilon_high

    @property
    def needs_logits(self) -> bool:
        """The loss needs the (B, T, V) logits of the learner's forward (the entropy bonus)."""
        return self.entropy_coef > 0

    def policy_terms(self, batch: RolloutBatch, logprobs: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The per-token policy loss (B, T) and its stats (``ratio``, ``clipped``): PPO-clip here; GSPO's
        sequence ratio and CISPO's clipped weight override it."""
        return clipped_pg_loss(
            logprobs, batch.old_logprobs, batch.advantages, self.epsilon, self.clip_high, self.dual_clip
        )


def apply_negative_weight(batch: RolloutBatch, cfg) -> RolloutBatch:
    """The prepared batch with its negative advantages scaled by ``cfg.negative_weight`` (unchanged for
    1, or for an algorithm without advantages or without the option)."""
    weight = getattr(cfg, "negative_weight", 1.0)
    if weight == 1.0 or batch.advantages is None:
        return batch
    return batch.replace(advantages=scale_negative_advantages(batch.advantages, weight))


def models_needed(cfg: PolicyGradientConfig) -> dict[str, str]:
    """π_old is the policy as the iteration started; π_ref, when the KL needs it, is ``cfg.reference``."""
    models = {"reference": cfg.reference} if cfg.needs_reference else {}
    return {**models, "old": "previous"}


def schedule(cfg: PolicyGradientConfig) -> Schedule:
    return Schedule(
        logprobs_at_sampling_temperature=cfg.logprobs_at_sampling_temperature, state=kl_state(cfg), tis_cap=cfg.tis_cap
    )


class AdaptiveKLCoef:
    """The adaptive β as an ``IterationState`` (``base.py``): ``config`` puts the controller's β in the
    config; ``update`` reads the prepared batch's KL as verl's ``apply_kl_penalty`` does (per-response
    token mean of the KL term's estimate of π_old against π_ref, averaged; n_steps = the batch's rows)."""

    name = "kl_ctrl"

    def __init__(self, cfg: PolicyGradientConfig):
        self.controller = AdaptiveKLController(cfg.beta, cfg.kl_target, cfg.kl_horizon)
        self.estimator, self.clamp = cfg.measured_kl_estimator, cfg.kl_clamp

    def config(self, cfg: PolicyGradientConfig) -> PolicyGradientConfig:
        return cfg.model_copy(update={"beta": self.controller.value})

    def update(self, prepared: RolloutBatch) -> dict[str, float]:
        n = prepared.batch_size
        if n > 5 * self.controller.horizon:  # 1 − 0.2·n/horizon < 0: a KL below target would flip β's sign
            raise ValueError(
                f"algorithm.kl_horizon={self.controller.horizon:g} is below a fifth of the {n} rows of one "
                "iteration: one update could make β negative; raise kl_horizon (verl: 10000)"
            )
        kl = mean_sequence_kl(
            prepared.old_logprobs, prepared.ref_logprobs, prepared.response_mask, self.estimator, self.clamp
        )
        self.controller.update(kl, n)
        return {"kl_ctrl_kl": kl, "kl_coef_next": self.controller.value}

    def state_dict(self) -> dict[str, float]:
        return self.controller.state_dict()

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.controller.load_state_dict(state)


def kl_state(cfg: PolicyGradientConfig) -> Callable[[], AdaptiveKLCoef] | None:
    """The schedule's carried state: the adaptive β, or nothing when β is fixed."""
    return functools.partial(AdaptiveKLCoef, cfg) if cfg.kl_ctrl == "adaptive" else None


def pull_logprobs(batch: RolloutBatch, cfg: PolicyGradientConfig, ctx: Context | None) -> RolloutBatch:
    """The batch with ``ref_logprobs`` (when the KL needs them) and ``old_logprobs`` from ``ctx``;
    unchanged without a context (a test that fills them itself). The reference comes first: with
    the previous iterate as reference, π_old is that same forward."""
    if ctx is None:
        return batch
    if cfg.beta > 0:  # the iteration's β (the adaptive controller's, or the fixed one), for `itero compare`
        ctx.stats["kl_coef"] = cfg.beta
    if cfg.needs_reference:
        batch = batch.replace(ref_logprobs=ctx.logprobs("reference"))
    return batch.replace(old_logprobs=ctx.logprobs("old"))


def with_context(prepare):
    """``prepare(batch, cfg)`` as the contract's ``prepare(batch, cfg, ctx=None)``: with a context, the
    log-probs are pulled first and the negative advantages scaled after (``negative_weight``)."""

    def prepare_pulled(batch: RolloutBatch, cfg: PolicyGradientConfig, ctx: Context | None = None) -> RolloutBatch:
        if ctx is None:
            return prepare(batch, cfg)
        return apply_negative_weight(prepare(pull_logprobs(batch, cfg, ctx), cfg), cfg)

    prepare_pulled.__doc__ = prepare.__doc__
    return prepare_pulled


def learner_loss_of(loss):
    """The contract's ``learner_loss`` for a token-level ``loss``: with the logits when the entropy bonus needs them."""

    def learner_loss(cfg: PolicyGradientConfig, ctx: TrainContext) -> LossFn:
        return loss_with_logits(loss, cfg, ctx.temperature) if cfg.needs_logits else plain_loss(loss, cfg)

    return learner_loss


def select_all(
    batch: RolloutBatch, cfg: PolicyGradientConfig, rng: torch.Generator | None = None
) -> tuple[RolloutBatch, dict]:
    """Every row trains; reports the groups whose scores all tie (no signal from a group baseline)."""
    return batch, {"frac_zero_variance_groups": zero_variance_group_fraction(batch.scores, batch.group_ids)}


def token_loss(
    batch: RolloutBatch,
    logprobs: Tensor,
    cfg: PolicyGradientConfig,
    logits: Tensor | None = None,
    temperature: float = 1.0,
) -> tuple[Tensor, dict[str, float]]:
    """Σ_t token_weights·[policy term + β·k3(π_θ, π_ref)_t − c_H·H_t].

    logprobs (B, T) of π_θ; ``batch`` carries old_logprobs, advantages, token_weights (B, T) and,
    when β > 0, ref_logprobs. The policy term is ``cfg.policy_terms`` (PPO-clip by default). The
    weights hold the aggregation (token-mean, per-sequence mean, Dr.GRPO's constant), computed over
    the whole batch, so micro-batching never changes the gradient. ``logits`` (B, T, V) of the same
    forward, divided by ``temperature`` here, are needed only for the entropy bonus (``entropy_coef``).
    """
    per_token, stats = cfg.policy_terms(batch, logprobs)
    mask = batch.response_mask
    metrics = ratio_metrics(stats["ratio"], stats["clipped"], mask)
    if cfg.dual_clip is not None:
        metrics["dual_clip_fraction"] = mean_metric(stats["dual_clipped"].float(), mask)
    metrics.update(kl_metrics(batch, logprobs))
    if cfg.kl_loss_coef > 0:
        per_token = per_token + cfg.kl_loss_coef * kl_estimate(logprobs, batch.ref_logprobs, "k3", cfg.kl_clamp)
    if cfg.entropy_coef > 0:
        if logits is None:
            raise ValueError(
                "entropy_coef > 0 needs the learner's logits: the loss function must ask for them "
                "(needs_logits) and pass logits= and temperature= to the algorithm's loss"
            )
        entropy = token_entropy(logits, temperature)
        per_token = per_token + entropy_bonus_loss(entropy, cfg.entropy_coef)
        metrics["entropy_bonus_term"] = mean_metric(entropy, mask)
    loss = (batch.token_weights * per_token).sum()
    if cfg.ratio_threshold is not None:
        skip = metrics["ratio_mean"] > cfg.ratio_threshold
        metrics["skipped"] = float(skip)
        loss = loss * 0.0 if skip else loss  # keeps the graph, so backward still runs on every rank
    return loss, metrics


def ratio_metrics(ratio: Tensor, clipped: Tensor, valid: Tensor) -> dict[str, float]:
    """Clip fraction and ratio mean / max over the valid entries (tokens, or sequences for RLOO)."""
    valid = valid.bool()
    return {
        "clip_fraction": mean_metric(clipped.float(), valid),
        "ratio_mean": mean_metric(ratio, valid),
        "ratio_max": float(ratio[valid].max()) if valid.any() else 1.0,
    }


def kl_metrics(batch: RolloutBatch, logprobs: Tensor) -> dict[str, float]:
    """Token-mean k3 estimates of KL(π_old‖π_θ) (how far the updates moved) and KL(π_θ‖π_ref)."""
    mask, logprobs = batch.response_mask, logprobs.detach()
    out = {"approx_kl_old": mean_metric(kl_estimate(batch.old_logprobs, logprobs, "k3"), mask)}
    if batch.ref_logprobs is not None:
        out["kl_ref"] = mean_metric(kl_estimate(logprobs, batch.ref_logprobs, "k3"), mask)
    return out
