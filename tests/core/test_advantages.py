"""Advantage estimators on hand numbers, plus loop-vs-vectorised checks on random grouped data."""

import math
import random
import statistics

import pytest
import torch

from itero.core.advantages import (
    broadcast_step_advantages,
    gae,
    group_normalized_advantages,
    in_varied_group,
    leave_one_out_advantages,
    outcome_to_token_rewards,
    reinforce_pp_advantages,
    scale_negative_advantages,
    step_advantages_from_mc_values,
    zero_variance_group_fraction,
)


def t(*rows):
    return torch.tensor(rows, dtype=torch.float64)


def test_outcome_to_token_rewards():
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0], [1, 0, 1, 0]], dtype=torch.bool)
    out = outcome_to_token_rewards(torch.tensor([1.0, -0.5, 2.0, 3.0]), mask)
    # last valid token: index 1, index 3, none (empty row → no reward), index 2 (mask with a hole)
    expected = torch.tensor([[0, 1.0, 0, 0], [0, 0, 0, -0.5], [0, 0, 0, 0], [0, 0, 3.0, 0]])
    torch.testing.assert_close(out, expected)


def test_gae_hand_numbers():
    rewards = t([0.0, 0.0, 1.0], [0.0, 2.0, 9.0])
    values = t([0.5, 0.6, 0.8], [1.0, 0.5, 7.0])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)  # row 1's last column is padding
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.5)  # γλ = 0.45
    # row 0: t=2 δ = 1 + 0 − 0.8 = 0.2, A = 0.2
    #        t=1 δ = 0.9·0.8 − 0.6 = 0.12, A = 0.12 + 0.45·0.2 = 0.21
    #        t=0 δ = 0.9·0.6 − 0.5 = 0.04, A = 0.04 + 0.45·0.21 = 0.1345
    # row 1: t=1 (last valid) δ = 2 + 0 − 0.5 = 1.5;  t=0 δ = 0.9·0.5 − 1.0 = −0.55, A = −0.55 + 0.45·1.5 = 0.125
    torch.testing.assert_close(adv, t([0.1345, 0.21, 0.2], [0.125, 1.5, 0.0]))
    # G = A + V: 0.6345, 0.81, 1.0;  1.125, 2.0, (padding) 0
    torch.testing.assert_close(ret, t([0.6345, 0.81, 1.0], [1.125, 2.0, 0.0]))


def test_gae_skips_holes_in_the_mask():
    # mask (1, 0, 1), γ = λ = 1: the hole's reward 5 and value 9 are ignored
    # t=2: δ = 1 − 0.8 = 0.2;  t=0: δ = 0.8 − 0.5 = 0.3, A = 0.3 + 0.2 = 0.5 (= R − V_0)
    adv, _ = gae(t([0.0, 5.0, 1.0]), t([0.5, 9.0, 0.8]), torch.tensor([[1, 0, 1]]), gamma=1.0, lam=1.0)
    torch.testing.assert_close(adv, t([0.5, 0.0, 0.2]))


def _gae_loop(rewards, values, mask, gamma, lam):
    """Plain-python GAE over each row's valid positions only."""
    B, T = len(rewards), len(rewards[0])
    adv = [[0.0] * T for _ in range(B)]
    for b in range(B):
        next_v, next_a = 0.0, 0.0
        for i in reversed([i for i in range(T) if mask[b][i]]):
            next_a = rewards[b][i] + gamma * next_v - values[b][i] + gamma * lam * next_a
            next_v, adv[b][i] = values[b][i], next_a
    return adv


def test_gae_matches_loop_on_random_data():
    g = torch.Generator().manual_seed(1)
    rewards, values = (
        torch.randn(5, 9, generator=g, dtype=torch.float64),
        torch.randn(5, 9, generator=g, dtype=torch.float64),
    )
    mask = torch.rand(5, 9, generator=g) > 0.3
    adv, ret = gae(rewards, values, mask, gamma=0.97, lam=0.9)
    expected = t(*_gae_loop(rewards.tolist(), values.tolist(), mask.tolist(), 0.97, 0.9))
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(ret, (expected + values) * mask)


# rows: (group id, score) = (5, 0), (9, 1), (5, 1), (9, 3), (5, 2): group 5 = {0, 1, 2}, group 9 = {1, 3}
SCORES = torch.tensor([0.0, 1.0, 1.0, 3.0, 2.0], dtype=torch.float64)
GIDS = torch.tensor([5, 9, 5, 9, 5])


