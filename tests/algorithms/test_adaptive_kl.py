"""The adaptive KL coefficient as the algorithms carry it: config, the update from a prepared batch (hand
numbers), and the state file iteration k+1 starts from."""

import json
import math
import re

import pytest
import torch
from helpers import text_batch

from itero.algorithms import ALGORITHMS, grpo, ppo, rloo
from itero.algorithms.policy_gradient import AdaptiveKLCoef, KLCoefConfig
from itero.config import load_config
from itero.models.tiny import build_char_tokenizer
from itero.schema import ConfigError
from itero.stages.iteration_state import iteration_config, state_before
from itero.tracking.resume import StageFolder, write_state
from itero.tracking.rundir import RunDirError

OLD = torch.tensor([[-1.0, -2.0, -0.5], [-0.2, -0.3, 0.0]])
REF = torch.tensor([[-1.5, -1.0, -0.5], [-0.4, -0.1, 5.0]])  # 5.0 sits on row 1's padding: ignored


def two_rows():
    # row 0 "ab" + EOS: 3 tokens; row 1 "c" + EOS: 2 tokens and one padding column
    tok = build_char_tokenizer()
    return text_batch(tok, ["p", "q"], ["ab", "c"], scores=[1.0, 0.0]).replace(old_logprobs=OLD, ref_logprobs=REF)


REQUIRED = {"rto": {"dpo_model_path": "dpo"}, "distill": {"teacher_path": "teacher"}}


def configs(**kl):
    """Every algorithm with a KL coefficient, with the given KL fields."""
    kl_algorithms = [name for name, m in ALGORITHMS.items() if issubclass(m.Config, KLCoefConfig)]
    assert {"grpo", "gspo", "cispo", "ppo", "vineppo", "rloo", "reinforce_pp", "rto"} <= set(kl_algorithms)
    return [ALGORITHMS[name].Config(**REQUIRED.get(name, {}), **kl) for name in kl_algorithms]


def test_the_kl_fields_are_declared_once_and_every_kl_algorithm_carries_the_state():
    for cls in {type(c) for c in configs()}:
        assert issubclass(cls, KLCoefConfig)
        assert not any(
            "kl_ctrl" in vars(base).get("__annotations__", {})
            for base in cls.__mro__[: cls.__mro__.index(KLCoefConfig)]
        )
    for cfg in configs(beta=0.01, kl_ctrl="adaptive"):
        module = ALGORITHMS[cfg.name]
        state = module.schedule(cfg).state
        assert state is not None and isinstance(state(), AdaptiveKLCoef), cfg.name
        assert module.schedule(cfg.model_copy(update={"kl_ctrl": "fixed"})).state is None
    # verl's defaults: target_kl 0.1, horizon 10000; fixed unless asked
    cfg = grpo.Config()
    assert (cfg.kl_ctrl, cfg.kl_target, cfg.kl_horizon) == ("fixed", 0.1, 10000.0)


def test_adaptive_needs_a_starting_beta():
    with pytest.raises(ConfigError, match=re.escape("algorithm.kl_ctrl=adaptive multiplies β")):
        load_config(None, ["algorithm=grpo", "algorithm.kl_ctrl=adaptive"])
    cfg = load_config(None, ["algorithm=ppo", "algorithm.kl_ctrl=adaptive", "algorithm.kl_horizon=500"]).algorithm
    assert (cfg.kl_ctrl, cfg.beta, cfg.kl_horizon) == ("adaptive", 0.01, 500.0)


def test_ppo_update_reads_the_k1_in_the_reward_and_the_next_reward_uses_the_new_beta():
    cfg = ppo.Config(beta=0.01, kl_ctrl="adaptive", kl_target=0.1, kl_horizon=10)
    state = AdaptiveKLCoef(cfg)
    assert state.config(cfg).beta == 0.01  # iteration 1 runs with the starting β
    stats = state.update(two_rows())
    # k1 = old − ref: row 0 (0.5, −1.0, 0.0) → −0.5/3; row 1 (0.2, −0.2) → 0; KL = (−1/6 + 0)/2 = −1/12
    # e = clip(−1/12 / 0.1 − 1, −0.2, 0.2) = −0.2; β = 0.01·(1 − 0.2·2/10) = 0.0096
    assert stats["kl_ctrl_kl"] == pytest.approx(-1 / 12, abs=1e-6)
    assert stats["kl_coef_next"] == pytest.approx(0.0096, rel=1e-9)
    after = state.config(cfg)
    assert after.beta == pytest.approx(0.0096, rel=1e-9) and cfg.beta == 0.01  # a copy; the run's config stays
    # the reward of the next iteration: −0.0096·k1 on row 0's first two tokens
    rewards = ppo.token_rewards(two_rows(), after)
    assert rewards[0, :2].tolist() == pytest.approx([-0.0096 * 0.5, 0.0096 * 1.0], abs=1e-7)


