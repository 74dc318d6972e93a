"""Token-budget micro-batches (itero/training/micro_batches.py): the packing, and the gradient of a step
equal to one micro-batch's whatever the bins hold (token-mean, per-sequence mean, DPO pairs)."""

import copy

import pytest
import torch
from helpers import text_batch, tiny

from itero.algorithms import dpo, grpo
from itero.core.masked import masked_mean
from itero.distributed import Dist
from itero.training import learner as learner_module
from itero.training import micro_batches
from itero.training.forward import compute_logprobs
from itero.training.learner import Learner, OptimConfig

PROMPTS = ["p", "a much longer prompt", "mid prompt", "q?", "what is 2+2", "x", "tell me", "0"]
RESPONSES = ["12+3=15.", "7", "x=1, y=22 and then some more", "ab", "hello world", "0", "99-9=90. \\boxed{90}", "q"]


def test_packing_by_hand():
    # totals (prompt + response) 7, 12, 6, 3 -> order u1, u0, u2, u3; budget 24 padded tokens
    # u1 alone: 1·(2+10) = 12; + u0 would be 2·(3+10) = 26 > 24, so u0 opens a bin: 1·(3+4) = 7
    # + u2: 2·(max(3,5) + max(4,1)) = 18 ≤ 24 (wider than either alone: 9 > 7); + u3: 3·9 = 27 > 24
    prompt, response = [3, 2, 5, 1], [4, 10, 1, 2]
    assert micro_batches.by_tokens([0, 1, 2, 3], prompt, response, 1, 24) == [[1], [0, 2], [3]]
    assert micro_batches.padded_tokens([0, 2], prompt, response, 1) == 18
    # pairs: 2 rows a unit, so u0 + u2 costs 2·2·9 = 36 and every unit is alone at 24; at 36 they pair up
    assert micro_batches.by_tokens([0, 1, 2, 3], prompt, response, 2, 24) == [[1], [0], [2], [3]]
    assert micro_batches.by_tokens([0, 1, 2, 3], prompt, response, 2, 36) == [[1], [0, 2], [3]]
    # a unit wider than the budget trains alone; only the listed units are packed
    assert micro_batches.by_tokens([1, 3], prompt, response, 1, 5) == [[1], [3]]
    assert micro_batches.fixed([5, 2, 7, 1, 0], 2) == [[5, 2], [7, 1], [0]]
    assert micro_batches.count_fixed(9, 2, 2) == 3  # the larger share holds 5 units


@pytest.mark.parametrize("rows_per_unit,budget", [(1, 60), (2, 90), (2, 1)])
def test_every_unit_once_within_budget_pairs_intact_and_widths_as_trimmed(rows_per_unit, budget):
    _, tok = tiny()
    batch = text_batch(tok, PROMPTS * 2, RESPONSES + RESPONSES[::-1])
    num_units = batch.batch_size // rows_per_unit
    prompt, response = micro_batches.unit_widths(batch, rows_per_unit)
    units = [3, 0, 6, 2, 7, 1][: num_units - 1] + [num_units - 1]
    bins = micro_batches.by_tokens(units, prompt, response, rows_per_unit, budget)
    assert sorted(u for b in bins for u in b) == sorted(units)
    for b in bins:
        rows = [u * rows_per_unit + j for u in b for j in range(rows_per_unit)]
        mb = batch.select(rows).trimmed()
        # the packer's padded size is the size the forward runs on
        assert mb.prompt_ids.numel() + mb.response_ids.numel() == micro_batches.padded_tokens(
            b, prompt, response, rows_per_unit
        )
        assert len(b) == 1 or micro_batches.padded_tokens(b, prompt, response, rows_per_unit) <= budget
    for u in units:  # a unit's own widths are what trimming it alone keeps
        alone = batch.select(list(range(u * rows_per_unit, (u + 1) * rows_per_unit))).trimmed()
        assert (alone.prompt_ids.shape[1], alone.response_ids.shape[1]) == (prompt[u], response[u])
    if budget == 1:
        assert len(bins) == len(units)


def grads(model, batch, loss_fn, rows_per_unit, **optim):
    learner = Learner(model, OptimConfig(lr=1e-3, batch_size=8, micro_batch_size=8, **optim))
    units = list(range(batch.batch_size // rows_per_unit))
    plan = learner.micro_batches(batch, units, rows_per_unit)
    learner.accumulate(batch, units, len(units), loss_fn, rows_per_unit)
    return [p.grad.clone() for p in model.parameters()], [len(m) for m in plan]


def assert_same(a, b):
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6)


def grpo_batch(model, tok):
    batch = text_batch(tok, PROMPTS, RESPONSES, scores=[1.0, 0.0, 0.5, 1.0, 0.0, 0.0, 1.0, 0.2])
    batch = batch.replace(group_ids=torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]))
    # π_old 0.05 nats off so ratios are not all 1 (the clip stays inactive at ε 0.2)
    return batch.replace(old_logprobs=(compute_logprobs(model, batch, 8) - 0.05) * batch.response_mask)


@pytest.mark.parametrize("loss_agg", ["token-mean", "seq-mean-token-mean"])
def test_uneven_token_bins_give_the_single_micro_batch_gradient(loss_agg):
    model, tok = tiny()
    cfg = grpo.Config(loss_agg=loss_agg)
    batch = grpo.prepare(grpo_batch(model, tok), cfg)
    loss_fn = lambda mb, lp: grpo.loss(mb, lp, cfg)
    whole, one = grads(copy.deepcopy(model), batch, loss_fn, 1)
    binned, sizes = grads(copy.deepcopy(model), batch, loss_fn, 1, max_tokens_per_micro_batch=70)
    assert one == [8] and len(sizes) >= 3 and len(set(sizes)) > 1  # uneven bins
    assert_same(whole, binned)


