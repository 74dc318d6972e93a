"""Pairwise preference losses (DPO family) over summed sequence log-probs.

Every loss maps ``(PairLogps, PreferenceLossParams)`` to per-pair losses (N,), unreduced: the caller
weights and sums them. Notation (docs/formulas.md): h(y) = ℓ_θ(y) − ℓ_ref(y), Δ = h(y_w) − h(y_l).

``label_smoothing`` ε enters every logistic loss as −(1−ε)·logσ(x) − ε·logσ(−x) (sigmoid = cDPO,
dpop, rdpo, simpo, tdpo1/2); ε = 0 reproduces each source exactly. ``ipo``, ``rev_kl``, ``hinge`` and
the APO losses ignore it (rev_kl carries its own soft label); ``robust`` uses it by definition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint


@dataclass
class PairLogps:
    policy_chosen: Tensor  # (N,) Σ_t log π_θ(y_w,t)
    policy_rejected: Tensor  # (N,)
    ref_chosen: Tensor | None  # (N,) Σ_t log π_ref(y_w,t); None for reference-free losses
    ref_rejected: Tensor | None
    chosen_lengths: Tensor  # (N,) number of response tokens of y_w (float)
    rejected_lengths: Tensor
    chosen_scores: Tensor | None = None  # (N,) reward/RM score of y_w (rev_kl)
    rejected_scores: Tensor | None = None
    chosen_seq_kl: Tensor | None = None  # (N,) Σ_t KL(π_ref‖π_θ) over y_w positions (TDPO)
    rejected_seq_kl: Tensor | None = None


@dataclass
class PreferenceLossParams:
    beta: float = 0.1
    label_smoothing: float = 0.0  # ε
    ipo_length_normalize: bool = True  # RLHFlow / TRL; False = oat's summed Δ
    dpop_lambda: float = 50.0  # λ of DPO-Positive (VinePPO config)
    rdpo_alpha: float = 0.0  # α of R-DPO (oat default: off)
    simpo_gamma_beta_ratio: float = 0.5  # γ/β (oat default)
    tdpo_alpha: float = 0.5  # α of TDPO2 (official code default)
    margin_scale: float = 1.0  # rev_kl: target p* = σ((r_w − r_l)·margin_scale)


def _smoothed_logistic(x: Tensor, eps: float) -> Tensor:
    """−(1−ε)·logσ(x) − ε·logσ(−x), with a stable log-sigmoid."""
    return -(1.0 - eps) * F.logsigmoid(x) - eps * F.logsigmoid(-x)


def _log_ratios(logps: PairLogps) -> tuple[Tensor, Tensor]:
    """(h_w, h_l), each (N,)."""
    if logps.ref_chosen is None or logps.ref_rejected is None:
        raise ValueError("this preference loss needs reference log-probs (ref_chosen / ref_rejected)")
    return logps.policy_chosen - logps.ref_chosen, logps.policy_rejected - logps.ref_rejected


def _delta(logps: PairLogps) -> Tensor:
    h_w, h_l = _log_ratios(logps)
    return h_w - h_l


def sigmoid_loss(logps: PairLogps, p: PreferenceLossParams) -> Tensor:
    """DPO / cDPO: −(1−ε)·logσ(βΔ) − ε·logσ(−βΔ) (RLHFlow / trl-0.9.6, unlike current TRL)."""
    return _smoothed_logistic(p.beta * _delta(logps), p.label_smoothing)


def robust_loss(logps: PairLogps, p: PreferenceLossParams) -> Tensor:
    """Robust DPO: [−(1−ε)·logσ(βΔ) + ε·logσ(−βΔ)] / (1 − 2ε) (TRL / RLHFlow). Needs ε < ½."""
    if not p.label_smoothing < 0.5:
        raise ValueError("robust loss needs label_smoothing < 0.5")
    x, eps = p.beta * _delta(logps), p.label_smoothing
    return (-(1.0 - eps) * F.logsigmoid(x) + eps * F.logsigmoid(-x)) / (1.0 - 2.0 * eps)


def ipo_loss(logps: PairLogps, p: PreferenceLossParams) -> Tensor:
    """IPO: (Δ̄ − 1/(2β))²; Δ̄ divides each h by its token count (clamped ≥ 1) unless disabled."""
    h_w, h_l = _log_ratios(logps)
    if p.ipo_length_normalize:
        h_w = h_w / logps.chosen_lengths.clamp(min=1.0)
        h_l = h_l / logps.rejected_lengths.clamp(min=1.0)
    return (h_w - h_l - 1.0 / (2.0 * p.beta)) ** 2


def rev_kl_loss(logps: PairLogps, p: PreferenceLossParams) -> Tensor:
    """Soft-label BT: −p*·logσ(βΔ) − (1−p*)·logσ(−βΔ), p* = σ((r_w − r_l)·margin_scale)."""
    if logps.chosen_scores is None or logps.rejected_scores is None:
        raise ValueError("rev_kl needs chosen_scores and rejected_scores")
    target = torch.sigmoid((logps.chosen_scores - logps.rejected_scores) * p.margin_scale)
    x = p.beta * _delta(logps)
    return -target * F.logsigmoid(x) - (1.0 - target) * F.logsigmoid(-x)


def dpop_loss(logps: PairLogps, p: PreferenceLossParams) -> Tensor:
    """DPO-Positive: logistic loss of β·z, z = Δ − λ·max(0, ℓ_ref(y_w) − ℓ_θ(y_w)) (λ inside β)."""
    delta = _delta(logps)  # raises first if the reference is missing
    penalty = (logps.ref_chosen - logps.policy_chosen).clamp(min=0.0)
    return _smoothed_logistic(p.beta * (delta - p.dpop_lambda * penalty), p.label_smoothing)


def rdpo_loss(logps: PairLogps, p: PreferenceLossParams) -> Tensor:
    """R-DPO: −logσ(βΔ + α(|y_w| − |y_l|)); α is outside β, as in oat's (α/β) inside Δ.

    Label smoothing applies as for DPO (an extension; ε = 0 is the paper's loss).
    """
    x = p.beta * _delta(logps) + p.rdpo_alpha * (logps.chosen_lengths - logps.rejected_lengths)
    return _smoothed_logistic(x, p.label_smoothing)


def simpo_loss(logps: PairLogps, p: PreferenceLossParams) -> Tensor:
    """SimPO: logistic loss of β·u, u = ℓ_θ(y_w)/|y_w| − ℓ_θ(y_l)/|y_l| − γ/β (reference-free)."""
    u = (
        logps.policy_chosen / logps.chosen_lengths.clamp(min=1.0)
        - logps.policy_rejected / logps.rejected_lengths.clamp(min=1.0)
        - p.simpo_gamma_beta_ratio
    )
    return _smoothed_logistic(p.beta * u, p.label_smoothing)


def _seq_kls(logps: PairLogps) -> tuple[Tensor, Tensor]:
    if logps.chosen_seq_kl is None or logps.rejected_seq_kl is None:
        raise ValueError("TDPO needs chosen_seq_kl and rejected_seq_kl (see sequential_kl)")
    return logps.chosen_seq_kl, logps.rejected_seq_kl


def tdpo1_loss(logps: PairLogps, p: PreferenceLossParams) -> Tensor:
    """TDPO1: −logσ(β·z), z = Δ − (S(y_l) − S(y_w))."""
    s_w, s_l = _seq_kls(logps)
    return _smoothed_logistic(p.beta * (_delta(logps) - (s_l - s_w)), p.label_smoothing)


def tdpo2_loss(logps: PairLogps, p: PreferenceLossParams) -> Tensor:
    """TDPO2: −logσ(β·z), z = Δ − α·(S(y_l) − sg[S(y_w)]) (official default α = 0.5)."""
    s_w, s_l = _seq_kls(logps)
    z = _delta(logps) - p.tdpo_alpha * (s_l - s_w.detach())
    return _smoothed_logistic(p.beta * z, p.label_smoothing)


def hinge_loss(logps: PairLogps, p: PreferenceLossParams) -> Tensor:
    """SLiC's hinge: max(0, 1 − βΔ) (TRL ``hinge``); ε is ignored."""
    return torch.relu(1.0 - p.beta * _delta(logps))


def apo_zero_loss(logps: PairLogps, p: PreferenceLossParams) -> Tensor:
    """APO-zero: (1 − σ(β·h_w)) + σ(β·h_l): push y_w up and y_l down, each against the reference itself
    (TRL ``apo_zero``; for chosen answers better than the model's own)."""
    h_w, h_l = _log_ratios(logps)
    return (1.0 - torch.sigmoid(p.beta * h_w)) + torch.sigmoid(p.beta * h_l)


def apo_down_loss(logps: PairLogps, p: PreferenceLossParams) -> Tensor:
    """APO-down: σ(β·h_w) + (1 − σ(βΔ)): lower y_w, and y_l more (TRL ``apo_down``; for chosen answers
    worse than the model's own)."""
    h_w, h_l = _log_ratios(logps)
    return torch.sigmoid(p.beta * h_w) + (1.0 - torch.sigmoid(p.beta * (h_w - h_l)))


PreferenceLoss = Callable[[PairLogps, PreferenceLossParams], Tensor]

PREFERENCE_LOSSES: dict[str, PreferenceLoss] = {
    "sigmoid": sigmoid_loss,
    "robust": robust_loss,
    "ipo": ipo_loss,
    "rev_kl": rev_kl_loss,
    "dpop": dpop_loss,
    "rdpo": rdpo_loss,
    "simpo": simpo_loss,
    "tdpo1": tdpo1_loss,
    "tdpo2": tdpo2_loss,
    "hinge": hinge_loss,
    "apo_zero": apo_zero_loss,
    "apo_down": apo_down_loss,
}
NEEDS_REFERENCE = frozenset(PREFERENCE_LOSSES) - {"simpo"}
NEEDS_SCORES = frozenset({"rev_kl"})
NEEDS_SEQ_KL = frozenset({"tdpo1", "tdpo2"})


def weighted_preference_loss(
    logps: PairLogps, p: PreferenceLossParams, names: list[str], weights: list[float] | None = None
) -> Tensor:
    """Σ_k w_k·L_k per pair (N,): TRL's ``loss_type`` list with ``loss_weights`` (weights default to 1)."""
    weights = [1.0] * len(names) if weights is None else weights
    if len(weights) != len(names):
        raise ValueError(f"{len(names)} losses but {len(weights)} loss weights")
    return sum(w * PREFERENCE_LOSSES[name](logps, p) for name, w in zip(names, weights))


@torch.no_grad()
def preference_metrics(logps: PairLogps, beta: float) -> dict[str, float]:
    """The DPO log: β·h means, accuracy 1[h_w > h_l], margin, mean summed log-probs.

    Reference-free losses (ref None) log the policy log-probs in place of h.
    """
    if logps.ref_chosen is None or logps.ref_rejected is None:
        h_w, h_l = logps.policy_chosen, logps.policy_rejected
    else:
        h_w, h_l = _log_ratios(logps)
    h_w, h_l = h_w.float(), h_l.float()
    return {
        "rewards/chosen": (beta * h_w).mean().item(),
        "rewards/rejected": (beta * h_l).mean().item(),
        "rewards/accuracy": (h_w > h_l).float().mean().item(),
        "rewards/margin": (beta * (h_w - h_l)).mean().item(),
        "logps/chosen": logps.policy_chosen.float().mean().item(),
        "logps/rejected": logps.policy_rejected.float().mean().item(),
    }


def _kl_chunk(policy_logits: Tensor, ref_logits: Tensor, mask: Tensor) -> Tensor:
    """Σ_t m_t·Σ_v π_ref(v)[log π_ref(v) − log π_θ(v)] over one chunk of positions. → (B,)"""
    ref_logp = F.log_softmax(ref_logits.float(), dim=-1)  # (B, c, V)
    pol_logp = F.log_softmax(policy_logits.float(), dim=-1)
    kl = (ref_logp.exp() * (ref_logp - pol_logp)).sum(-1)  # (B, c)
    return (kl * mask.to(kl.dtype)).sum(-1)


def sequential_kl(policy_logits: Tensor, ref_logits: Tensor, mask: Tensor, chunk_size: int = 128) -> Tensor:
    """TDPO's S(y) = Σ_t m_t·KL(π_ref(·|s_t) ‖ π_θ(·|s_t)), full vocabulary. (B,T,V),(B,T,V),(B,T) → (B,)

    Chunks of ``chunk_size`` positions are checkpointed when a gradient is needed, so backward
    recomputes one chunk's float32 log-softmax at a time instead of keeping all of them.
    Gradient flows through ``policy_logits`` only (``ref_logits`` is detached).
    """
    ref_logits = ref_logits.detach()
    need_grad = torch.is_grad_enabled() and policy_logits.requires_grad
    total = policy_logits.new_zeros(policy_logits.shape[0], dtype=torch.float32)
    for start in range(0, policy_logits.shape[1], chunk_size):
        sl = slice(start, start + chunk_size)
        args = (policy_logits[:, sl], ref_logits[:, sl], mask[:, sl])
        total = total + (checkpoint(_kl_chunk, *args, use_reentrant=False) if need_grad else _kl_chunk(*args))
    return total
