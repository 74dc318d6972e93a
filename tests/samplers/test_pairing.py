import pytest
import torch

from itero.samplers.pairing import PAIRINGS, PairingParams, select_pairs


def pairs_of(pairing, scores, lengths=None, seed=0, **params):
    fn = PAIRINGS[pairing]
    return fn(scores, lengths or [10] * len(scores), torch.Generator().manual_seed(seed), PairingParams(**params))


@pytest.mark.parametrize(
    "scores, pairing, expected",
    [
        ([1, -0.5, -1, 1], "max_min", [(0, 2)]),  # first best, the worst
        ([-1, 1, -1, 1], "max_min", [(1, 0)]),  # ties: first index
        ([1, -0.5, -1, -0.5], "max_max", [(0, 1)]),  # best vs second-best value, first index
        ([1, 1, 1], "max_min", []),  # all tie: no pair
        ([-1, -1], "max_max", []),
        ([1, 1, 0], "all_pairs", [(0, 2), (1, 2)]),
        ([1, 1], "all_pairs", []),  # no reject
    ],
)
def test_deterministic_pairings(scores, pairing, expected):
    assert pairs_of(pairing, scores) == expected


def test_max_random_picks_only_strictly_worse():
    picks = {pairs_of("max_random", [0, 1, 0, -1, 1], seed=s)[0][1] for s in range(40)}
    assert picks == {0, 2, 3}


def test_max_min_p_prefers_the_shorter_right_answer():
    # both right; penalised scores 1 - 0.01*40 = 0.6 and 1 - 0.01*10 = 0.9; the long wrong one is worst
    assert pairs_of("max_min_p", [1, 1, -1], lengths=[40, 10, 50], length_penalty=0.01) == [(1, 2)]
    # with λ large enough, a short wrong answer outranks a long right one
    assert pairs_of("max_min_p", [1, -0.5], lengths=[100, 1], length_penalty=0.1) == [(1, 0)]


def test_random_pair_orders_by_score_and_drops_ties():
    seen = set()
    for s in range(60):
        for c, r in pairs_of("random", [1, 0, 0, -1], seed=s):
            assert [1, 0, 0, -1][c] > [1, 0, 0, -1][r]
            seen.add((c, r))
    assert seen == {(0, 1), (0, 2), (0, 3), (1, 3), (2, 3)}  # every strictly ordered pair occurs, (1,2) ties
    assert all(pairs_of("random", [0.5, 0.5, 0.5], seed=s) == [] for s in range(10))


def test_mixed_max_min_draws_halves_in_the_given_ratio():
    # first half [0, 1] pairs (0, 1); second half [2, 3] pairs (3, 2)
    scores = [1, -1, -1, 1]
    draws = [pairs_of("mixed_max_min", scores, seed=s)[0] for s in range(2000)]
    first = sum(d == (0, 1) for d in draws) / len(draws)
    assert set(draws) == {(0, 1), (3, 2)}
    assert abs(first - 0.3) < 0.04  # 3.9 standard errors
    assert pairs_of("mixed_max_min", [1, -1, 0, 0], mixed_first_half_prob=0.0) == []  # second half ties


def test_all_pairs_cap_draws_without_replacement():
    scores = [1, 1, 1, -1, -1, -1]  # 9 accept × reject pairs
    got = pairs_of("all_pairs", scores, max_pairs_per_prompt=4, seed=3)
    assert len(got) == 4 == len(set(got))
    assert all(c < 3 <= r for c, r in got)


def test_select_pairs_maps_group_positions_to_rows_and_counts_ties():
    scores = [0.0, 1.0, 1.0, 1.0, -1.0, 1.0]
    group_ids = [5, 2, 5, 2, 5, 2]  # group 2 ties; group 5 = rows 0, 2, 4
    pairs, stats = select_pairs(scores, group_ids, [1] * 6, "max_min", PairingParams(), torch.Generator())
    assert pairs == [(2, 4)]
    assert stats == {"pairs": 1, "frac_prompts_no_pair": 0.5}
    with pytest.raises(ValueError, match="unknown pairing 'best'"):
        select_pairs(scores, group_ids, [1] * 6, "best", PairingParams(), torch.Generator())
