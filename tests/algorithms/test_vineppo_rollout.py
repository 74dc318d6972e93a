"""The loop's VinePPO rollout function: what it asks of the generator, and the budget it enforces."""

import dataclasses
from types import SimpleNamespace

from helpers import text_batch, tiny

from itero.config import load_config
from itero.generation.base import SamplingParams
from itero.generation.hf import HFGenerator
from itero.mc_values import mc_rollout
from itero.rewards.math import MathReward


class ContinuingGenerator(HFGenerator):
    """An hf generator that also offers ``continue_from`` (as the vLLM backend does) and records the calls."""

    calls: list = []

    def continue_from(self, prefixes, params, *, prompt_lengths=None, **kw):
        self.calls.append((list(map(list, prefixes)), list(prompt_lengths)))
        budgets = [params.max_new_tokens - (len(p) - n) for p, n in zip(prefixes, prompt_lengths)]
        out = self.generate(prefixes, dataclasses.replace(params, max_new_tokens=min(budgets)))
        return out


def runtime(generator_cls, model, tok, max_new=12, k=3):
    cfg = load_config(
        None, ["algorithm=vineppo", f"algorithm.num_rollouts={k}", f"generation.max_new_tokens={max_new}"]
    )
    generator = generator_cls(model, tok, batch_size=64)
    return SimpleNamespace(
        cfg=cfg,
        generator=generator,
        tokenizer=tok,
        reward=MathReward(1.0, -0.5, -1.0),
        sampling_params=lambda seed: SamplingParams(n=1, temperature=1.0, max_new_tokens=max_new, seed=seed),
    )


def test_rollout_asks_the_engine_for_each_states_remaining_budget():
    model, tok = tiny()
    batch = text_batch(tok, ["1+2=", "30+4="], ["1+2=3 \\boxed{3}", "30+4=34 \\boxed{34}"]).replace(answers=["3", "34"])
    rt = runtime(ContinuingGenerator, model, tok)
    ContinuingGenerator.calls.clear()
    rewards = mc_rollout(rt, batch, k=1, K=rt.cfg.algorithm.num_rollouts)([(0, 0), (0, 4), (1, 6)])
    assert rewards.shape == (3, 3)  # one row per state, K = 3 continuations
    ((prefixes, lengths),) = ContinuingGenerator.calls
    prompts = [tok.encode(p, add_special_tokens=False) for p in ("1+2=", "1+2=", "30+4=")]
    assert lengths == [len(p) for p in prompts]  # the prompt part; the rest of each prefix is response
    assert [len(p) - n for p, n in zip(prefixes, lengths)] == [0, 4, 6]
    assert prefixes[1][len(prompts[1]) :] == batch.response_ids[0, :4].tolist()


def test_hf_rollout_cuts_continuations_to_the_budget():
    # greedy continuation of a state 10 tokens in, with max_new_tokens 12, may use only 2 more tokens:
    # the graded text is the 10-token prefix plus at most 2 tokens, never a longer answer
    model, tok = tiny()
    batch = text_batch(tok, ["1+2="], ["1+2=3 \\boxed{3}"]).replace(answers=["3"])
    rt = runtime(HFGenerator, model, tok, max_new=12, k=1)
    graded = []
    rt.reward = SimpleNamespace(
        grade=lambda texts, answers, prompts: (graded.extend(texts) or [0.0] * len(texts), None)
    )
    mc_rollout(rt, batch, k=1, K=rt.cfg.algorithm.num_rollouts)([(0, 10)])
    prefix = tok.decode(batch.response_ids[0, :10].tolist())
    assert graded[0].startswith(prefix) and len(tok.encode(graded[0], add_special_tokens=False)) <= 12
