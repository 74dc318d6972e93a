"""DAPO on hand numbers: the overlong penalty (DAPO eq. 13 and verl's ``verl/workers/reward_manager/dapo.py``),
the group filter and surplus trim of dynamic sampling (verl's ``recipe/dapo/dapo_ray_trainer.py``), and the
advantages of penalised scores.

Eq. 13: R_len(y) = 0 if |y| ≤ L_max − L_cache; ((L_max − L_cache) − |y|) / L_cache if L_max − L_cache < |y| ≤ L_max;
−1 if |y| > L_max. verl: overlong_reward = min(−(|y| − (L_max − L_cache)) / L_cache · penalty_factor, 0).
"""

import json
import math
import random
from types import SimpleNamespace

import pytest
import torch
from helpers import text_batch, tiny

from itero.algorithms import ALGORITHMS, dapo
from itero.algorithms.base import DynamicSampling
from itero.config import load_config
from itero.core.overlong import overlong_penalty
from itero.stages.dynamic_sampling import DynamicSamplingError, first_groups, kept_rows, pool_offset, refill


def test_overlong_penalty_on_hand_numbers():
    # L_max 20, L_cache 4: free up to 16, then −1/4 per token, −1 at 20 and beyond
    lengths = torch.tensor([3, 16, 17, 18, 20, 25])
    expected = [0.0, 0.0, (16 - 17) / 4, (16 - 18) / 4, -1.0, -1.0]  # −0.25, −0.5
    assert overlong_penalty(lengths, 20, 4).tolist() == pytest.approx(expected)
    # verl's penalty_factor scales it: min(−(18 − 16) / 4 · 0.5, 0) = −0.25
    assert overlong_penalty(lengths, 20, 4, factor=0.5).tolist() == pytest.approx([e * 0.5 for e in expected])


def test_overlong_penalty_equals_verl_up_to_the_cap():
    L_max, L_cache, factor = 48, 8, 1.5
    lengths = torch.arange(1, L_max + 1)
    verl = [min(-(n - (L_max - L_cache)) / L_cache * factor, 0.0) for n in range(1, L_max + 1)]
    assert overlong_penalty(lengths, L_max, L_cache, factor).tolist() == pytest.approx(verl)


def test_overlong_penalty_refuses_a_buffer_beyond_the_cap():
    with pytest.raises(ValueError, match="buffer"):
        overlong_penalty(torch.tensor([3]), 4, 5)


def test_group_filter_keeps_mixed_correctness_only():
    # groups 7: all wrong, 3: mixed, 9: all correct, 4: mixed (1 of 3); ids unordered and not contiguous
    correct = torch.tensor([0, 0, 1, 0, 1, 1, 0, 1, 0, 0], dtype=torch.bool)
    group_ids = torch.tensor([7, 7, 3, 3, 9, 9, 4, 4, 4, 7])
    assert kept_rows(correct, group_ids).tolist() == [False, False, True, True, False, False, True, True, True, False]


def test_surplus_is_cut_at_whole_groups_in_sampling_order():
    # kept groups 2, 5, 9, 12 (rounds concatenated); a target of 3 keeps the first three, as verl's batch[:bsz·n]
    group_ids = torch.tensor([2, 2, 5, 5, 9, 9, 12, 12])
    assert first_groups(group_ids, 3).tolist() == [True] * 6 + [False] * 2
    assert first_groups(group_ids, 10).all()


def batch_of(scores, lengths, group_ids):
    _, tok = tiny()
    responses = ["a" * (n - 1) for n in lengths]  # n − 1 characters + EOS = n response tokens
    batch = text_batch(tok, ["p"] * len(scores), responses, scores=scores, group_ids=group_ids)
    assert batch.response_lengths.tolist() == lengths
    return batch


def test_prepare_adds_the_penalty_before_group_normalisation():
    cfg = dapo.Config(max_response_length=8, overlong_buffer=4)  # free up to 4 tokens
    batch = batch_of([1.0, 1.0, 0.0, 0.0], [3, 6, 4, 8], [0, 0, 0, 0])
    prepared = dapo.prepare(batch, cfg)
    penalised = [1.0, 1.0 - 0.5, 0.0, 0.0 - 1.0]  # (4 − 6)/4 = −0.5, (4 − 8)/4 = −1
    assert prepared.scores.tolist() == pytest.approx(penalised)
    mean = sum(penalised) / 4  # 0.125
    std = math.sqrt(sum((r - mean) ** 2 for r in penalised) / 3)  # unbiased, as TRL
    adv = [(r - mean) / (std + 1e-4) for r in penalised]
    assert prepared.advantages[:, 0].tolist() == pytest.approx(adv, rel=1e-5)
    # the outcome reward sits at the last response token, penalty included
    assert prepared.rewards.sum(-1).tolist() == pytest.approx(penalised)


def test_without_a_buffer_prepare_is_grpo():
    batch = batch_of([1.0, 0.0, 0.5], [3, 9, 5], [0, 0, 0])
    cfg = dapo.Config()
    assert torch.equal(dapo.prepare(batch, cfg).advantages, ALGORITHMS["grpo"].prepare(batch, cfg).advantages)


