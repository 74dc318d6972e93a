import copy

import pytest
import torch
from helpers import text_batch, tiny

from itero.algorithms import dpo, sft
from itero.training.forward import compute_logprobs, forward_logprobs
from itero.training.learner import Learner, OptimConfig

RESPONSES = ["12+3=15.", "7", "x=1, y=22", "ab", "hello world", "0", "99-9=90. \\boxed{90}", "q"]


def grads_after(model, batch, loss_fn, micro: int, rows_per_unit: int) -> list[torch.Tensor]:
    learner = Learner(model, OptimConfig(lr=1e-3, batch_size=8, micro_batch_size=micro))
    units = batch.batch_size // rows_per_unit
    learner.accumulate(batch, list(range(units)), units, loss_fn, rows_per_unit)
    return [p.grad.clone() for p in model.parameters()]


def test_sft_gradient_accumulation_1x8_equals_8x1():
    model, tok = tiny()
    batch = sft.prepare(text_batch(tok, ["p1", "prompt 2"] * 4, RESPONSES))
    whole = grads_after(copy.deepcopy(model), batch, sft.loss, micro=8, rows_per_unit=1)
    split = grads_after(copy.deepcopy(model), batch, sft.loss, micro=1, rows_per_unit=1)
    for a, b in zip(whole, split):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_dpo_gradient_accumulation_pairs():
    model, tok = tiny()
    batch = text_batch(tok, ["p"] * 16, RESPONSES * 2, scores=[1.0, 0.0] * 8)
    batch = dpo.prepare(batch, dpo.Config()).replace(ref_logprobs=compute_logprobs(model, batch, 4) - 0.1)
    cfg = dpo.Config(nll_weight=0.5, label_smoothing=0.1)
    loss_fn = lambda mb, lp: dpo.loss(mb, lp, cfg)
    whole = grads_after(copy.deepcopy(model), batch, loss_fn, micro=8, rows_per_unit=2)
    split = grads_after(copy.deepcopy(model), batch, loss_fn, micro=1, rows_per_unit=2)
    for a, b in zip(whole, split):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_logprobs_ignore_padding_and_batching():
    # a row's log-probs must not depend on what else is in its batch (left/right padding, positions)
    model, tok = tiny()
    batch = text_batch(tok, ["p", "a much longer prompt", "mid prompt"], ["long response here", "x", "yy"])
    together = compute_logprobs(model, batch, micro_batch_size=3)
    for i in range(3):
        alone = forward_logprobs(model, batch.select([i]).trimmed()).detach()
        n = int(batch.response_mask[i].sum())
        torch.testing.assert_close(together[i, :n], alone[0, :n], rtol=1e-5, atol=1e-5)
        assert (together[i, n:] == 0).all()


def test_sft_steps_lower_the_loss():
    model, tok = tiny()
    batch = sft.prepare(text_batch(tok, ["p"] * 8, RESPONSES))
    learner = Learner(model, OptimConfig(lr=3e-3, batch_size=8, micro_batch_size=4))
    learner.start_phase(30)
    first = learner.step(batch, list(range(8)), 8, sft.loss)["loss"]
    for _ in range(29):
        last = learner.step(batch, list(range(8)), 8, sft.loss)["loss"]
    assert last < 0.7 * first


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])  # bf16: its fp32 masters are resumed too
def test_checkpoint_round_trip(tmp_path, dtype):
    from itero.models.loading import load_weights_into

    model, tok = tiny()
    model = model.to(dtype)
    batch = sft.prepare(text_batch(tok, ["p"] * 8, RESPONSES))
    learner = Learner(model, OptimConfig(lr=1e-3, batch_size=4, micro_batch_size=4))
    learner.start_phase(10)
    learner.step(batch, [0, 1, 2, 3], 8, sft.loss)
    learner.save(tmp_path)
    expected_rng = torch.rand(3)  # the draw right after the save
    learner.step(batch, [4, 5, 6, 7], 8, sft.loss)
    after_two = [p.detach().clone() for p in model.parameters()]

    fresh = tiny(seed=5)[0].to(dtype)
    load_weights_into(fresh, tmp_path)
    resumed = Learner(fresh, OptimConfig(lr=1e-3, batch_size=4, micro_batch_size=4))
    resumed.load_state(tmp_path, num_steps=10)
    assert torch.equal(torch.rand(3), expected_rng)  # RNG restored to the save point
    resumed.step(batch, [4, 5, 6, 7], 8, sft.loss)
    for a, b in zip(after_two, fresh.parameters()):
        torch.testing.assert_close(a, b.detach(), rtol=0, atol=0)
    for a, b in zip(learner.optimizer.state.values(), resumed.optimizer.state.values()):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # masters and moments, fp32


def test_max_metrics_are_maxima_over_micro_batches_and_steps_and_means_stay_means():
    model, tok = tiny()
    batch = sft.prepare(text_batch(tok, ["p"] * 8, RESPONSES))
    lengths = batch.response_mask.sum(-1).float()

    def loss_fn(mb, lp):
        n = mb.response_mask.sum(-1).float()
        return (lp * 0).sum(), {"length_max": float(n.max()), "length": float(n.mean())}

    for micro in (1, 8):
        learner = Learner(copy.deepcopy(model), OptimConfig(lr=1e-3, batch_size=8, micro_batch_size=micro))
        m = learner.accumulate(batch, list(range(8)), 8, loss_fn)
        assert m["length_max"] == float(lengths.max())
        assert m["length"] == pytest.approx(float(lengths.mean()))
    learner = Learner(copy.deepcopy(model), OptimConfig(lr=1e-3, batch_size=2, micro_batch_size=1))
    m = learner.fit(batch, loss_fn)  # 4 steps of 2 rows: the largest over all steps, the mean of step means
    assert m["length_max"] == float(lengths.max()) and m["length"] == pytest.approx(float(lengths.mean()))
