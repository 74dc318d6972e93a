"""PPO-clip, value clipping and NLL on hand-computed numbers (ratios built as exp(ln r) with old logp = 0)."""

import math

import pytest
import torch

from itero.core.losses import cispo_loss, clipped_pg_loss, clipped_value_loss, nll_loss, sequence_log_ratio
from itero.core.masked import aggregation_weights


def ratios_as_logprobs(*ratios):
    logp = torch.tensor([[math.log(r) for r in ratios]], dtype=torch.float64, requires_grad=True)
    return logp, torch.zeros_like(logp)


def test_clipped_pg_asymmetric_eps():
    logp, old = ratios_as_logprobs(1.5, 0.5, 1.5, 0.5, 1.25)
    adv = torch.tensor([[1.0, 1.0, -2.0, -1.0, 1.0]], dtype=torch.float64)
    loss, stats = clipped_pg_loss(logp, old, adv, eps_low=0.2, eps_high=0.28)
    # ρ=1.5,A=1: max(−1.5, −1.28) = −1.28 (clipped);  ρ=0.5,A=1: max(−0.5, −0.8) = −0.5
    # ρ=1.5,A=−2: max(3.0, 2.56) = 3.0;  ρ=0.5,A=−1: max(0.5, 0.8) = 0.8 (clipped)
    # ρ=1.25,A=1: 1.25 ≤ 1.28 so unclipped, −1.25
    torch.testing.assert_close(loss, torch.tensor([[-1.28, -0.5, 3.0, 0.8, -1.25]], dtype=torch.float64))
    assert stats["clipped"].tolist() == [[True, False, False, True, False]]
    torch.testing.assert_close(stats["ratio"], torch.tensor([[1.5, 0.5, 1.5, 0.5, 1.25]], dtype=torch.float64))
    (grad,) = torch.autograd.grad(loss.sum(), logp)
    # ∂(−Aρ)/∂logp = −Aρ on unclipped tokens, 0 on clipped ones
    torch.testing.assert_close(grad, torch.tensor([[0.0, -0.5, 3.0, 0.0, -1.25]], dtype=torch.float64))
    # symmetric ε = 0.2 clips the last token: max(−1.25, −1.2) = −1.2
    sym, _ = clipped_pg_loss(logp, old, adv, eps_low=0.2, eps_high=0.2)
    assert sym[0, 4].item() == pytest.approx(-1.2)


def test_clipped_pg_dual_clip():
    logp, old = ratios_as_logprobs(4.0, 1.5, 4.0)
    adv = torch.tensor([[-1.0, -2.0, 1.0]], dtype=torch.float64)
    loss, stats = clipped_pg_loss(logp, old, adv, dual_clip=3.0)
    # ρ=4,A=−1: max(4, 1.2) = 4, capped at −A·c = 3;  ρ=1.5,A=−2: max(3, 2.4) = 3 < cap 6
    # ρ=4,A=+1: max(−4, −1.2) = −1.2 (clip; dual clip only acts on negative advantages)
    torch.testing.assert_close(loss, torch.tensor([[3.0, 3.0, -1.2]], dtype=torch.float64))
    assert stats["dual_clipped"].tolist() == [[True, False, False]]
    assert stats["clipped"].tolist() == [[False, False, True]]
    (grad,) = torch.autograd.grad(loss.sum(), logp)
    torch.testing.assert_close(grad, torch.tensor([[0.0, 3.0, 0.0]], dtype=torch.float64))
    with pytest.raises(ValueError):
        clipped_pg_loss(logp, old, adv, dual_clip=0.5)


def test_clipped_pg_sequence_advantage_broadcast_and_aggregation():
    # ratio 1 everywhere: per-token loss = −A; token-mean over the 3 valid tokens = −(1 + 1 + 4)/3 = −2
    logp = torch.zeros(2, 2)
    loss, _ = clipped_pg_loss(logp, logp, torch.tensor([[1.0], [4.0]]))
    mask = torch.tensor([[1, 1], [1, 0]], dtype=torch.bool)
    assert (loss * aggregation_weights(mask, "token-mean")).sum().item() == pytest.approx(-2.0)
    # seq-mean-token-mean: (−1 + −4)/2 = −2.5
    assert (loss * aggregation_weights(mask, "seq-mean-token-mean")).sum().item() == pytest.approx(-2.5)


def test_clipped_value_loss():
    values = torch.tensor([[1.5, 1.1, 0.5, 2.0]])
    old = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    returns = torch.tensor([[2.0, 2.0, 0.6, 2.0]])
    out = clipped_value_loss(values, old, returns, eps_v=0.2)
    # ½·max((1.5−2)², (1.2−2)²) = ½·0.64 = 0.32;  ½·max(0.81, 0.81) = 0.405
    # ½·max((0.5−0.6)², (0.8−0.6)²) = ½·0.04 = 0.02;  ½·max(0, (1.2−2)²) = 0.32 (the clip binds even at V = G)
    torch.testing.assert_close(out, torch.tensor([[0.32, 0.405, 0.02, 0.32]]))


def test_nll_loss():
    torch.testing.assert_close(nll_loss(torch.tensor([[-0.5, -2.0]])), torch.tensor([[0.5, 2.0]]))


def test_sequence_log_ratio_ignores_padding():
    # row 0: log-ratios 0.3, −0.1 and a padded 9.0 → mean 0.1; row 1: one token, 0.4
    logp = torch.tensor([[0.3, -0.1, 9.0], [0.4, 5.0, 5.0]], requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    seq = sequence_log_ratio(logp, torch.zeros(2, 3), mask)
    torch.testing.assert_close(seq, torch.tensor([[0.1] * 3, [0.4] * 3]))
    (grad,) = torch.autograd.grad(seq[:, 0].sum(), logp)
    torch.testing.assert_close(grad, torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]]))
    tok = sequence_log_ratio(logp, torch.zeros(2, 3), mask, token_gradient=True)
    torch.testing.assert_close(tok.detach() * mask, seq.detach() * mask)
    (grad,) = torch.autograd.grad(tok[0, 0], logp)  # its own token only
    torch.testing.assert_close(grad, torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))


def test_cispo_weight_is_a_constant():
    logp, old = ratios_as_logprobs(3.0, 0.5)
    adv = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    loss, stats = cispo_loss(logp, old, adv, eps_low=None, eps_high=1.0)
    # weights min(3, 2) = 2 and 0.5 (no lower bound): −2·1·ln 3, −0.5·(−1)·ln 0.5
    torch.testing.assert_close(loss, torch.tensor([[-2 * math.log(3.0), 0.5 * math.log(0.5)]], dtype=torch.float64))
    assert stats["clipped"].tolist() == [[True, False]]
    (grad,) = torch.autograd.grad(loss.sum(), logp)
    torch.testing.assert_close(grad, torch.tensor([[-2.0, 0.5]], dtype=torch.float64))
