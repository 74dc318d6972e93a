"""Options every policy-gradient algorithm shares, on hand numbers: dual clip, the k3 clamp default,
the entropy bonus. Two rows "a", "b" (+ EOS): 2 tokens each, no padding, token-mean weights 1/4."""

import math

import pytest
import torch
from helpers import text_batch, tiny

from itero.algorithms import grpo, ppo, reinforce_pp, rto, vineppo
from itero.core.masked import aggregation_weights


def batch_with(logprobs, advantages, ref_logprobs=None):
    _, tok = tiny()
    batch = text_batch(tok, ["p", "p"], ["a", "b"], scores=[0.0, 0.0], group_ids=[0, 0])
    assert batch.response_mask.sum().item() == 4
    return batch.replace(
        old_logprobs=torch.zeros(2, 2),
        advantages=torch.tensor(advantages),
        ref_logprobs=ref_logprobs,
        token_weights=aggregation_weights(batch.response_mask, "token-mean"),
    )


def test_dual_clip_caps_negative_advantage_tokens():
    logp = torch.log(torch.tensor([[4.0, 1.5], [4.0, 1.5]])).requires_grad_(True)
    batch = batch_with(logp.detach(), [[-1.0, -1.0], [1.0, 1.0]])
    # ρ = 4, A = −1: max(4, 1.2) = 4, capped at −A·c = 3;  ρ = 1.5, A = −1: max(1.5, 1.2) = 1.5
    # A = +1: max(−ρ, −clip(ρ)) = −1.2 on both tokens (the dual clip leaves positive advantages alone)
    loss, metrics = grpo.loss(batch, logp, grpo.Config(dual_clip=3.0))
    assert loss.item() == pytest.approx((3.0 + 1.5 - 1.2 - 1.2) / 4)
    assert metrics["dual_clip_fraction"] == pytest.approx(1 / 4)
    (grad,) = torch.autograd.grad(loss, logp)
    # only row 0's second token is on the unclipped branch: ∂(−Aρ)/∂logp / 4 = 1.5 / 4
    assert grad.flatten().tolist() == pytest.approx([0.0, 0.375, 0.0, 0.0])
    # the default (None) keeps PPO-clip's numbers: (4 + 1.5 − 1.2 − 1.2) / 4
    plain, metrics = grpo.loss(batch, logp, grpo.Config())
    assert plain.item() == pytest.approx(3.1 / 4) and "dual_clip_fraction" not in metrics
    with pytest.raises(ValueError):
        grpo.Config(dual_clip=1.0)


def verl_low_var_kl(logprob: float, ref_logprob: float) -> float:
    """verl core_algos.kl_penalty "low_var_kl" (k3), written out: kl = ref − logp clamped to ±20,
    exp(kl) − kl − 1, clamped to ±10."""
    kl = max(min(ref_logprob - logprob, 20.0), -20.0)
    return max(min(math.exp(kl) - kl - 1.0, 10.0), -10.0)


def test_k3_kl_loss_is_clamped_at_10_by_default():
    # log π − log π_ref = −12 on row 0's tokens, 0 on row 1's; ρ = 1 and A = 0, so only β·k3 remains
    logp = torch.zeros(2, 2)
    ref = torch.tensor([[12.0, 12.0], [0.0, 0.0]])
    batch = batch_with(logp, [[0.0, 0.0], [0.0, 0.0]], ref_logprobs=ref)
    assert verl_low_var_kl(0.0, 12.0) == 10.0
    loss, _ = grpo.loss(batch, logp, grpo.Config(beta=0.1))
    assert loss.item() == pytest.approx(0.1 * (2 * verl_low_var_kl(0.0, 12.0)) / 4)  # 0.5
    # kl_clamp: null is TRL's unclamped k3: exp(12) − 12 − 1 ≈ 1.6e5 per token
    unclamped, _ = grpo.loss(batch, logp, grpo.Config(beta=0.1, kl_clamp=None))
    assert unclamped.item() == pytest.approx(0.1 * 2 * (math.exp(12.0) - 13.0) / 4, rel=1e-5)
    for cfg in (grpo.Config(), reinforce_pp.Config(), ppo.Config(), rto.Config(dpo_iterations=1), vineppo.Config()):
        assert cfg.kl_clamp == 10.0


def test_entropy_bonus_subtracts_coef_times_token_mean_entropy():
    # V = 2: logits (0, 0) → H = ln 2; at T = 2, (0, 2·ln 3) → p = (1/4, 3/4),
    # H = −(¼·ln ¼ + ¾·ln ¾) = 0.5623351
    h1 = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    logits = torch.tensor([[[0.0, 0.0]] * 2, [[0.0, 2 * math.log(3.0)]] * 2], requires_grad=True)
    logp = torch.zeros(2, 2)
    batch = batch_with(logp, [[0.0, 0.0], [0.0, 0.0]])
    cfg = grpo.Config(entropy_coef=0.01)
    assert cfg.needs_logits and not grpo.Config().needs_logits
    loss, metrics = grpo.loss(batch, logp, cfg, logits=logits, temperature=2.0)
    assert loss.item() == pytest.approx(-0.01 * (2 * math.log(2.0) + 2 * h1) / 4)
    assert metrics["entropy_bonus_term"] == pytest.approx((math.log(2.0) + h1) / 2)
    (grad,) = torch.autograd.grad(loss, logits)
    # ∂H/∂z_v = −p_v·(log p_v + H) / T: 0 for the uniform rows; for p = (¼, ¾) at T = 2:
    p = torch.tensor([0.25, 0.75])
    dz = -p * (p.log() + h1) / 2.0
    assert grad[1, 0].tolist() == pytest.approx((-0.01 / 4 * dz).tolist(), abs=1e-7)
    assert grad[0].abs().max().item() == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="logits"):
        grpo.loss(batch, logp, cfg)
