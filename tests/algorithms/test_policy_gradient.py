"""Invariances of the policy-gradient algorithms through the real learner and a tiny model.

1. Any micro-batch split gives the same gradient (weights are computed over the whole batch).
2. At ratio 1 (old = current policy) and no KL, the gradient is the plain policy gradient
   −Σ_i Σ_t w_it·A_i·∇log π(y_it), computed here independently: each row alone, unpadded, with
   advantages and weights from the formulas written out in this file.
"""

import copy
import math
import statistics

import pytest
import torch
from helpers import text_batch, tiny

from itero.algorithms import cispo, grpo, gspo, reinforce_pp, rloo
from itero.training.forward import compute_logprobs
from itero.training.learner import Learner, OptimConfig

PROMPTS = ["12+3="] * 4 + ["7*8="] * 4
RESPONSES = ["15. \\boxed{15}", "14", "1+2", "\\boxed{15}", "56", "7*8=54. \\boxed{54}", "x", "56."]
SCORES = [1.0, -0.5, -1.0, 1.0, -1.0, -0.5, -1.0, -1.0]
GROUPS = [0, 0, 0, 0, 1, 1, 1, 1]


def make_batch():
    model, tok = tiny()
    return model, text_batch(tok, PROMPTS, RESPONSES, scores=SCORES, group_ids=GROUPS)


def grads(model, batch, algo, cfg, micro):
    learner = Learner(model, OptimConfig(lr=1e-3, batch_size=8, micro_batch_size=micro))
    learner.accumulate(batch, list(range(8)), 8, lambda mb, lp: algo.loss(mb, lp, cfg))
    return [p.grad.clone() for p in model.parameters()]


CASES = [
    (grpo, grpo.Config(loss_agg="token-mean", beta=0.1)),
    (grpo, grpo.Config(loss_agg="seq-mean-token-mean", beta=0.1, epsilon_high=0.28)),
    (grpo, grpo.Config(loss_agg="seq-mean-token-sum-norm", scale_rewards="none", max_response_length=32)),
    (reinforce_pp, reinforce_pp.Config(beta=0.1)),
    (rloo, rloo.Config(beta=0.05)),
    (grpo, grpo.Config(dual_clip=3.0, beta=0.1)),
    (gspo, gspo.Config(epsilon=0.2, epsilon_high=0.2)),
    (cispo, cispo.Config(epsilon_high=0.2)),
]


@pytest.mark.parametrize("algo, cfg", CASES, ids=lambda c: getattr(c, "name", "") + getattr(c, "loss_agg", ""))
def test_micro_batch_split_does_not_change_the_gradient(algo, cfg):
    model, batch = make_batch()
    current = compute_logprobs(model, batch, 8)
    noise = torch.Generator().manual_seed(0)
    mask = batch.response_mask
    # old and ref differ from the current policy so ratios leave the clip range and the KL is non-zero
    old = (current + 0.4 * torch.randn(current.shape, generator=noise)) * mask
    ref = (current + 0.3 * torch.randn(current.shape, generator=noise)) * mask
    batch = algo.prepare(batch.replace(old_logprobs=old, ref_logprobs=ref), cfg)
    whole = grads(copy.deepcopy(model), batch, algo, cfg, micro=8)
    split = grads(copy.deepcopy(model), batch, algo, cfg, micro=1)
    for a, b in zip(whole, split):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def row_logprobs(model, batch, i):
    """log π(y_t) of row i alone: no padding, default positions, plain log-softmax."""
    prompt = batch.prompt_ids[i][batch.prompt_mask[i]]
    response = batch.response_ids[i][batch.response_mask[i]]
    logits = model(input_ids=torch.cat([prompt, response])[None]).logits[0, len(prompt) - 1 : -1]
    return torch.log_softmax(logits.float(), -1).gather(-1, response[:, None]).squeeze(-1)


def group_stats():
    by_group = {g: [s for s, h in zip(SCORES, GROUPS) if h == g] for g in set(GROUPS)}
    return by_group, {g: statistics.fmean(v) for g, v in by_group.items()}


def expected_weights_and_advantages(name, lengths):
    """Per row (w_t, A): the weight of each of its tokens and its advantage, from the formulas."""
    by_group, mean = group_stats()
    B, N = len(SCORES), sum(lengths)
    if name == "grpo":  # token-mean, scale "group"
        adv = [(s - mean[g]) / (statistics.stdev(by_group[g]) + 1e-4) for s, g in zip(SCORES, GROUPS)]
        return [1 / N] * B, adv
    if name == "grpo-seq":  # seq-mean-token-mean
        adv = [(s - mean[g]) / (statistics.stdev(by_group[g]) + 1e-4) for s, g in zip(SCORES, GROUPS)]
        return [1 / (B * n) for n in lengths], adv
    if name == "dr_grpo":  # seq-mean-token-sum-norm, scale "none", constant 32
        return [1 / (B * 32)] * B, [s - mean[g] for s, g in zip(SCORES, GROUPS)]
    if name == "reinforce_pp":  # centred score on each token, whitened over all tokens
        tokens = [s - mean[g] for s, g, n in zip(SCORES, GROUPS, lengths) for _ in range(n)]
        mu, sd = statistics.fmean(tokens), math.sqrt(statistics.variance(tokens) + 1e-8)
        return [1 / N] * B, [(s - mean[g] - mu) / sd for s, g in zip(SCORES, GROUPS)]
    # rloo: the whole response is one action, mean over responses
    k = {g: len(v) for g, v in by_group.items()}
    adv = [s - (sum(by_group[g]) - s) / (k[g] - 1) for s, g in zip(SCORES, GROUPS)]
    return [1 / B] * B, adv


PG_CASES = [
    ("grpo", grpo, grpo.Config()),
    ("grpo-seq", grpo, grpo.Config(loss_agg="seq-mean-token-mean")),
    ("dr_grpo", grpo, grpo.Config(loss_agg="seq-mean-token-sum-norm", scale_rewards="none", max_response_length=32)),
    ("reinforce_pp", reinforce_pp, reinforce_pp.Config()),
    ("rloo", rloo, rloo.Config(beta=0.0)),
]


@pytest.mark.parametrize("name, algo, cfg", PG_CASES, ids=[c[0] for c in PG_CASES])
def test_at_ratio_one_the_gradient_is_the_plain_policy_gradient(name, algo, cfg):
    model, batch = make_batch()
    batch = algo.prepare(batch.replace(old_logprobs=compute_logprobs(model, batch, 8)), cfg)
    got = grads(copy.deepcopy(model), batch, algo, cfg, micro=3)

    reference = copy.deepcopy(model)
    lengths = batch.response_mask.sum(-1).tolist()
    weights, adv = expected_weights_and_advantages(name, lengths)
    surrogate = sum(w * a * row_logprobs(reference, batch, i).sum() for i, (w, a) in enumerate(zip(weights, adv)))
    (-surrogate).backward()
    for a, p in zip(got, reference.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-4, atol=1e-6)
    assert any(p.grad.abs().sum() > 0 for p in reference.parameters())