def test_kl_loss_algorithms_read_k3():
    cfg = grpo.Config(beta=0.01, kl_ctrl="adaptive", kl_target=0.125, kl_horizon=10)
    state = AdaptiveKLCoef(cfg)
    stats = state.update(two_rows())
    # k3 = e^(−x) + x − 1, x = old − ref: row 0 x = (0.5, −1, 0) → (0.1065307, 0.7182818, 0), mean 0.2749375
    # row 1 x = (0.2, −0.2) → (0.0187308, 0.0214028), mean 0.0200668; KL = (0.2749375 + 0.0200668)/2
    k3 = lambda x: math.exp(-x) + x - 1
    kl = ((k3(0.5) + k3(-1.0) + k3(0.0)) / 3 + (k3(0.2) + k3(-0.2)) / 2) / 2
    assert stats["kl_ctrl_kl"] == pytest.approx(kl, abs=1e-6) == pytest.approx(0.1475021, abs=1e-6)
    # e = 0.1475021/0.125 − 1 = 0.1800168 (inside ±0.2); β = 0.01·(1 + 0.1800168·2/10)
    assert state.config(cfg).beta == pytest.approx(0.01 * (1 + (kl / 0.125 - 1) * 0.2), rel=1e-6)
    assert state.config(cfg).kl_loss_coef == state.config(cfg).beta  # the loss's β is the carried one
    # PPO with the KL as a loss reads k3 too
    assert ppo.Config(kl_mode="loss").measured_kl_estimator == "k3"


def test_rloo_reads_the_k1_its_reward_subtracts():
    cfg = rloo.Config(beta=0.01, kl_ctrl="adaptive", kl_target=0.1, kl_horizon=10)
    stats = AdaptiveKLCoef(cfg).update(two_rows())
    assert stats["kl_ctrl_kl"] == pytest.approx(-1 / 12, abs=1e-6)  # the k1 token means of the ppo test above


def test_a_horizon_that_could_flip_the_sign_of_beta_is_refused():
    state = AdaptiveKLCoef(grpo.Config(beta=0.01, kl_ctrl="adaptive", kl_horizon=0.3))
    with pytest.raises(ValueError, match="raise kl_horizon"):
        state.update(two_rows())  # 2 rows > 5·0.3: 1 − 0.2·2/0.3 < 0


def folder(run, k):
    return StageFolder(run / f"iter_{k}", "sha", previous=run / f"iter_{k - 1}" if k > 1 else None)


def test_iteration_k_starts_from_the_state_iteration_k_minus_1_saved(tmp_path):
    cfg = grpo.Config(beta=0.01, kl_ctrl="adaptive", kl_target=0.125, kl_horizon=10)
    algo = ALGORITHMS[cfg.name]
    assert iteration_config(algo, cfg, folder(tmp_path, 1)).beta == 0.01
    state = state_before(algo, cfg, folder(tmp_path, 1))
    state.update(two_rows())
    write_state(tmp_path / "iter_1" / f"{state.name}.json", state.state_dict())
    saved = json.loads((tmp_path / "iter_1" / "kl_ctrl.json").read_text())
    assert saved == {"value": state.controller.value, "target": 0.125, "horizon": 10.0} and saved["value"] != 0.01
    # a new process (a resumed run) reads the same β for iteration 2, in prepare and in train
    assert iteration_config(algo, cfg, folder(tmp_path, 2)).beta == saved["value"]
    assert state_before(algo, cfg, folder(tmp_path, 2)).controller.value == saved["value"]
    # fixed β carries nothing and reads nothing
    fixed = grpo.Config(beta=0.01)
    assert iteration_config(ALGORITHMS[fixed.name], fixed, folder(tmp_path / "none", 5)).beta == 0.01


def test_a_missing_or_damaged_state_file_is_reported(tmp_path):
    cfg = grpo.Config(beta=0.01, kl_ctrl="adaptive")
    algo = ALGORITHMS[cfg.name]
    with pytest.raises(RunDirError, match=re.escape("iter_1/kl_ctrl.json is missing")):
        state_before(algo, cfg, folder(tmp_path, 2))
    write_state(tmp_path / "iter_1" / "kl_ctrl.json", state_before(algo, cfg, folder(tmp_path, 1)).state_dict())
    path = tmp_path / "iter_1" / "kl_ctrl.json"
    path.write_text(path.read_text().replace("0.01", "0.02"))  # a changed digit is still valid JSON
    with pytest.raises(RunDirError, match="sha256 differs"):
        state_before(algo, cfg, folder(tmp_path, 2))
