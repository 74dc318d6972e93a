"""Online / iterative DPO: best-vs-worst pairs of n samples per prompt, a pairwise loss on summed log-probs.

As RLHFlow Online-DPO-R1: chosen = argmax reward, rejected = argmin (first index on ties), prompts
whose rewards all tie give no pair; the reference is the policy at the start of the iteration
(``reference: previous``) or the initial model (``reference: initial``, samplers paper).
Departures: ``max_random`` draws the rejected response among the strictly worse ones (RLHFlow takes
index 0/1); the optional NLL on the chosen responses is a token-mean over the pairs of one optimizer
step (RLHFlow: over one micro-batch).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field, field_validator
from torch import Tensor

from itero.batch import RolloutBatch
from itero.core.preference import (
    NEEDS_REFERENCE, NEEDS_SEQ_KL, PREFERENCE_LOSSES, PairLogps, PreferenceLossParams, preference_metrics,
)
from itero.schema import Section

PAIRINGS = ("max_min", "max_random", "max_max")


class Config(Section):
    name: Literal["dpo"] = "dpo"
    loss: str = "sigmoid"  # one of core.preference.PREFERENCE_LOSSES
    beta: float = Field(0.1, gt=0.0)
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5)  # ε of conservative DPO
    nll_weight: float = Field(0.0, ge=0.0)  # α of DPO+NLL (RPO)
    pairing: Literal["max_min", "max_random", "max_max"] = "max_min"
    reference: Literal["previous", "initial"] = "previous"
    ipo_length_normalize: bool = True  # RLHFlow / TRL; False = oat
    dpop_lambda: float = Field(50.0, ge=0.0)
    rdpo_alpha: float = 0.0
    simpo_gamma_beta_ratio: float = 0.5
    margin_scale: float = Field(1.0, ge=0.0)  # rev_kl: target preference σ((r_w − r_l)·margin_scale)

    min_samples_per_prompt: ClassVar[int] = 2

    @field_validator("loss")
    @classmethod
    def _known_loss(cls, value: str) -> str:
        if value not in PREFERENCE_LOSSES:
            raise ValueError(f"unknown loss {value!r}; choose one of {', '.join(PREFERENCE_LOSSES)}")
        if value in NEEDS_SEQ_KL:
            raise ValueError(f"loss {value!r} needs full-vocabulary logits of the reference in the learner, not wired yet")
        return value

    @property
    def needs_reference(self) -> bool:
        return self.loss in NEEDS_REFERENCE

    def loss_params(self) -> PreferenceLossParams:
        return PreferenceLossParams(
            beta=self.beta, label_smoothing=self.label_smoothing, ipo_length_normalize=self.ipo_length_normalize,
            dpop_lambda=self.dpop_lambda, rdpo_alpha=self.rdpo_alpha,
            simpo_gamma_beta_ratio=self.simpo_gamma_beta_ratio, margin_scale=self.margin_scale,
        )


rows_per_unit = 2  # rows 2k, 2k+1 are the chosen and rejected responses of pair k


def pick_pair(scores: list[float], pairing: str, rng: torch.Generator) -> tuple[int, int] | None:
    """(chosen, rejected) positions within one group's scores, or None when every score ties."""
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    worse = [i for i in range(len(scores)) if scores[i] < scores[best]]
    if not worse:
        return None
    if pairing == "max_min":
        return best, min(worse, key=lambda i: (scores[i], i))
    if pairing == "max_max":
        return best, max(worse, key=lambda i: (scores[i], -i))
    if pairing == "max_random":
        return best, worse[int(torch.randint(len(worse), (1,), generator=rng))]
    raise ValueError(f"unknown pairing {pairing!r}; choose one of {', '.join(PAIRINGS)}")


def select(batch: RolloutBatch, cfg: Config, rng: torch.Generator | None = None) -> tuple[RolloutBatch, dict]:
    """Interleaved chosen/rejected rows, one pair per prompt with distinct rewards."""
    rng = rng or torch.Generator().manual_seed(0)
    groups: dict[int, list[int]] = {}
    for i, g in enumerate(batch.group_ids.tolist()):
        groups.setdefault(g, []).append(i)
    rows: list[int] = []
    for g in sorted(groups):
        members = groups[g]
        pair = pick_pair([float(batch.scores[i]) for i in members], cfg.pairing, rng)
        if pair is not None:
            rows += [members[pair[0]], members[pair[1]]]
    num_pairs = len(rows) // 2
    stats = {"pairs": num_pairs, "frac_prompts_no_pair": 1.0 - num_pairs / max(len(groups), 1)}
    return batch.select(rows), stats


def prepare(batch: RolloutBatch, cfg: Config) -> RolloutBatch:
    num_pairs = batch.batch_size // 2
    chosen = (torch.arange(batch.batch_size) % 2 == 0).float()
    seq_weights = chosen / max(num_pairs, 1)
    chosen_mask = batch.response_mask.float() * chosen[:, None]
    token_weights = chosen_mask / chosen_mask.sum().clamp(min=1.0)
    return batch.replace(seq_weights=seq_weights, token_weights=token_weights)


def pair_logps(batch: RolloutBatch, logprobs: Tensor) -> PairLogps:
    mask = batch.response_mask.float()
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


def loss(batch: RolloutBatch, logprobs: Tensor, cfg: Config) -> tuple[Tensor, dict[str, float]]:
    pairs = pair_logps(batch, logprobs)
    per_pair = PREFERENCE_LOSSES[cfg.loss](pairs, cfg.loss_params())
    total = (per_pair * batch.seq_weights[0::2]).sum()
    metrics = preference_metrics(pairs, cfg.beta)
    if cfg.nll_weight > 0:
        nll = -(batch.token_weights * logprobs).sum()
        total = total + cfg.nll_weight * nll
        metrics["nll"] = float(nll.detach())
    return total, metrics