def test_group_normalized_hand_numbers():
    # group 5: mean 1, unbiased var (1 + 0 + 1)/2 = 1;  group 9: mean 2, var (1 + 1)/1 = 2, std √2
    none = group_normalized_advantages(SCORES, GIDS, scale="none")
    torch.testing.assert_close(none, torch.tensor([-1.0, -1.0, 0.0, 1.0, 1.0], dtype=torch.float64))
    group = group_normalized_advantages(SCORES, GIDS, scale="group", eps=0.0)
    # −1/1, −1/√2 = −0.7071068, 0, 1/√2, 1/1
    torch.testing.assert_close(group, torch.tensor([-1.0, -0.7071068, 0.0, 0.7071068, 1.0], dtype=torch.float64))
    with_eps = group_normalized_advantages(SCORES, GIDS)  # default ε = 1e-4: −1/(1 + 1e-4) = −0.9999000
    assert with_eps[0].item() == pytest.approx(-0.99990001)
    batch = group_normalized_advantages(SCORES, GIDS, scale="batch", eps=0.0)
    # batch mean 1.4, squared deviations 1.96 + 0.16 + 0.16 + 2.56 + 0.36 = 5.2, var 5.2/4 = 1.3, std 1.1401754
    # 1/1.1401754 = 0.8770580
    torch.testing.assert_close(
        batch, torch.tensor([-0.877058, -0.877058, 0.0, 0.877058, 0.877058], dtype=torch.float64)
    )
    # a group of one: std 0, advantage 0 (not NaN)
    assert group_normalized_advantages(t(3.0), torch.tensor([4])).tolist() == [0.0]
    with pytest.raises(ValueError):
        group_normalized_advantages(SCORES, GIDS, scale="std")


def test_leave_one_out_hand_numbers():
    out = leave_one_out_advantages(SCORES, GIDS)
    # group 5 (sum 3): 0 − 3/2 = −1.5;  1 − 2/2 = 0;  2 − 1/2 = 1.5
    # group 9 (sum 4): 1 − 3/1 = −2;  3 − 1/1 = 2
    torch.testing.assert_close(out, torch.tensor([-1.5, -2.0, 0.0, 2.0, 1.5], dtype=torch.float64))
    assert leave_one_out_advantages(t(3.0), torch.tensor([4])).tolist() == [0.0]  # no baseline for k = 1


def test_reinforce_pp_hand_numbers():
    # centred: group 0 = {1, 0} → (0.5, −0.5); group 1 = {3} → 0
    mask = torch.tensor([[1, 1], [1, 0], [1, 1]], dtype=torch.bool)
    out = reinforce_pp_advantages(t(1.0, 0.0, 3.0), torch.tensor([0, 0, 1]), mask)
    # valid tokens 0.5, 0.5, −0.5, 0, 0: mean 0.1; squared deviations .16 + .16 + .36 + .01 + .01 = 0.7
    # unbiased var 0.7/4 = 0.175, std 0.4183300: 0.4/0.41833 = 0.9561829, −0.6/… = −1.4342743, −0.1/… = −0.2390457
    expected = t([0.9561829, 0.9561829], [-1.4342743, 0.0], [-0.2390457, -0.2390457])
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_vineppo_step_advantages():
    step_rewards = t([0.0, 0.0, 1.0], [0.0, 0.0, 9.0])
    values = t([0.5, 0.25, 0.75], [0.5, 0.25, 7.0])
    step_mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)  # row 1 has 2 steps
    out = step_advantages_from_mc_values(step_rewards, values, step_mask)
    # row 0: 0 + 0.25 − 0.5 = −0.25;  0 + 0.75 − 0.25 = 0.5;  1 + 0 − 0.75 = 0.25  (sum = R − V̂(s_0) = 0.5)
    # row 1 (R = 0): 0.25 − 0.5 = −0.25;  0 + 0 − 0.25 = −0.25;  padding 0
    torch.testing.assert_close(out, t([-0.25, 0.5, 0.25], [-0.25, -0.25, 0.0]))
    # unestimated (NaN) values are back-filled: V̂(s_2) = 1 + 0 = 1, V̂(s_1) = 0 + 1 = 1 → A = (1 − 0.5, 0, 0)
    nan = float("nan")
    filled = step_advantages_from_mc_values(t([0.0, 0.0, 1.0]), t([0.5, nan, nan]))
    torch.testing.assert_close(filled, t([0.5, 0.0, 0.0]))


def test_broadcast_step_advantages():
    step_adv = t([-0.25, 0.5, 0.25])
    index = torch.tensor([[0, 0, 1, 2, 2, -1]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]], dtype=torch.bool)
    out = broadcast_step_advantages(step_adv, index, mask)
    torch.testing.assert_close(out, t([-0.25, -0.25, 0.5, 0.25, 0.25, 0.0]))


