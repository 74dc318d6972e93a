"""π_old from the sampler's own log-probs: taken only when a checked first micro-batch agrees."""

import torch
from helpers import text_batch, tiny

from itero.config import load_config
from itero.old_logprobs import TOLERANCE, old_logprobs, sampler_is_the_policy


def batch_with_sampler_logprobs(offset: float):
    _, tok = tiny()
    batch = text_batch(tok, ["1+1=", "2+2=", "3+3=", "4+4="], ["2", "4", "six", "8!"])
    learner = -torch.arange(batch.response_ids.numel(), dtype=torch.float32).view_as(batch.response_ids) / 10
    learner = learner * batch.response_mask
    return batch.replace(sampler_logprobs=(learner + offset) * batch.response_mask), learner


def recording_forward(full, learner):
    """The learner's log-probs of whichever rows of ``full`` it is given, and the sizes it was given."""
    calls = []

    def forward(b):
        calls.append(b.batch_size)
        return learner[[full.prompt_texts.index(t) for t in b.prompt_texts]]

    return forward, calls


def test_agreeing_sampler_logprobs_are_used_after_a_checked_first_micro_batch():
    full, learner = batch_with_sampler_logprobs(TOLERANCE / 10)
    forward, calls = recording_forward(full, learner)
    old, stats = old_logprobs(full, forward, rows_to_check=1, reuse=True)
    assert calls == [1]  # one row recomputed, three taken from the sampler
    assert stats["old_logprobs_from_sampler"] == 1.0 and stats["old_logprobs_sampler_gap"] <= TOLERANCE
    torch.testing.assert_close(old[:1], learner[:1])
    torch.testing.assert_close(old[1:], full.sampler_logprobs[1:])


def test_disagreeing_or_unwanted_sampler_logprobs_are_recomputed():
    full, learner = batch_with_sampler_logprobs(10 * TOLERANCE)
    forward, calls = recording_forward(full, learner)
    old, stats = old_logprobs(full, forward, rows_to_check=1, reuse=True)
    assert calls == [1, 4] and stats["old_logprobs_from_sampler"] == 0.0
    torch.testing.assert_close(old, learner)
    forward, calls = recording_forward(full, learner)
    old, stats = old_logprobs(full, forward, rows_to_check=1, reuse=False)
    assert calls == [4] and stats == {}


def test_only_the_hf_policy_sampler_at_the_learners_temperature_qualifies():
    cfg = load_config(None, ["generation.temperature=0.6"])
    assert sampler_is_the_policy(cfg, 1, 0.6) and not sampler_is_the_policy(cfg, 1, 1.0)
    assert sampler_is_the_policy(load_config(None, ["generation.temperature=0"]), 1, 1.0)  # greedy logs T = 1
    assert not sampler_is_the_policy(load_config(None, ["generation.sampler=ref"]), 1, 0.7)
    late = load_config(None, ["generation.sampler=gshf", "generation.sampler_from_iteration=2"])
    assert sampler_is_the_policy(late, 1, 0.7) and not sampler_is_the_policy(late, 2, 0.7)
    assert not sampler_is_the_policy(load_config(None, ["generation.reuse_sampler_logprobs=false"]), 1, 0.7)
