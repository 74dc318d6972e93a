"""CISPO on hand numbers. Expected values come from MiniMax-M1's objective (arXiv 2506.13585, eq. 4;
MiniMax released no training code) written out here, J = (1/Σ|o_i|)·Σ_i Σ_t sg(r̂_it)·A_i·log π_θ(o_it),
r̂ = clip(r, 1 − ε_low, 1 + ε_high), and checked against TRL ``trl/trainer/grpo_trainer.py``
(``loss_type="cispo"``: ``clamp(coef_1, max=epsilon_high).detach() * advantages * per_token_logps``,
i.e. TRL's epsilon_high is the cap itself, itero's 1 + ε_high).

Rows "a" and "b" (2 tokens each with EOS), old log-probs 0: the ratios are exp(log-probs).
"""

import math

import pytest
import torch
from helpers import text_batch, tiny

from itero.algorithms import ALGORITHMS, cispo
from itero.config import load_config
from itero.core.masked import aggregation_weights

RATIOS = [[1.5, 0.5], [6.0, 0.9]]
ADV = [[1.0, 1.0], [-2.0, -2.0]]


def setup(cfg):
    _, tok = tiny()
    batch = text_batch(tok, ["p", "p"], ["a", "b"], scores=[1.0, 0.0], group_ids=[0, 0])
    logp = torch.log(torch.tensor(RATIOS)).requires_grad_(True)
    batch = batch.replace(
        old_logprobs=torch.zeros(2, 2),
        advantages=torch.tensor(ADV),
        token_weights=aggregation_weights(batch.response_mask, cfg.loss_agg),
    )
    return batch, logp


def minimax_loss(ratios, adv, eps_low, eps_high):
    """−J with r̂ = clip(r, 1 − ε_low, 1 + ε_high) (no lower bound when ε_low is None), token-mean."""
    flat = [(r, a) for rr, aa in zip(ratios, adv) for r, a in zip(rr, aa)]
    clip = lambda r: min(r if eps_low is None else max(r, 1 - eps_low), 1 + eps_high)
    return -sum(clip(r) * a * math.log(r) for r, a in flat) / len(flat), [-clip(r) * a / len(flat) for r, a in flat]


@pytest.mark.parametrize("eps_low, eps_high", [(None, 4.0), (0.2, 0.28)])
def test_loss_and_gradient_against_the_minimax_objective(eps_low, eps_high):
    cfg = cispo.Config(epsilon=eps_low, epsilon_high=eps_high)
    batch, logp = setup(cfg)
    loss, metrics = cispo.loss(batch, logp, cfg)
    expected, expected_grad = minimax_loss(RATIOS, ADV, eps_low, eps_high)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    (grad,) = torch.autograd.grad(loss, logp)
    # every token keeps a gradient, even the clipped ones: −r̂·A / 4
    assert grad.flatten().tolist() == pytest.approx(expected_grad, rel=1e-6)
    assert all(g != 0 for g in grad.flatten().tolist())
    # default: only 6.0 is capped (at 5); with (0.2, 0.28): 1.5 → 1.28, 0.5 → 0.8, 6.0 → 1.28
    assert metrics["clip_fraction"] == pytest.approx(0.25 if eps_low is None else 0.75)


def test_default_matches_trl_cispo_with_epsilon_high_5():
    cfg = cispo.Config()
    batch, logp = setup(cfg)
    loss, _ = cispo.loss(batch, logp, cfg)
    trl_ratio = torch.clamp(torch.tensor(RATIOS), max=5.0)  # TRL: clamp(coef_1, max=epsilon_high), no lower bound
    trl = (-trl_ratio * torch.tensor(ADV) * logp.detach()).mean()  # token-mean of 4 tokens
    assert loss.item() == pytest.approx(trl.item(), rel=1e-6)


def test_config_refuses_dual_clip_and_registers():
    with pytest.raises(ValueError):
        cispo.Config(dual_clip=3.0)
    assert ALGORITHMS["cispo"] is cispo
    cfg = load_config("configs/cispo.yaml", [])
    assert cfg.algorithm.name == "cispo" and cfg.algorithm.epsilon is None and cfg.algorithm.clip_high == 4.0