def test_zero_variance_group_fraction():
    # groups 5 and 9 vary, group 11 = {4, 4} does not, group 2 = {7} has one sample → 2 of 4
    scores = torch.tensor([0.0, 1.0, 1.0, 3.0, 2.0, 4.0, 4.0, 7.0])
    ids = torch.tensor([5, 9, 5, 9, 5, 11, 11, 2])
    assert zero_variance_group_fraction(scores, ids) == pytest.approx(0.5)
    assert in_varied_group(scores, ids).tolist() == [True, True, True, True, True, False, False, False]


# ---- loop vs vectorised on random grouped data with arbitrary (non-contiguous, shuffled) ids ----


def _random_groups(seed):
    rng = random.Random(seed)
    ids, scores = [], []
    for gid in rng.sample([-3, 0, 7, 100, 2**40, 55, 12], 6):
        k = rng.randint(1, 5)
        same = rng.random() < 0.3
        value = float(rng.randint(0, 2))
        for _ in range(k):
            ids.append(gid)
            scores.append(value if same else float(rng.randint(-2, 3)) / 2)
    order = list(range(len(ids)))
    rng.shuffle(order)
    return [scores[i] for i in order], [ids[i] for i in order]


def _members(scores, ids):
    groups = {}
    for s, g in zip(scores, ids):
        groups.setdefault(g, []).append(s)
    return groups


@pytest.mark.parametrize("seed", range(5))
def test_grouped_estimators_match_loops(seed):
    scores, ids = _random_groups(seed)
    groups = _members(scores, ids)
    S, G = torch.tensor(scores, dtype=torch.float64), torch.tensor(ids)
    eps = 1e-4

    def std(xs):
        return statistics.stdev(xs) if len(xs) > 1 else 0.0

    mean = {g: statistics.fmean(v) for g, v in groups.items()}
    expected_group = [(s - mean[g]) / (std(groups[g]) + eps) for s, g in zip(scores, ids)]
    torch.testing.assert_close(
        group_normalized_advantages(S, G, "group", eps), torch.tensor(expected_group, dtype=torch.float64)
    )
    expected_batch = [(s - mean[g]) / (statistics.stdev(scores) + eps) for s, g in zip(scores, ids)]
    torch.testing.assert_close(
        group_normalized_advantages(S, G, "batch", eps), torch.tensor(expected_batch, dtype=torch.float64)
    )

    expected_loo = [
        s - (sum(groups[g]) - s) / (len(groups[g]) - 1) if len(groups[g]) > 1 else 0.0 for s, g in zip(scores, ids)
    ]
    torch.testing.assert_close(leave_one_out_advantages(S, G), torch.tensor(expected_loo, dtype=torch.float64))

    expected_zero = sum(max(v) == min(v) for v in groups.values()) / len(groups)
    assert zero_variance_group_fraction(S, G) == pytest.approx(expected_zero)

    # REINFORCE++: centred score on each valid token, whitened with the unbiased variance
    lengths = [1 + (i * 7 + seed) % 4 for i in range(len(scores))]
    mask = torch.tensor([[j < n for j in range(4)] for n in lengths])
    tokens = [(s - mean[g]) for s, g, n in zip(scores, ids, lengths) for _ in range(n)]
    mu, sd = statistics.fmean(tokens), math.sqrt(statistics.variance(tokens) + 1e-8)
    expected_pp = [
        [((s - mean[g]) - mu) / sd if j < n else 0.0 for j in range(4)] for s, g, n in zip(scores, ids, lengths)
    ]
    torch.testing.assert_close(reinforce_pp_advantages(S, G, mask), torch.tensor(expected_pp, dtype=torch.float64))

    token_rewards = outcome_to_token_rewards(S, mask)
    expected_tr = [[s if j == n - 1 else 0.0 for j in range(4)] for s, n in zip(scores, lengths)]
    torch.testing.assert_close(token_rewards, torch.tensor(expected_tr, dtype=torch.float64))


def test_negative_advantages_are_scaled_and_positive_ones_kept():
    # a group of 4 with rewards 1, 0, 0, 1: centred ±0.5; with weight 0.25 the negatives become −0.125
    adv = group_normalized_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), torch.zeros(4, dtype=torch.long), "none")
    assert adv.tolist() == [0.5, -0.5, -0.5, 0.5]
    assert scale_negative_advantages(adv, 0.25).tolist() == [0.5, -0.125, -0.125, 0.5]
    assert scale_negative_advantages(adv, 0.0).tolist() == [0.5, 0.0, 0.0, 0.5]
    assert torch.equal(scale_negative_advantages(adv, 1.0), adv)