def test_defaults_and_schedule():
    cfg = dapo.Config()
    assert (cfg.epsilon, cfg.clip_high, cfg.loss_agg, cfg.beta) == (0.2, 0.28, "token-mean", 0.0)
    assert not cfg.needs_reference
    assert dapo.schedule(cfg).dynamic_sampling == DynamicSampling(max_rounds=10)
    assert dapo.schedule(dapo.Config(dynamic_sampling=False)).dynamic_sampling is None
    assert ALGORITHMS["grpo"].schedule(ALGORITHMS["grpo"].Config()).dynamic_sampling is None


def test_overlong_buffer_needs_a_max_length():
    with pytest.raises(ValueError, match="max_response_length"):
        dapo.Config(overlong_buffer=8)
    with pytest.raises(ValueError, match="max_response_length"):
        dapo.Config(overlong_buffer=8, max_response_length=4)


def test_preset_loads_with_the_paper_clip_range():
    cfg = load_config("configs/dapo.yaml", []).algorithm
    assert (cfg.name, cfg.epsilon, cfg.epsilon_high, cfg.max_response_length, cfg.overlong_buffer) == (
        "dapo",
        0.2,
        0.28,
        48,
        8,
    )


# refill on a fake run: problem p's two samples are both wrong (p % 3 == 0), mixed (1) or both right (2)
def fake_run(tmp_path, target, seed=0):
    _, tok = tiny()
    loop = SimpleNamespace(prompts_per_iteration=target, seed=seed, same_prompts_every_iteration=False)
    reward = SimpleNamespace(correct=lambda responses, answers: [r == "y" for r in responses])
    rt = SimpleNamespace(
        cfg=SimpleNamespace(loop=loop),
        task=SimpleNamespace(train=list(range(30))),
        run=tmp_path,
        reward=reward,
        tokenizer=tok,
    )
    calls = []

    def sample(problems, round_=0, first_group=0):
        calls.append((list(problems), round_, first_group))
        responses = [r for p in problems for r in {0: "nn", 1: "ny", 2: "yy"}[p % 3]]
        groups = [first_group + i for i, _ in enumerate(problems) for _ in range(2)]
        batch = text_batch(tok, ["p"] * len(responses), responses, group_ids=groups)
        return batch.replace(answers=["1"] * len(responses))

    return rt, sample, calls


def test_refill_samples_rounds_until_the_batch_is_full_and_cuts_the_surplus(tmp_path):
    rt, sample, calls = fake_run(tmp_path, target=4)
    batch, stats = refill(rt, 1, DynamicSampling(max_rounds=0, prompts_per_round=5), sample)
    pool = list(range(30))
    random.Random(0).shuffle(pool)
    mixed = [p for p in pool if p % 3 == 1]
    rounds = next(r for r in range(1, 7) if sum(p % 3 == 1 for p in pool[: 5 * r]) >= 4)
    assert [c[0] for c in calls] == [pool[5 * r : 5 * r + 5] for r in range(rounds)]  # next prompts, none twice
    assert [c[1:] for c in calls] == [(r, 5 * r) for r in range(rounds)]  # seeded by round, group ids unique
    assert stats["generation_rounds"] == rounds and stats["prompts_sampled"] == 5 * rounds
    assert stats["kept_group_fraction"] == pytest.approx(sum(p % 3 == 1 for p in pool[: 5 * rounds]) / (5 * rounds))
    assert stats["groups"] == 4 and batch.batch_size == 8  # the first 4 mixed groups, 2 rows each
    kept = [pool.index(p) for p in mixed[:4]]  # a group's id is its prompt's place in this iteration's sampling
    assert sorted(set(batch.group_ids.tolist())) == kept
    assert batch.response_texts == ["n", "y"] * 4


def test_the_next_iteration_starts_where_this_one_stopped(tmp_path):
    rt, sample, calls = fake_run(tmp_path, target=2)
    _, stats = refill(rt, 1, DynamicSampling(prompts_per_round=3), sample)
    calls.clear()
    offset = pool_offset(json.loads(json.dumps(stats)))  # iteration 1's generate.json, as iteration 2 reads it
    _, stats2 = refill(rt, 2, DynamicSampling(prompts_per_round=3), sample, offset)
    assert stats2["pool_offset"] == stats["prompts_sampled"]
    pool = list(range(30))
    random.Random(0).shuffle(pool)
    assert calls[0][0] == pool[stats["prompts_sampled"] : stats["prompts_sampled"] + 3]


def test_at_the_round_cap_it_stops_or_trains_on_what_it_kept(tmp_path):
    rt, sample, _ = fake_run(tmp_path, target=20)  # 10 of the 30 problems are mixed: never 20
    with pytest.raises(DynamicSamplingError, match="after 2 generation rounds"):
        refill(rt, 1, DynamicSampling(max_rounds=2, prompts_per_round=5), sample)
    batch, stats = refill(rt, 1, DynamicSampling(max_rounds=2, prompts_per_round=5, train_when_capped=True), sample)
    assert stats["generation_rounds"] == 2 and batch.batch_size == 2 * stats["groups"]
    assert 0 < stats["groups"] < 20
    # without a cap the pool runs out: an iteration never samples a prompt twice
    with pytest.raises(DynamicSamplingError, match="pool 30"):
        refill(rt, 1, DynamicSampling(max_rounds=0, prompts_per_round=5), sample)
