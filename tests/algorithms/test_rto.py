"""RTO (§14) on hand numbers: the DPO token reward (scale, then clamp), prepare = PPO's rewards + the
DPO term through GAE, config validation."""

import re
from pathlib import Path

import pytest
import torch
import yaml
from helpers import text_batch, tiny

from itero.algorithms import ppo, rto
from itero.config import load_config
from itero.schema import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


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


def _dpo_model_config(cfg):
    from itero.loop import pre_run_config

    (pre,) = rto.schedule(cfg.algorithm).pre_runs
    return pre_run_config(cfg, pre)


def test_the_in_run_dpo_model_is_the_dpo_section():
    cfg = load_config(
        None,
        [
            "algorithm=rto",
            "algorithm.dpo_iterations=2",
            "algorithm.dpo.loss=rdpo",
            "algorithm.dpo.beta=0.2",
            "algorithm.dpo.rdpo_alpha=0.01",  # any option of the dpo algorithm, not only loss, beta and nll_weight
            "algorithm.dpo.pairing=all_pairs",
            "algorithm.dpo_lr=1e-4",
            "training.lr=5e-5",
            "loop.iterations=5",
        ],
    )
    sub = _dpo_model_config(cfg)
    assert sub.algorithm is cfg.algorithm.dpo
    assert (sub.algorithm.name, sub.algorithm.loss, sub.algorithm.beta) == ("dpo", "rdpo", 0.2)
    assert (sub.algorithm.rdpo_alpha, sub.algorithm.pairing) == (0.01, "all_pairs")
    assert (sub.training.lr, sub.loop.iterations) == (1e-4, 2)
    with pytest.raises(ConfigError, match=re.escape("algorithm.dpo.loss: got 'dpo'")):
        load_config(None, ["algorithm=rto", "algorithm.dpo_iterations=1", "algorithm.dpo.loss=dpo"])
    with pytest.raises(ConfigError, match=r"unknown key 'algorithm.dpo.rdpo_alfa' \(did you mean 'rdpo_alpha'\?\)"):
        load_config(None, ["algorithm=rto", "algorithm.dpo_iterations=1", "algorithm.dpo.rdpo_alfa=0.1"])


def test_the_dpo_section_defaults_to_the_sigmoid_loss_at_beta_0_1():
    from itero.algorithms import dpo

    section = load_config(None, ["algorithm=rto", "algorithm.dpo_iterations=1"]).algorithm.dpo
    assert (section.loss, section.beta, section.nll_weight) == ("sigmoid", 0.1, 0.0)
    assert section == dpo.Config()


def test_the_old_dpo_keys_still_load(tmp_path):
    old = {"loss": "dpop", "beta": 0.2, "nll_weight": 0.5}
    new = ["algorithm.dpo.loss=dpop", "algorithm.dpo.beta=0.2", "algorithm.dpo.nll_weight=0.5"]
    expected = load_config(None, ["algorithm=rto", "algorithm.dpo_iterations=1", *new]).algorithm
    # a run directory's config.yaml written with algorithm.dpo_loss / dpo_beta / dpo_nll_weight
    path = tmp_path / "config.yaml"
    algorithm = {"name": "rto", "dpo_iterations": 1, **{f"dpo_{key}": value for key, value in old.items()}}
    path.write_text(yaml.safe_dump({"algorithm": algorithm}))
    assert load_config(path).algorithm == expected
    # and as overrides
    overrides = [f"algorithm.dpo_{key}={value}" for key, value in old.items()]
    assert load_config(None, ["algorithm=rto", "algorithm.dpo_iterations=1", *overrides]).algorithm == expected
    # an override wins over the file, in either shape; a null old key is its default
    assert load_config(path, ["algorithm.dpo.loss=ipo"]).algorithm.dpo.loss == "ipo"
    assert load_config(CONFIGS / "rto.yaml", ["algorithm.dpo_loss=ipo"]).algorithm.dpo.loss == "ipo"
    assert load_config(CONFIGS / "rto.yaml", ["algorithm.dpo_loss=null"]).algorithm.dpo.loss == "dpop"
    assert load_config(path, ["algorithm.dpo_beta=null"]).algorithm.dpo.beta == 0.2
    # the keys are RTO's only
    with pytest.raises(ConfigError, match="unknown key 'algorithm.dpo_loss'"):
        load_config(None, ["algorithm=ppo", "algorithm.dpo_loss=dpop"])


def test_configs_give_the_dpo_section():
    for preset, loss in (("rto.yaml", "dpop"), ("chat/rto.yaml", "sigmoid")):
        data = yaml.safe_load((CONFIGS / preset).read_text(encoding="utf-8"))
        assert data["algorithm"]["dpo"] == {"loss": loss, "beta": 0.1}
        assert not {"dpo_loss", "dpo_beta", "dpo_nll_weight"} & set(data["algorithm"])
