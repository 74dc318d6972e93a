import math

import pytest
import torch
from helpers import text_batch, tiny

from itero.algorithms import rloo


def one_group():
    # scores (1, 0, 0), lengths with EOS 2, 3, 2
    _, tok = tiny()
    return text_batch(tok, ["p"] * 3, ["a", "bb", "c"], scores=[1, 0, 0], group_ids=[4, 4, 4])


def with_kl_inputs(batch):
    # log π_old − log π_ref per token: row 0 (0.2, 0.2) → 0.4; row 1 (0.1, 0, −0.1) → 0; row 2 (1, 0) → 1
    old = torch.tensor([[-1.0, -1.0, 0.0], [-1.0, -1.0, -1.0], [-0.5, -2.0, 0.0]])
    diff = torch.tensor([[0.2, 0.2, 0.0], [0.1, 0.0, -0.1], [1.0, 0.0, 0.0]])
    return batch.replace(old_logprobs=old, ref_logprobs=old - diff)


def test_prepare_sequence_kl_in_reward_then_leave_one_out():
    out = rloo.prepare(with_kl_inputs(one_group()), rloo.Config(beta=0.5))
    # shaped R = score − 0.5·ΣKL = 1 − 0.2, 0 − 0, 0 − 0.5 = (0.8, 0, −0.5)
    # A_i = R_i − mean of the other two: 0.8 + 0.25 = 1.05; 0 − 0.15 = −0.15; −0.5 − 0.4 = −0.9
    assert out.advantages[:, 0].tolist() == pytest.approx([1.05, -0.15, -0.9], rel=1e-6)
    assert out.advantages[1].tolist() == pytest.approx([-0.15] * 3, rel=1e-6)
    assert out.advantages[0, 2] == 0  # padding
    # per-token rewards: −β·k1 on every token, plus the score at the last one
    assert out.rewards[0].tolist() == pytest.approx([-0.1, 0.9, 0.0], rel=1e-6)
    assert out.seq_weights.tolist() == pytest.approx([1 / 3] * 3)


def test_prepare_without_kl_and_normalized():
    out = rloo.prepare(one_group(), rloo.Config(beta=0.0))
    assert out.advantages[:, 0].tolist() == pytest.approx([1.0, -0.5, -0.5])
    assert not rloo.Config(beta=0.0).needs_reference and rloo.Config().needs_reference
    # (1, −0.5, −0.5): mean 0, unbiased std √0.75
    norm = rloo.prepare(one_group(), rloo.Config(beta=0.0, normalize_advantages=True))
    expected = [a / (math.sqrt(0.75) + 1e-4) for a in (1, -0.5, -0.5)]
    assert norm.advantages[:, 0].tolist() == pytest.approx(expected, rel=1e-6)


def test_loss_sequence_ratio_hand_numbers():
    cfg = rloo.Config(beta=0.5)
    batch = rloo.prepare(with_kl_inputs(one_group()), cfg)  # A = (1.05, −0.15, −0.9)
    # Σ log π_θ − Σ log π_old per response: 0.3, −0.3, 0 (spread over the tokens)
    logprobs = batch.old_logprobs + torch.tensor([[0.1, 0.2, 0.0], [-0.3, 0.0, 0.0], [0.4, -0.4, 0.0]])
    loss, metrics = rloo.loss(batch, logprobs, cfg)
    # row 0: ρ = e^0.3 = 1.3499, A > 0 → clipped at 1.2: −1.2·1.05 = −1.26
    # row 1: ρ = e^−0.3 = 0.7408, A < 0 → clipped at 0.8: 0.15·0.8 = 0.12
    # row 2: ρ = 1: 0.9;  mean over the 3 responses = (−1.26 + 0.12 + 0.9) / 3 = −0.08
    assert loss.item() == pytest.approx(-0.08, abs=1e-6)
    assert metrics["clip_fraction"] == pytest.approx(2 / 3)
    assert metrics["ratio_max"] == pytest.approx(math.exp(0.3), rel=1e-6)
    assert metrics["kl_ref"] > 0
