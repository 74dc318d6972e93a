"""GSPO on hand numbers. Expected values come from the GSPO paper's objective written out here,
J = (1/G)·Σ_i min(s_i·A_i, clip(s_i, 1−ε_l, 1+ε_h)·A_i), s_i = exp((1/|y_i|)·Σ_t log π_θ/π_old),
with the semantics of TRL ``trl/trainer/grpo_trainer.py`` (``importance_sampling_level="sequence"``:
the masked mean log-ratio per response, then the grpo per-sequence token mean) and, for GSPO-token,
verl ``verl/trainer/ppo/core_algos.py::compute_policy_loss_gspo`` (log s_{i,t} = sg[log s_i] +
log π_θ(y_t) − sg[log π_θ(y_t)]).

Rows "a" (2 tokens with EOS) and "bb" (3 tokens); old log-probs 0, so the log-ratios are the
log-probs: row 0 (0.3, −0.1) → mean 0.1, row 1 (−0.2, 0.1, −0.2) → mean −0.1.
"""

import math

import pytest
import torch
from helpers import text_batch, tiny

from itero.algorithms import ALGORITHMS, grpo, gspo
from itero.config import load_config
from itero.core.masked import aggregation_weights

LOGP = [[0.3, -0.1, 0.0], [-0.2, 0.1, -0.2]]
S0, S1 = math.exp(0.1), math.exp(-0.1)


def setup(advantages, cfg):
    _, tok = tiny()
    batch = text_batch(tok, ["p", "p"], ["a", "bb"], scores=[1.0, 0.0], group_ids=[0, 0])
    mask = batch.response_mask
    assert mask.sum(-1).tolist() == [2, 3]
    logp = (torch.tensor(LOGP) * mask).requires_grad_(True)
    batch = batch.replace(
        old_logprobs=torch.zeros(2, 3),
        advantages=torch.tensor(advantages) * mask,
        token_weights=aggregation_weights(mask, cfg.loss_agg),
    )
    return batch, logp


def gspo_objective(s, adv, eps_low, eps_high):
    """−J: the mean over responses of max(−A·s, −A·clip(s))."""
    clip = lambda x: min(max(x, 1 - eps_low), 1 + eps_high)
    return sum(max(-a * x, -a * clip(x)) for x, a in zip(s, adv)) / len(s)


def test_sequence_ratio_loss_and_gradient():
    cfg = gspo.Config(epsilon=0.2, epsilon_high=0.2)
    batch, logp = setup([[1.0] * 3, [-1.0] * 3], cfg)
    loss, metrics = gspo.loss(batch, logp, cfg)
    assert loss.item() == pytest.approx(gspo_objective([S0, S1], [1.0, -1.0], 0.2, 0.2))  # (−S0 + S1) / 2
    assert metrics["ratio_mean"] == pytest.approx((2 * S0 + 3 * S1) / 5)  # s_i on each of its tokens
    (grad,) = torch.autograd.grad(loss, logp)
    # ∂(−A_i·s_i / G)/∂log π(y_t) = −A_i·s_i / (G·|y_i|): −S0/4 on row 0, +S1/6 on row 1, 0 on padding
    assert grad.flatten().tolist() == pytest.approx([-S0 / 4, -S0 / 4, 0.0, S1 / 6, S1 / 6, S1 / 6], abs=1e-6)


def test_paper_clip_range_clips_whole_sequences():
    cfg = gspo.Config()  # ε_low 3e-4, ε_high 4e-4
    batch, logp = setup([[1.0] * 3, [-1.0] * 3], cfg)
    loss, metrics = gspo.loss(batch, logp, cfg)
    # s_0 = 1.105 > 1.0004 with A > 0 and s_1 = 0.905 < 0.9997 with A < 0: both clipped
    # (−1.0004 + 0.9997) / 2, to float32 precision
    assert loss.item() == pytest.approx(gspo_objective([S0, S1], [1.0, -1.0], 3e-4, 4e-4), abs=1e-7)
    assert metrics["clip_fraction"] == 1.0
    (grad,) = torch.autograd.grad(loss, logp)
    assert grad.abs().max().item() == 0.0


def test_gspo_token_gives_each_token_its_own_advantage():
    # J = (1/G)·Σ_i (1/|y_i|)·Σ_t s_i·A_it inside the clip range; ∂/∂log π(y_t) = s_i·A_it / (G·|y_i|)
    adv = [[1.0, 2.0, 0.0], [-1.0, -1.0, 0.5]]
    cfg = gspo.Config(importance_level="sequence-token", epsilon=0.2, epsilon_high=0.2)
    batch, logp = setup(adv, cfg)
    loss, _ = gspo.loss(batch, logp, cfg)
    assert loss.item() == pytest.approx(-(S0 * (1 + 2) / 2 + S1 * (-1 - 1 + 0.5) / 3) / 2)
    (grad,) = torch.autograd.grad(loss, logp)
    expected = [-S0 * 1 / 4, -S0 * 2 / 4, 0.0, S1 / 6, S1 / 6, -S1 * 0.5 / 6]
    assert grad.flatten().tolist() == pytest.approx(expected, abs=1e-6)
    # the sequence level spreads the response's mean advantage over all of its tokens instead
    seq_cfg = gspo.Config(epsilon=0.2, epsilon_high=0.2)
    seq_loss, _ = gspo.loss(batch, logp, seq_cfg)
    (seq_grad,) = torch.autograd.grad(seq_loss, logp)
    assert seq_grad[0, 0].item() == pytest.approx(-S0 * (1 + 2) / (2 * 2 * 2))


def test_grpo_option_equals_the_gspo_algorithm():
    cfg = grpo.Config(importance_level="sequence", epsilon=3e-4, epsilon_high=4e-4, loss_agg="seq-mean-token-mean")
    batch, logp = setup([[1.0] * 3, [-0.5] * 3], cfg)
    a, _ = grpo.loss(batch, logp, cfg)
    b, _ = gspo.loss(batch, logp, gspo.Config())
    assert a.item() == pytest.approx(b.item())


def test_registered_and_preset_loads():
    assert ALGORITHMS["gspo"] is gspo
    cfg = load_config("configs/gspo.yaml", [])
    assert cfg.algorithm.name == "gspo" and cfg.algorithm.epsilon == 3e-4 and cfg.algorithm.epsilon_high == 4e-4
