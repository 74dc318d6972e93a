"""Online / iterative DPO: best-vs-worst pairs of n samples per prompt, a pairwise loss on summed log-probs.

As RLHFlow Online-DPO-R1: chosen = argmax reward, rejected = argmin (first index on ties), prompts
whose rewards all tie give no pair; the reference is the policy at the start of the iteration
(``reference: previous``) or the initial model (``reference: initial``, samplers paper).
Pair strategies live in ``itero.samplers.pairing``. Departures: ``max_random`` draws the rejected
response among the strictly worse ones (RLHFlow takes index 0/1); the optional NLL on the chosen responses is a token-mean over the pairs of one optimizer
step (RLHFlow: over one micro-batch).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

import torch
from pydantic import Field, field_validator, model_validator
from torch import Tensor

from itero.algorithms.base import Context, LossFn, TrainContext, default_schedule, plain_loss
from itero.batch import RolloutBatch
from itero.core.preference import (
    NEEDS_REFERENCE,
    NEEDS_SEQ_KL,
    PREFERENCE_LOSSES,
    PairLogps,
    PreferenceLossParams,
    preference_metrics,
    sequential_kl,
    weighted_preference_loss,
)
from itero.samplers.pairing import PAIRINGS, PairingParams, select_pairs
from itero.schema import Section

# The loss and pairing parameters' defaults are declared once, beside the maths that uses them.
_LOSS, _PAIRS = PreferenceLossParams(), PairingParams()


class Config(Section):
    name: Literal["dpo"] = "dpo"
    # one of core.preference.PREFERENCE_LOSSES, or a list of them summed with loss_weights (TRL's loss_type list)
    loss: str | list[str] = "sigmoid"
    loss_weights: list[float] | None = None  # one weight per loss of the list; None = all 1
    beta: float = Field(_LOSS.beta, gt=0.0)
    label_smoothing: float = Field(_LOSS.label_smoothing, ge=0.0, lt=0.5)  # ε of conservative DPO
    nll_weight: float = Field(0.0, ge=0.0)  # α of DPO+NLL (RPO)
    nll_per_sequence: bool = False  # NLL = mean over chosen of each one's token-mean (default: token-mean over all)
    pairing: str = "max_min"  # one of samplers.pairing.PAIRINGS
    length_penalty: float = Field(_PAIRS.length_penalty, ge=0.0)  # max_min_p: score − λ_len·len(characters)
    mixed_first_half_prob: float = Field(_PAIRS.mixed_first_half_prob, ge=0.0, le=1.0)  # mixed_max_min
    accept_threshold: float = _PAIRS.accept_threshold  # all_pairs: accept = score ≥ threshold
    max_pairs_per_prompt: int = Field(_PAIRS.max_pairs_per_prompt, ge=1)  # all_pairs cap
    reference: Literal["previous", "initial", "none"] = "previous"  # none: reference-free losses only (simpo)
    # Tokens a pair's log-probs sum over: "full" responses (every source), or "divergence": both
    # responses only up to and including their first differing token (the shared prefix cancels in Δ
    # anyway), so the contrast is the decision where they part and nothing after it.
    pair_scope: Literal["full", "divergence"] = "full"
    ipo_length_normalize: bool = _LOSS.ipo_length_normalize  # RLHFlow / TRL; False = oat
    dpop_lambda: float = Field(_LOSS.dpop_lambda, ge=0.0)
    rdpo_alpha: float = _LOSS.rdpo_alpha
    simpo_gamma_beta_ratio: float = _LOSS.simpo_gamma_beta_ratio
    margin_scale: float = Field(_LOSS.margin_scale, ge=0.0)  # rev_kl: target preference σ((r_w − r_l)·margin_scale)
    tdpo_alpha: float = Field(_LOSS.tdpo_alpha, ge=0.0)  # TDPO2's α (official default)

    min_samples_per_prompt: ClassVar[int] = 2

    @field_validator("loss", "pairing")
    @classmethod
    def _known_name(cls, value: str | list[str], info) -> str | list[str]:
        choices = PREFERENCE_LOSSES if info.field_name == "loss" else PAIRINGS
        names = value if isinstance(value, list) else [value]
        if not names:
            raise ValueError(f"{info.field_name} needs at least one name")
        for name in names:
            if name not in choices:
                raise ValueError(f"unknown {info.field_name} {name!r}; choose one of {', '.join(choices)}")
        return value

    @property
    def loss_names(self) -> list[str]:
        return self.loss if isinstance(self.loss, list) else [self.loss]

    def pairing_params(self) -> PairingParams:
        return PairingParams(**{f.name: getattr(self, f.name) for f in dataclasses.fields(PairingParams)})

    @model_validator(mode="after")
    def _reference_for_the_loss(self):
        if self.loss_weights is not None and len(self.loss_weights) != len(self.loss_names):
            raise ValueError(f"loss_weights has {len(self.loss_weights)} entries for {len(self.loss_names)} losses")
        if self.reference == "none" and self.needs_reference:
            free = sorted(set(PREFERENCE_LOSSES) - NEEDS_REFERENCE)
            raise ValueError(
                f"loss {self.loss!r} needs a reference model but reference is 'none'; give reference 'previous' or "
                f"'initial', or a reference-free loss: {', '.join(free)}"
            )
        return self

    @property
    def needs_reference(self) -> bool:
        return any(name in NEEDS_REFERENCE for name in self.loss_names)

    @property
    def needs_reference_logits(self) -> bool:
        """TDPO: the reference's full next-token distributions during training, not just log-probs."""
        return any(name in NEEDS_SEQ_KL for name in self.loss_names)

    def loss_params(self) -> PreferenceLossParams:
        return PreferenceLossParams(**{f.name: getattr(self, f.name) for f in dataclasses.fields(PreferenceLossParams)})


