"""PPO (§10) on hand numbers: token rewards, GAE and whitening, the clipped value loss, the ratio guard,
config validation. Every expected number is worked out in the comment next to it."""

import math
import re
import statistics

import pytest
import torch
from helpers import text_batch, tiny

from itero.algorithms import ppo
from itero.config import load_config
from itero.core.masked import aggregation_weights
from itero.models.value import ValueModel, compute_values
from itero.schema import ConfigError


def two_rows(scores=(15.0, -0.5)):
    # row 0 "ab" + EOS: 3 tokens; row 1 "c" + EOS: 2 tokens and one padding column
    _, tok = tiny()
    return text_batch(tok, ["p", "q"], ["ab", "c"], scores=list(scores))


# ---- token rewards --------------------------------------------------------------------------------
OLD = torch.tensor([[-1.0, -2.0, -0.5], [-0.2, -0.3, 0.0]])
REF = torch.tensor([[-1.5, -1.0, -0.5], [-0.4, -0.1, 5.0]])  # 5.0 sits on row 1's padding: must be ignored


def test_token_rewards_clamped_outcome_minus_k1():
    batch = two_rows().replace(old_logprobs=OLD, ref_logprobs=REF)
    rewards = ppo.token_rewards(batch, ppo.Config(beta=0.1, reward_clip=10.0))
    # k1 = old − ref: row 0 (0.5, −1.0, 0.0), row 1 (0.2, −0.2); −β·k1 = (−0.05, 0.1, 0), (−0.02, 0.02)
    # outcome at the last valid token: row 0 clamp(15, ±10) = 10 at t=2; row 1 −0.5 at t=1
    assert rewards[0].tolist() == pytest.approx([-0.05, 0.1, 10.0], abs=1e-6)
    assert rewards[1].tolist() == pytest.approx([-0.02, 0.02 - 0.5, 0.0], abs=1e-6)
    # no clip: the raw 15 (k1 = 0 on that token)
    assert ppo.token_rewards(batch, ppo.Config(beta=0.1, reward_clip=None))[0, 2].item() == 15.0


def test_token_rewards_kl_as_loss_leaves_the_reward_alone():
    batch = two_rows().replace(old_logprobs=OLD, ref_logprobs=REF)
    cfg = ppo.Config(beta=0.1, kl_mode="loss")
    assert ppo.token_rewards(batch, cfg).tolist() == [[0.0, 0.0, 10.0], [0.0, -0.5, 0.0]]
    assert cfg.kl_loss_coef == 0.1
    assert ppo.Config(beta=0.1, kl_mode="reward").kl_loss_coef == 0.0


# ---- acceptance: λ = γ = 1 and a zero critic → G_t = R on every token ----------------------------
def test_zero_value_model_returns_are_the_outcome(tmp_path):
    policy, tok = tiny()
    policy.save_pretrained(tmp_path)
    critic = ValueModel.from_policy(tmp_path)  # head initialised at zero
    batch = text_batch(tok, ["12+3=", "p", "7*8="], ["15", "a longer one", "56."], scores=[1.0, -0.5, 0.25])
    values = compute_values(critic, batch, micro_batch_size=2)
    assert (values == 0).all()
    cfg = ppo.Config(gamma=1.0, lam=1.0, beta=0.0, whiten_advantages=False)
    out = ppo.prepare(batch.replace(values=values), cfg)
    mask = batch.response_mask
    for row, score in enumerate([1.0, -0.5, 0.25]):
        n = int(mask[row].sum())  # 3, 13, 4
        assert out.returns[row, :n].tolist() == [score] * n
        assert out.advantages[row, :n].tolist() == [score] * n
    assert (out.returns[~mask] == 0).all() and (out.advantages[~mask] == 0).all()


# ---- prepare: GAE with a critic, whitening -------------------------------------------------------
def critic_batch():
    # row 0: 3 tokens, score 1, V = (0.4, 0.2, 0.6); row 1: 2 tokens, score 0, V = (0.3, −0.1); 9.0 on padding
    return two_rows(scores=(1.0, 0.0)).replace(values=torch.tensor([[0.4, 0.2, 0.6], [0.3, -0.1, 9.0]]))


