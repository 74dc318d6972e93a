import math

import torch

from itero.generation.sampling import StopStrings, draw, filter_logits, sample_next

INF = float("-inf")


def test_filter_logits_top_k_and_top_p_by_hand():
    z = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    assert filter_logits(z, top_k=2).tolist() == [[2.0, 1.0, INF, INF]]
    # probs ≈ [0.644, 0.237, 0.087, 0.032]: mass above each token = [0, 0.644, 0.881, 0.968]
    assert filter_logits(z, top_p=0.8).tolist() == [[2.0, 1.0, INF, INF]]
    assert filter_logits(z, top_p=0.9).tolist() == [[2.0, 1.0, 0.0, INF]]
    assert filter_logits(z, top_p=0.5).tolist() == [[2.0, INF, INF, INF]]
    assert filter_logits(z, top_p=1e-9).tolist() == [[2.0, INF, INF, INF]]
    # order in the vocabulary does not matter
    assert filter_logits(z.flip(-1), top_k=2, top_p=0.9).tolist() == [[INF, INF, 1.0, 2.0]]


def test_draw_matches_the_distribution_and_never_draws_zero_probability():
    probs = torch.tensor([0.5, 0.0, 0.3, 0.2, 0.0]).expand(20000, 5)
    tokens = draw(probs, torch.Generator().manual_seed(0))
    freq = torch.bincount(tokens, minlength=5).float() / len(tokens)
    assert freq[1] == 0 and freq[4] == 0
    # binomial standard error at n=20000 is < 0.0036; allow 4 sigma
    assert (freq - probs[0]).abs().max() < 0.015


def test_sample_next_logprob_is_before_truncation():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    tokens, logprobs = sample_next(logits, temperature=0.5, top_k=1, generator=torch.Generator().manual_seed(0))
    assert tokens.tolist() == [0]
    expected = 4.0 - math.log(sum(math.exp(v / 0.5) for v in [2.0, 1.0, 0.0, -1.0]))
    assert abs(logprobs.item() - expected) < 1e-6  # not log 1 = 0 of the truncated distribution


def test_stop_strings_detect_completion_in_the_tail(tokenizer):
    stop = StopStrings(tokenizer, ["\n\n", "END"])
    rows = ["abc\n\n", "abc\n", "xxEND", "ENxD"]
    ids = torch.tensor([tokenizer.encode(r, add_special_tokens=False) for r in [r.rjust(5) for r in rows]])
    assert stop.hits(ids).tolist() == [True, False, True, False]
    assert not StopStrings(tokenizer, [])