def test_a_per_micro_batch_token_mean_would_not_be_invariant():
    """The check above can fail: a micro-batch's own token-mean scaled by its share of rows (verl's older
    dynamic batch size) moves the gradient when bins hold rows of unequal lengths."""
    model, tok = tiny()
    batch = grpo.prepare(grpo_batch(model, tok), grpo.Config())

    def own_token_mean(mb, lp):
        return masked_mean(-lp * mb.advantages, mb.response_mask) * mb.batch_size / 8, {}

    whole, _ = grads(copy.deepcopy(model), batch, own_token_mean, 1)
    binned, _ = grads(copy.deepcopy(model), batch, own_token_mean, 1, max_tokens_per_micro_batch=70)
    gap = max(float((a - b).abs().max() / a.abs().max().clamp(min=1e-12)) for a, b in zip(whole, binned))
    assert gap > 1e-2


def logged(model, batch, loss_fn, **optim):
    learner = Learner(model, OptimConfig(**{"lr": 1e-3, "batch_size": 8, "micro_batch_size": 8, **optim}))
    return learner.accumulate(batch, list(range(8)), 8, loss_fn, 1)


def test_logged_token_means_are_the_whole_mini_batchs_over_uneven_micro_batches():
    model, tok = tiny()
    cfg = grpo.Config(beta=0.05)
    batch = grpo.prepare(grpo_batch(model, tok), cfg)
    batch = batch.replace(ref_logprobs=batch.old_logprobs - 0.02 * batch.response_mask)
    loss_fn = lambda mb, lp: grpo.loss(mb, lp, cfg)
    whole = logged(copy.deepcopy(model), batch, loss_fn)
    for optim in ({"micro_batch_size": 1}, {"max_tokens_per_micro_batch": 70}):
        split = logged(copy.deepcopy(model), batch, loss_fn, **optim)
        for key in ("approx_kl_old", "kl_ref", "ratio_mean", "clip_fraction", "entropy", "loss"):
            assert split[key] == pytest.approx(whole[key], rel=1e-5, abs=1e-7), (optim, key)
    # uneven micro-batches: a row-share weighting of each one's token mean would differ (1e-4 here)
    lengths = batch.response_mask.sum(-1)
    assert len(set(lengths.tolist())) > 1


def test_uneven_token_bins_keep_dpo_pairs_and_the_gradient():
    model, tok = tiny()
    batch = text_batch(tok, [p for p in PROMPTS for _ in (0, 1)], RESPONSES * 2, scores=[1.0, 0.0] * 8)
    cfg = dpo.Config(nll_weight=0.5, label_smoothing=0.1)
    batch = dpo.prepare(batch, cfg).replace(ref_logprobs=compute_logprobs(model, batch, 4) - 0.1)
    pairs_seen = []

    def loss_fn(mb, lp):
        # a pair is rows 2k, 2k+1 of the micro-batch, with the same prompt
        pairs_seen.append(all(mb.prompt_texts[i] == mb.prompt_texts[i + 1] for i in range(0, mb.batch_size, 2)))
        return dpo.loss(mb, lp, cfg)

    whole, _ = grads(copy.deepcopy(model), batch, loss_fn, 2)
    binned, sizes = grads(copy.deepcopy(model), batch, loss_fn, 2, max_tokens_per_micro_batch=120)
    assert len(sizes) >= 3 and len(set(sizes)) > 1 and all(pairs_seen)
    assert_same(whole, binned)


def test_the_sft_warm_up_keeps_its_own_micro_batch_size():
    model, tok = tiny()
    batch = text_batch(tok, PROMPTS, RESPONSES)
    learner = Learner(model, OptimConfig(lr=1e-3, batch_size=8, micro_batch_size=8, max_tokens_per_micro_batch=1))
    assert learner.micro_batches(batch, list(range(8)), 1, micro_batch_size=3) == [[0, 1, 2], [3, 4, 5], [6, 7]]
    assert len(learner.micro_batches(batch, list(range(8)), 1)) == 8  # budget 1: one unit per bin


def test_sharded_ranks_pad_to_the_largest_count_of_bins(monkeypatch):
    """A sharded model's forwards are collectives: rank 0 runs as many micro-batches as the rank with the most
    bins, the extra ones empty (zero weight in ``accumulate``)."""
    model, tok = tiny()
    batch = text_batch(tok, PROMPTS, RESPONSES)

    class TwoRanks(Dist):
        def gather_objects(self, obj):
            return [obj, 5]  # rank 1 packed its share into 5 bins

    monkeypatch.setattr(learner_module, "current", lambda: TwoRanks(rank=0, world_size=2))
    learner = Learner(model, OptimConfig(lr=1e-3, batch_size=8, micro_batch_size=2, max_tokens_per_micro_batch=1))
    learner.sharded = True
    plan = learner.micro_batches(batch, list(range(8)), 1)
    assert len(plan) == 5 and [len(m) for m in plan] == [1, 1, 1, 1, 0]  # budget 1: a bin per unit, then padding
    assert sorted(u for m in plan for u in m) == [0, 2, 4, 6]  # rank 0's share: units[0::2]
    learner.cfg.max_tokens_per_micro_batch = None  # fixed: ceil(ceil(8 / 2) / 2) on every rank, no gather
    assert learner.micro_batches(batch, list(range(8)), 1) == [[0, 2], [4, 6]]