# γ = 1, λ = 0.5, V after the last token = 0:
#   row 0: δ2 = 1 − 0.6 = 0.4, A2 = 0.4; δ1 = 0.6 − 0.2 = 0.4, A1 = 0.4 + 0.5·0.4 = 0.6;
#          δ0 = 0.2 − 0.4 = −0.2, A0 = −0.2 + 0.5·0.6 = 0.1;  G = A + V = (0.5, 0.8, 1.0)
#   row 1: δ1 = 0 − (−0.1) = 0.1, A1 = 0.1; δ0 = −0.1 − 0.3 = −0.4, A0 = −0.4 + 0.5·0.1 = −0.35;
#          G = (−0.05, 0.0)
GAE_ADV = [[0.1, 0.6, 0.4], [-0.35, 0.1]]
GAE_RET = [[0.5, 0.8, 1.0], [-0.05, 0.0]]


def test_prepare_gae_by_hand():
    out = ppo.prepare(critic_batch(), ppo.Config(gamma=1.0, lam=0.5, beta=0.0, whiten_advantages=False))
    assert out.advantages[0].tolist() == pytest.approx(GAE_ADV[0], abs=1e-6)
    assert out.advantages[1, :2].tolist() == pytest.approx(GAE_ADV[1], abs=1e-6)
    assert out.returns[0].tolist() == pytest.approx(GAE_RET[0], abs=1e-6)
    assert out.returns[1, :2].tolist() == pytest.approx(GAE_RET[1], abs=1e-6)
    assert out.advantages[1, 2] == 0 and out.returns[1, 2] == 0  # padding (V = 9 there is ignored)
    assert out.rewards.tolist() == [[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    assert out.token_weights.flatten().tolist() == pytest.approx([0.2, 0.2, 0.2, 0.2, 0.2, 0.0])  # token-mean over 5


def test_prepare_whitens_over_valid_tokens():
    out = ppo.prepare(critic_batch(), ppo.Config(gamma=1.0, lam=0.5, beta=0.0))
    mask = out.response_mask
    flat = GAE_ADV[0] + GAE_ADV[1]  # mean 0.85 / 5 = 0.17
    mean, std = statistics.mean(flat), statistics.stdev(flat)
    assert mean == pytest.approx(0.17)
    assert out.advantages[mask].tolist() == pytest.approx([(a - mean) / std for a in flat], abs=1e-5)
    assert out.advantages[mask].mean().item() == pytest.approx(0.0, abs=1e-6)
    assert out.advantages[mask].std().item() == pytest.approx(1.0, abs=1e-5)
    assert out.advantages[1, 2] == 0
    # whitening touches the advantages only: the returns stay the GAE returns
    assert out.returns[0].tolist() == pytest.approx(GAE_RET[0], abs=1e-6)


def test_return_estimator_without_critic_is_the_reward_to_go():
    batch = critic_batch().replace(old_logprobs=OLD, ref_logprobs=REF)  # the values must be ignored
    cfg = ppo.Config(advantage_estimator="return", value_model="none", lam=0.5, beta=0.0, whiten_advantages=False)
    assert not cfg.needs_critic
    out = ppo.prepare(batch, cfg)
    # β = 0: A = G = the outcome on every valid token (λ = 0.5 is not used by the return estimator)
    assert out.advantages.tolist() == [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
    assert out.returns.tolist() == out.advantages.tolist()
    assert (out.values == 0).all()
    # with the k1 KL in the reward, G_t = Σ_{u ≥ t} r_u: row 0 r = (−0.05, 0.1, 1.0) → (1.05, 1.1, 1.0)
    out = ppo.prepare(batch, cfg.model_copy(update={"beta": 0.1}))
    assert out.returns[0].tolist() == pytest.approx([1.05, 1.1, 1.0], abs=1e-6)
    assert out.advantages[0].tolist() == pytest.approx([1.05, 1.1, 1.0], abs=1e-6)
    # row 1 r = (−0.02, 0.02) → (0.0, 0.02)
    assert out.returns[1, :2].tolist() == pytest.approx([0.0, 0.02], abs=1e-6)


# ---- the clipped value loss ----------------------------------------------------------------------
# ε_v = 0.2, V_old = 0 and G = 1 on three tokens of row 0, G = 0 on row 1's two tokens:
#   t0: V = 0.5 moves 0.5 toward G: unclipped (0.5 − 1)² = 0.25, clipped (0.2 − 1)² = 0.64 → ½·0.64 = 0.32
#       (the clipped branch is taken: no gradient)
#   t1: V = −0.5 moves 0.5 away from G: unclipped (−1.5)² = 2.25, clipped (−0.2 − 1)² = 1.44 → ½·2.25 = 1.125
#       (|V − V_old| > ε_v, but the unclipped branch is the larger one: the gradient flows)
#   t2: V = 0.1 inside the band: ½·(0.1 − 1)² = 0.405
#   row 1: V = 0.1 → ½·0.01 = 0.005;  V = −0.1 → 0.005
# token-mean over 5: (0.32 + 1.125 + 0.405 + 0.005 + 0.005) / 5 = 1.86 / 5 = 0.372
def value_batch():
    batch = two_rows(scores=(1.0, 0.0))
    return batch.replace(
        values=torch.zeros(2, 3),
        returns=torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]),
        token_weights=aggregation_weights(batch.response_mask, "token-mean"),
    )


NEW_V = [[0.5, -0.5, 0.1], [0.1, -0.1, 7.0]]  # 7.0 on padding: weight 0


def test_value_loss_hand_numbers_and_gradient():
    values = torch.tensor(NEW_V, requires_grad=True)
    loss, metrics = ppo.value_loss(value_batch(), values, ppo.Config(value_epsilon=0.2))
    assert loss.item() == pytest.approx(0.372, abs=1e-6)
    assert metrics["value_mean"] == pytest.approx((0.5 - 0.5 + 0.1 + 0.1 - 0.1) / 5)
    loss.backward()
    # d/dV of w·½(V − G)² = w·(V − G), w = 1/5; 0 on the clipped token and on padding
    assert values.grad.flatten().tolist() == pytest.approx([0.0, -1.5 / 5, -0.9 / 5, 0.1 / 5, -0.1 / 5, 0.0], abs=1e-6)


def test_value_loss_wider_band_does_not_clip():
    values = torch.tensor(NEW_V)
    loss, metrics = ppo.value_loss(value_batch(), values, ppo.Config(value_epsilon=0.6))
    # nothing moves more than 0.6: t0 is now ½·0.25 = 0.125 → (0.125 + 1.125 + 0.405 + 0.01) / 5 = 0.333
    assert loss.item() == pytest.approx(0.333, abs=1e-6)
    assert metrics["value_clip_fraction"] == 0.0


def test_value_clip_fraction_counts_the_clipped_branch():
    # t0 and t1 both moved 0.5 > ε_v, but only t0's clipped branch is the larger loss (gradient zeroed);
    # t1 moved away from its return, so the unclipped branch is taken: 1/5, as verl's vf_clipfrac
    _, metrics = ppo.value_loss(value_batch(), torch.tensor(NEW_V), ppo.Config(value_epsilon=0.2))
    assert metrics["value_clip_fraction"] == pytest.approx(1 / 5)


def test_return_estimator_ignores_the_critic():
    # A_t = G_t (reward-to-go), no baseline, even when a critic is configured (it still learns G)
    batch = value_batch().replace(scores=torch.tensor([1.0, -1.0]))
    cfg = ppo.Config(advantage_estimator="return", beta=0.0, whiten_advantages=False)
    out = ppo.prepare(batch, cfg)
    mask = batch.response_mask
    expected = torch.tensor([1.0, -1.0])[:, None] * mask
    torch.testing.assert_close(out.advantages, expected)
    torch.testing.assert_close(out.returns, expected)


# ---- the ratio guard -----------------------------------------------------------------------------
def guard_batch():
    # return estimator, β = 0, no whitening: A = +1 on row 0's 3 tokens, −1 on row 1's 2 tokens
    cfg = ppo.Config(advantage_estimator="return", value_model="none", beta=0.0, whiten_advantages=False)
    batch = ppo.prepare(two_rows(scores=(1.0, -1.0)), cfg)
    old = torch.tensor([[-1.0, -2.0, -1.5], [-0.7, -1.2, 0.0]])
    return batch.replace(old_logprobs=old), old


def test_ratio_guard_skips_a_stale_micro_batch():
    batch, old = guard_batch()
    cfg = ppo.Config(advantage_estimator="return", value_model="none", beta=0.0, ratio_threshold=1.5)
    logprobs = (old + math.log(4.0) * batch.response_mask).requires_grad_(True)  # ρ = 4 on every token
    loss, metrics = ppo.loss(batch, logprobs, cfg)
    assert metrics["ratio_mean"] == pytest.approx(4.0) and metrics["skipped"] == 1.0
    assert loss.item() == 0.0 and loss.requires_grad  # the graph is kept so backward still runs
    loss.backward()
    assert (logprobs.grad == 0).all()
    # without the guard the same micro-batch has a loss and a gradient: ρ = 4 is clipped for A > 0
    # (−1·1.2 per token, no gradient) but not for A < 0 (max(4, 1.2)·1 = 4 per token, gradient ρ·w = 4/5)
    free, _ = ppo.loss(batch, logprobs, cfg.model_copy(update={"ratio_threshold": None}))
    assert free.item() == pytest.approx((3 * -1.2 + 2 * 4.0) / 5, abs=1e-5)


def test_ratio_guard_below_threshold_changes_nothing():
    batch, old = guard_batch()
    cfg = ppo.Config(advantage_estimator="return", value_model="none", beta=0.0, ratio_threshold=1.5)
    log_ratio = torch.tensor([[0.0, 0.1, 0.0], [0.0, -0.1, 0.0]])
    logprobs = old + log_ratio
    loss, metrics = ppo.loss(batch, logprobs, cfg)
    # ρ = (1, e^0.1 = 1.105171, 1 | 1, e^−0.1 = 0.904837), mean 5.010008 / 5 = 1.002002 < 1.5
    assert metrics["skipped"] == 0.0
    assert metrics["ratio_mean"] == pytest.approx(5.010008 / 5, rel=1e-6)
    # A = +1: ℓ = −min(ρ, clip ρ) = (−1, −1.105171, −1); A = −1: ℓ = max(ρ, clip ρ) = (1, 0.904837)
    assert loss.item() == pytest.approx((-1 - 1.105171 - 1 + 1 + 0.904837) / 5, abs=1e-6)
    unguarded, unguarded_metrics = ppo.token_loss(batch, logprobs, cfg.model_copy(update={"ratio_threshold": None}))
    assert loss.item() == unguarded.item()
    assert "skipped" not in unguarded_metrics


# ---- config validation ---------------------------------------------------------------------------
def test_gae_needs_a_value_model():
    with pytest.raises(ConfigError, match=re.escape("algorithm.advantage_estimator=gae needs a value model")):
        load_config(None, ["algorithm=ppo", "algorithm.value_model=none"])
    cfg = load_config(None, ["algorithm=ppo", "algorithm.value_model=none", "algorithm.advantage_estimator=return"])
    assert cfg.algorithm.name == "ppo" and not cfg.algorithm.needs_critic


def test_reward_model_critic_needs_a_path():
    with pytest.raises(
        ConfigError, match=re.escape("algorithm.value_model=reward_model needs algorithm.value_model_path")
    ):
        load_config(None, ["algorithm=ppo", "algorithm.value_model=reward_model"])
    cfg = load_config(None, ["algorithm=ppo", "algorithm.value_model=reward_model", "algorithm.value_model_path=rm"])
    assert cfg.algorithm.value_model_path == "rm" and cfg.algorithm.needs_critic
