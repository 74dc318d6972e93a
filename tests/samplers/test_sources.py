import pytest
from helpers import text_batch, tiny

from itero.config import ConfigError, load_config
from itero.generation.base import SamplingParams
from itero.generation.hf import HFGenerator, Mixture
from itero.samplers.sources import MIXP_WEIGHTS, Source, generate, interleave, plan


def test_plans_split_n_in_source_order():
    assert plan("online", 4) == [Source("policy", 4)]
    assert plan("ref", 4) == [Source("ref", 4)]
    assert plan("gshf", 4) == [Source("ref", 2), Source("policy", 2)]
    assert plan("mixp", 2) == [Source("policy", 1, (1.5, -0.5)), Source("policy", 1, (0.5, 0.5))]
    assert plan("mixp", 4, on_policy_samples=2) == [
        Source("policy", 2),
        Source("policy", 1, MIXP_WEIGHTS[0]),
        Source("policy", 1, MIXP_WEIGHTS[1]),
    ]
    with pytest.raises(ValueError, match="must be even"):
        plan("gshf", 3)
    with pytest.raises(ValueError, match="even number"):
        plan("mixp", 4, on_policy_samples=1)


def test_bad_sampler_split_is_a_config_error():
    with pytest.raises(ConfigError, match="must be even"):
        load_config(None, ["generation.sampler=gshf", "generation.n_samples_per_prompt=3"])


def test_interleave_keeps_each_prompts_samples_together_in_source_order():
    _, tok = tiny()
    a = text_batch(tok, ["p", "p", "q", "q"], ["a0", "a1", "b0", "b1"])  # source 1: 2 per prompt
    b = text_batch(tok, ["p", "q"], ["c0", "d0"])  # source 2: 1 per prompt
    out = interleave([a, b], [2, 1], num_prompts=2, pad_token_id=tok.pad_token_id)
    assert out.response_texts == ["a0", "a1", "c0", "b0", "b1", "d0"]
    assert out.group_ids.tolist() == [0, 0, 0, 1, 1, 1]


@pytest.fixture(scope="module")
def two_models():
    policy, tok = tiny(seed=0)
    ref, _ = tiny(seed=1)
    return policy, ref, tok


def sampled(gen, prompts, n, seed, mixture=None):
    params = SamplingParams(n=n, temperature=1.0, max_new_tokens=6, seed=seed)
    return gen.generate(prompts, params, mixture=mixture).response_texts


PARAMS = SamplingParams(n=4, temperature=1.0, max_new_tokens=6, seed=11)  # source k samples with seed 11 + 7919·k


def test_gshf_first_half_from_reference_second_from_policy(two_models):
    policy, ref, tok = two_models
    prompts = [tok.encode("12+3=", add_special_tokens=False), tok.encode("7*8=", add_special_tokens=False)]
    gen = HFGenerator(policy, tok)
    batch = generate(gen, lambda: ref, prompts, PARAMS, plan("gshf", 4))
    from_ref, from_policy = sampled(HFGenerator(ref, tok), prompts, 2, 11), sampled(gen, prompts, 2, 11 + 7919)
    assert from_ref != sampled(gen, prompts, 2, 11)  # the two models differ, so the check below can fail
    assert batch.response_texts == from_ref[:2] + from_policy[:2] + from_ref[2:] + from_policy[2:]
    assert batch.group_ids.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_mixp_samples_from_the_two_logit_mixtures(two_models):
    policy, ref, tok = two_models
    prompts = [tok.encode("5+5=", add_special_tokens=False)]
    gen = HFGenerator(policy, tok)
    batch = generate(gen, lambda: ref, prompts, PARAMS, plan("mixp", 4))
    up = sampled(gen, prompts, 2, 11, Mixture(ref, (1.5, -0.5)))
    down = sampled(gen, prompts, 2, 11 + 7919, Mixture(ref, (0.5, 0.5)))
    assert up != sampled(gen, prompts, 2, 11)  # mixing changes what is sampled
    assert batch.response_texts == up + down


def test_online_never_loads_the_reference(two_models):
    policy, _, tok = two_models

    def no_reference():
        raise AssertionError("online sampling must not load the reference model")

    batch = generate(
        HFGenerator(policy, tok),
        no_reference,
        [[5, 6]],
        SamplingParams(n=3, seed=1, max_new_tokens=4),
        plan("online", 3),
    )
    assert batch.batch_size == 3