rows_per_unit = 2  # rows 2k, 2k+1 are the chosen and rejected responses of pair k


def max_units(cfg: Config, prompts: int, n: int) -> tuple[int, str]:
    """At most this many training units an iteration (the dry run's plan): one pair per prompt, or
    accepted × rejected capped with ``all_pairs``; a prompt whose rewards all tie gives none."""
    per_prompt = min(cfg.max_pairs_per_prompt, (n // 2) * (n - n // 2)) if cfg.pairing == "all_pairs" else 1
    return prompts * per_prompt, "pairs"


schedule = default_schedule  # log-probs at T = 1


def models_needed(cfg: Config) -> dict[str, str]:
    """π_ref when the loss needs it; TDPO also holds its logits during training."""
    if not cfg.needs_reference:
        return {}
    logits = {"reference_logits": cfg.reference} if cfg.needs_reference_logits else {}
    return {"reference": cfg.reference, **logits}


def _char_lengths(batch: RolloutBatch) -> list[int]:
    if len(batch.response_texts) == batch.batch_size:
        return [len(t) for t in batch.response_texts]
    return batch.response_lengths.tolist()  # token counts when the batch carries no text


def select(batch: RolloutBatch, cfg: Config, rng: torch.Generator | None = None) -> tuple[RolloutBatch, dict]:
    """Interleaved chosen/rejected rows: the pairs of ``cfg.pairing`` for every prompt, ties dropped."""
    pairs, stats = select_pairs(
        [float(s) for s in batch.scores],
        batch.group_ids.tolist(),
        _char_lengths(batch),
        cfg.pairing,
        cfg.pairing_params(),
        rng or torch.Generator().manual_seed(0),
    )
    if not pairs and batch.batch_size:
        from itero.tracking import progress

        progress.warn(
            f"no preference pairs formed from {len(set(batch.group_ids.tolist()))} prompts: every prompt's samples "
            "got the same reward, so this iteration trains nothing (at generation.temperature=0 all samples are "
            "equal; sample at a temperature > 0, or raise generation.n_samples_per_prompt)"
        )
    return batch.select([row for pair in pairs for row in pair]), stats


def prepare(batch: RolloutBatch, cfg: Config, ctx: Context | None = None) -> RolloutBatch:
    if ctx is not None and cfg.needs_reference:
        batch = batch.replace(ref_logprobs=ctx.logprobs("reference"))
    num_pairs = batch.batch_size // 2
    chosen = (torch.arange(batch.batch_size) % 2 == 0).float()
    seq_weights = chosen / max(num_pairs, 1)
    chosen_mask = batch.response_mask.float() * chosen[:, None]
    if cfg.nll_per_sequence:
        token_weights = chosen_mask / chosen_mask.sum(-1, keepdim=True).clamp(min=1.0) / max(num_pairs, 1)
    else:
        token_weights = chosen_mask / chosen_mask.sum().clamp(min=1.0)
    score_mask = divergence_mask(batch) if cfg.pair_scope == "divergence" else None
    return batch.replace(seq_weights=seq_weights, token_weights=token_weights, score_mask=score_mask)


def divergence_mask(batch: RolloutBatch) -> Tensor:
    """(B, R) bool: each pair's tokens up to and including the first position where the two differ.

    A response that is a strict prefix of the other differs at its end (EOS vs the other's next token).
    """
    ids, mask = batch.response_ids, batch.response_mask
    differs = (ids[0::2] != ids[1::2]) | (mask[0::2] != mask[1::2])  # (N, R)
    first = torch.where(differs.any(-1), differs.float().argmax(-1), mask[0::2].sum(-1) - 1)  # (N,)
    keep = torch.arange(ids.shape[1])[None, :] <= first[:, None]  # (N, R)
    return keep.repeat_interleave(2, dim=0) & mask


def _score_mask(batch: RolloutBatch) -> Tensor:
    """(B, R) bool: the tokens a sequence log-prob (and TDPO's KL) sums over."""
    return batch.score_mask if batch.score_mask is not None else batch.response_mask


def pair_logps(batch: RolloutBatch, logprobs: Tensor) -> PairLogps:
    mask = _score_mask(batch).float()
    policy = (logprobs * mask).sum(-1)
    ref = (batch.ref_logprobs * mask).sum(-1) if batch.ref_logprobs is not None else None
    lengths = mask.sum(-1)
    return PairLogps(
        policy_chosen=policy[0::2],
        policy_rejected=policy[1::2],
        ref_chosen=ref[0::2] if ref is not None else None,
        ref_rejected=ref[1::2] if ref is not None else None,
        chosen_lengths=lengths[0::2],
        rejected_lengths=lengths[1::2],
        chosen_scores=batch.scores[0::2] if batch.scores is not None else None,
        rejected_scores=batch.scores[1::2] if batch.scores is not None else None,
    )


def loss(
    batch: RolloutBatch,
    logprobs: Tensor,
    cfg: Config,
    logits: Tensor | None = None,
    ref_logits: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """``logits`` / ``ref_logits`` (B, R, V) of the policy and the reference, for TDPO only."""
    pairs = pair_logps(batch, logprobs)
    if cfg.needs_reference_logits:
        if logits is None or ref_logits is None:
            raise ValueError(f"loss {cfg.loss!r} needs the policy's and the reference's logits (TDPO)")
        seq_kl = sequential_kl(logits, ref_logits, _score_mask(batch))  # (B,)
        pairs.chosen_seq_kl, pairs.rejected_seq_kl = seq_kl[0::2], seq_kl[1::2]
    per_pair = weighted_preference_loss(pairs, cfg.loss_params(), cfg.loss_names, cfg.loss_weights)
    total = (per_pair * batch.seq_weights[0::2]).sum()
    metrics = preference_metrics(pairs, cfg.beta)
    if cfg.nll_weight > 0:
        nll = -(batch.token_weights * logprobs).sum()
        total = total + cfg.nll_weight * nll
        metrics["nll"] = float(nll.detach())
    return total, metrics


def learner_loss(cfg: Config, ctx: TrainContext) -> LossFn:
    """TDPO's loss gets the policy's logits and pulls the reference's for each micro-batch."""
    if not cfg.needs_reference_logits:
        return plain_loss(loss, cfg)

    def with_reference_logits(mb: RolloutBatch, lp: Tensor, logits: Tensor):
        with torch.no_grad():
            ref_logits = ctx.logits("reference", mb)
        return loss(mb, lp, cfg, logits=logits, ref_logits=ref_logits)

    with_reference_logits.needs_logits = True
    return with_reference_logits
