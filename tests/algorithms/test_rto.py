"""RTO (§14) on hand numbers: the DPO token reward (scale, then clamp), prepare = PPO's rewards + the
DPO term through GAE, config validation."""

import re

import pytest
import torch
from helpers import text_batch, tiny

from itero.algorithms import ppo, rto
from itero.config import load_config
from itero.schema import ConfigError


def test_dpo_token_rewards_scale_then_clamp():
    dpo = torch.tensor([[0.0, -3.0, 1.5]])
    ref = torch.tensor([[-2.0, -1.0, -1.5]])
    mask = torch.tensor([[True, True, False]])
    # log π_dpo − log π_ref = (2.0, −2.0, 3.0); ×0.05 = (0.1, −0.1, 0.15); clamp ±0.08 → (0.08, −0.08, ·); masked → 0
    r = rto.dpo_token_rewards(dpo, ref, mask, scale=0.05, clip=0.08)
    assert r[0].tolist() == pytest.approx([0.08, -0.08, 0.0], abs=1e-7)
    # clamping before scaling would give 0.05·0.08 = 0.004: the order matters
    # clip = 0 → no clamp: (0.1, −0.1, 0)
    assert rto.dpo_token_rewards(dpo, ref, mask, scale=0.05, clip=0.0)[0].tolist() == pytest.approx(
        [0.1, -0.1, 0.0], abs=1e-7
    )
    # a wide clip changes nothing either
    assert rto.dpo_token_rewards(dpo, ref, mask, scale=0.05, clip=1.0)[0].tolist() == pytest.approx(
        [0.1, -0.1, 0.0], abs=1e-7
    )


def test_prepare_adds_the_dpo_reward_to_ppo_rewards():
    _, tok = tiny()
    batch = text_batch(tok, ["p"], ["ab"], scores=[2.0]).replace(  # "ab" + EOS: 3 tokens
        old_logprobs=torch.tensor([[-1.0, -2.0, -0.5]]),
        ref_logprobs=torch.tensor([[-1.5, -1.0, -0.5]]),
        dpo_logprobs=torch.tensor([[0.0, -3.0, 1.5]]),
        values=torch.tensor([[0.5, 1.0, 1.5]]),
    )
    cfg = rto.Config(
        dpo_model_path="dpo",
        beta=0.1,
        dpo_reward_scale=0.05,
        dpo_reward_clip=0.08,
        gamma=1.0,
        lam=0.95,
        whiten_advantages=False,
    )
    out = rto.prepare(batch, cfg)
    # −β_kl·k1, k1 = old − ref = (0.5, −1.0, 0.0)          → (−0.05, 0.1, 0.0)
    # DPO: 0.05·(dpo − ref) = 0.05·(1.5, −2.0, 2.0) = (0.075, −0.1, 0.1), clamp ±0.08 → (0.075, −0.08, 0.08)
    # outcome 2.0 (inside reward_clip 10) at t = 2
    # r = (−0.05 + 0.075, 0.1 − 0.08, 0.08 + 2.0) = (0.025, 0.02, 2.08)
    assert out.rewards[0].tolist() == pytest.approx([0.025, 0.02, 2.08], abs=1e-6)
    ppo_only = ppo.token_rewards(batch, cfg)
    assert (out.rewards - ppo_only)[0].tolist() == pytest.approx([0.075, -0.08, 0.08], abs=1e-6)
    # GAE, γ = 1, λ = 0.95, V = (0.5, 1.0, 1.5):
    #   δ2 = 2.08 − 1.5 = 0.58                  A2 = 0.58
    #   δ1 = 0.02 + 1.5 − 1.0 = 0.52            A1 = 0.52 + 0.95·0.58 = 1.071
    #   δ0 = 0.025 + 1.0 − 0.5 = 0.525          A0 = 0.525 + 0.95·1.071 = 1.54245
    #   G = A + V = (2.04245, 2.071, 2.08)
    assert out.advantages[0].tolist() == pytest.approx([1.54245, 1.071, 0.58], abs=1e-5)
    assert out.returns[0].tolist() == pytest.approx([2.04245, 2.071, 2.08], abs=1e-5)


def test_config_needs_a_dpo_model():
    with pytest.raises(ConfigError, match=re.escape("algorithm.dpo_model_path")):
        load_config(None, ["algorithm=rto"])
    cfg = load_config(None, ["algorithm=rto", "algorithm.dpo_model_path=runs/dpo/iter_1/checkpoint"]).algorithm
    assert cfg.name == "rto" and cfg.dpo_reward_scale == 0.05 and cfg.dpo_reward_clip == 0.05


def test_needs_reference_even_without_kl():
    assert rto.Config(dpo_model_path="dpo", beta=0.0).needs_reference
    assert not ppo.Config(beta=0.0).needs_reference  # plain PPO with β = 0 loads no reference
    assert rto.Config.needs_dpo_model


def test_the_in_run_dpo_model_takes_the_dpo_keys():
    from itero.loop import pre_run_config

    def dpo_model_config(cfg):
        (pre,) = rto.schedule(cfg.algorithm).pre_runs
        return pre_run_config(cfg, pre)

    cfg = load_config(
        None,
        [
            "algorithm=rto",
            "algorithm.dpo_iterations=2",
            "algorithm.dpo_loss=dpop",
            "algorithm.dpo_beta=0.2",
            "algorithm.dpo_lr=1e-4",
            "training.lr=5e-5",
            "loop.iterations=5",
        ],
    )
    sub = dpo_model_config(cfg)
    assert (sub.algorithm.name, sub.algorithm.loss, sub.algorithm.beta) == ("dpo", "dpop", 0.2)
    assert (sub.training.lr, sub.loop.iterations) == (1e-4, 2)
    assert (
        dpo_model_config(load_config(None, ["algorithm=rto", "algorithm.dpo_iterations=1"])).algorithm.loss == "sigmoid"
    )
    with pytest.raises(ConfigError, match="unknown dpo_loss 'dpo'; choose one of sigmoid"):
        load_config(None, ["algorithm=rto", "algorithm.dpo_iterations=1", "algorithm.dpo_loss=dpo"])
