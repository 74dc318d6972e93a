import math

import pytest
import torch
from helpers import text_batch, tiny

from itero.algorithms import grpo

SQRT_1_3, SQRT_4_3 = math.sqrt(1 / 3), math.sqrt(4 / 3)


def two_groups():
    # group 7 scores (1, 0, 0): mean 1/3, unbiased std √(1/3); group 3 (1, 1, −1): mean 1/3, std √(4/3)
    # response lengths with EOS: 2, 3, 4, 2, 3, 2 → 16 tokens, width 4
    _, tok = tiny()
    return text_batch(
        tok, ["p"] * 6, ["a", "bb", "ccc", "d", "ee", "f"], scores=[1, 0, 0, 1, 1, -1], group_ids=[7, 7, 7, 3, 3, 3]
    )


def first_token_advantages(batch):
    return batch.advantages[:, 0].tolist()


def test_prepare_group_scaled_advantages_on_every_token():
    out = grpo.prepare(two_groups(), grpo.Config())
    eps = 1e-4
    expected = [
        (2 / 3) / (SQRT_1_3 + eps),
        (-1 / 3) / (SQRT_1_3 + eps),
        (-1 / 3) / (SQRT_1_3 + eps),
        (2 / 3) / (SQRT_4_3 + eps),
        (2 / 3) / (SQRT_4_3 + eps),
        (-4 / 3) / (SQRT_4_3 + eps),
    ]
    assert first_token_advantages(out) == pytest.approx(expected, rel=1e-6)
    # the same advantage on each valid token, 0 on padding
    assert out.advantages[2].tolist() == pytest.approx([expected[2]] * 4, rel=1e-6)
    assert out.advantages[0, 2:].tolist() == [0.0, 0.0]


def test_prepare_batch_and_no_scaling():
    none = grpo.prepare(two_groups(), grpo.Config(scale_rewards="none"))
    assert first_token_advantages(none) == pytest.approx([2 / 3, -1 / 3, -1 / 3, 2 / 3, 2 / 3, -4 / 3], rel=1e-6)
    # all six scores (1, 0, 0, 1, 1, −1): mean 1/3, unbiased variance (4+1+1+4+4+16)/9/5 = 2/3
    batch = grpo.prepare(two_groups(), grpo.Config(scale_rewards="batch"))
    std = math.sqrt(2 / 3) + 1e-4
    assert first_token_advantages(batch) == pytest.approx([a / std for a in first_token_advantages(none)], rel=1e-6)


@pytest.mark.parametrize(
    "agg, row_weights",
    [
        ("token-mean", [1 / 16] * 6),  # 16 valid tokens
        ("seq-mean-token-mean", [1 / (6 * n) for n in (2, 3, 4, 2, 3, 2)]),  # 1 / (sequences · length)
        ("seq-mean-token-sum-norm", [1 / (6 * 4)] * 6),  # Dr.GRPO: 1 / (sequences · width 4)
        ("dr-grpo", [1 / (6 * 4)] * 6),  # the same mode under the name of what it computes (TRL's dr_grpo)
    ],
)
def test_prepare_token_weights(agg, row_weights):
    out = grpo.prepare(two_groups(), grpo.Config(loss_agg=agg))
    mask = out.response_mask
    assert out.token_weights[mask].tolist() == pytest.approx(
        [w for w, n in zip(row_weights, mask.sum(-1).tolist()) for _ in range(n)], rel=1e-6
    )
    assert (out.token_weights[~mask] == 0).all()


def test_dr_grpo_constant_is_max_response_length():
    out = grpo.prepare(two_groups(), grpo.Config(loss_agg="seq-mean-token-sum-norm", max_response_length=10))
    assert out.token_weights[0, 0].item() == pytest.approx(1 / 60)


def test_select_reports_and_optionally_drops_unanimous_groups():
    _, tok = tiny()
    batch = text_batch(tok, ["p"] * 5, ["a", "b", "c", "d", "e"], scores=[1, 0, 1, 1, 1], group_ids=[0, 0, 5, 5, 5])
    kept, stats = grpo.select(batch, grpo.Config())
    assert kept.batch_size == 5 and stats == {"frac_zero_variance_groups": 0.5, "rows": 5}
    kept, stats = grpo.select(batch, grpo.Config(drop_zero_variance_groups=True))
    assert kept.response_texts == ["a", "b"] and stats["rows"] == 2


# ---- the loss on hand numbers -------------------------------------------------------------------
# Two responses of one group, scores (1, 0) and scale "none": A = +0.5 (3 tokens), −0.5 (2 tokens).
# log ρ per token: row 0 (0, 0.5, −0.1), row 1 (−0.5, 0.1); ε = 0.2.
#   row 0, A > 0, ℓ = −A·min(ρ, clip ρ): ρ = 1 → −0.5; e^0.5 = 1.6487 → clipped at 1.2 → −0.6;
#                                         e^−0.1 = 0.904837 → −0.452419
#   row 1, A < 0, ℓ = 0.5·max(ρ, clip ρ): e^−0.5 = 0.606531 → clipped at 0.8 → 0.4; e^0.1 = 1.105171 → 0.552585
ROW0, ROW1 = [-0.5, -0.6, -0.452419], [0.4, 0.552585]


def hand_batch(cfg):
    _, tok = tiny()
    batch = grpo.prepare(text_batch(tok, ["p", "p"], ["ab", "c"], scores=[1, 0], group_ids=[0, 0]), cfg)
    old = torch.tensor([[-1.0, -2.0, -1.5], [-0.7, -1.2, 0.0]])  # 0 on row 1's padding, as the learner gives
    log_ratio = torch.tensor([[0.0, 0.5, -0.1], [-0.5, 0.1, 0.0]])
    return batch.replace(old_logprobs=old), old + log_ratio


@pytest.mark.parametrize(
    "agg, expected",
    [
        ("token-mean", (sum(ROW0) + sum(ROW1)) / 5),
        ("seq-mean-token-mean", (sum(ROW0) / 3 + sum(ROW1) / 2) / 2),
        ("seq-mean-token-sum-norm", (sum(ROW0) + sum(ROW1)) / (2 * 3)),
    ],
)
def test_loss_hand_numbers_each_aggregation(agg, expected):
    cfg = grpo.Config(scale_rewards="none", loss_agg=agg)
    batch, logprobs = hand_batch(cfg)
    loss, metrics = grpo.loss(batch, logprobs, cfg)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert metrics["clip_fraction"] == pytest.approx(2 / 5)
    assert metrics["ratio_max"] == pytest.approx(math.exp(0.5), rel=1e-6)
    assert metrics["ratio_mean"] == pytest.approx((1 + 1.648721 + 0.904837 + 0.606531 + 1.105171) / 5, rel=1e-5)
    # k3(π_old‖π_θ) = e^d − d − 1 with d = log ρ: 0, 0.148721, 0.004837, 0.106531, 0.005171
    assert metrics["approx_kl_old"] == pytest.approx((0.148721 + 0.004837 + 0.106531 + 0.005171) / 5, rel=1e-4)


def test_loss_kl_term_and_clip_higher():
    cfg = grpo.Config(scale_rewards="none", beta=0.1, epsilon_high=0.28)
    batch, logprobs = hand_batch(cfg)
    # log π_ref − log π_θ = ln 2 on one token: k3 = 2 − ln 2 − 1 = 0.306853, 0 elsewhere
    ref = logprobs.clone()
    ref[0, 1] += math.log(2)
    loss, metrics = grpo.loss(batch.replace(ref_logprobs=ref), logprobs, cfg)
    # clip-higher: the e^0.5 token of row 0 is now clipped at 1.28 → −0.64 instead of −0.6
    pg = (ROW0[0] - 0.64 + ROW0[2] + sum(ROW1)) / 5
    assert loss.item() == pytest.approx(pg + 0.1 * 0.306853 / 5, abs=1e-6)
    assert metrics["kl_ref"] == pytest.approx(0.306853 / 5, rel=1e-5)


def test_reference_only_with_kl():
    assert not grpo.Config().needs_reference and grpo.Config(beta=0.04).needs_reference
    assert grpo.Config.needs_old_logprobs and grpo.Config.min_samples_per_prompt == 2


def test_negative_weight_scales_only_the_negative_advantages_of_the_prepared_batch():
    from itero.algorithms import dpo
    from itero.algorithms.policy_gradient import apply_negative_weight

    cfg = grpo.Config(negative_weight=0.5)
    plain = grpo.prepare(two_groups(), grpo.Config())
    out = apply_negative_weight(grpo.prepare(two_groups(), cfg), cfg)
    expected = [a if a >= 0 else 0.5 * a for a in first_token_advantages(plain)]  # rows 0, 3, 4 keep theirs
    assert first_token_advantages(out) == pytest.approx(expected, rel=1e-6)
    assert out.advantages[0, 2:].tolist() == [0.0, 0.0]  # padding stays 0
    assert apply_negative_weight(plain, grpo.Config()) is plain  # weight 1: untouched
    assert apply_negative_weight(plain, dpo.Config()) is plain  # an algorithm without the option
