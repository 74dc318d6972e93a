"""The fast path (itero.generation.fast_decode) is taken where it should be and computes the HF forward."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

import itero.generation.fast_decode as fast_decode
import itero.generation.hf as hf
import itero.generation.stepper as stepper_module
from itero.generation.base import SamplingParams
from itero.generation.fast_decode import FastDecoder, unsupported_reason
from itero.generation.hf import HFGenerator, Mixture

TEXTS = ["x", "12+7=", "ab", "Solve: 3*4 = ", "The answer is \\boxed{", "q", "7*8-1=", "hello there, ", "9", "abc+d"]
BASE = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    pad_token_id=0,
    eos_token_id=1,
    bos_token_id=1,
)
# Supported configurations, each changing something in the maths the fast path redoes.
VARIANTS = {
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, {}),
    "llama": (LlamaConfig, LlamaForCausalLM, {}),
    # no GQA (one query head per KV head), head_dim != hidden / heads, biases everywhere, another activation
    "llama-mha-bias-gelu": (
        LlamaConfig,
        LlamaForCausalLM,
        dict(num_key_value_heads=4, head_dim=32, attention_bias=True, mlp_bias=True, hidden_act="gelu"),
    ),
    "qwen2-eager-untied-theta-eps": (
        Qwen2Config,
        Qwen2ForCausalLM,
        dict(attn_implementation="eager", rope_theta=500.0, tie_word_embeddings=False, rms_norm_eps=1e-3),
    ),
}


@pytest.fixture
def build(tokenizer, peak):
    def build(name: str, seed: int = 3, **overrides):
        config_cls, model_cls, kwargs = VARIANTS[name]
        torch.manual_seed(seed)
        model = peak(model_cls(config_cls(vocab_size=len(tokenizer), **{**BASE, **kwargs, **overrides})), seed)
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():  # biases and norm weights away from their initial 0 and 1
            for p in model.parameters():
                if p.dim() == 1:
                    p.add_(torch.randn(p.shape, generator=g) * 0.1)
        return model

    return build


@pytest.fixture
def spy(monkeypatch):
    """Counts calls of the fast path's prefill and decode step."""
    calls = {"prefill": 0, "step": 0}
    prefill, step = FastDecoder.prefill, FastDecoder.__call__

    def counting_prefill(self, *args):
        calls["prefill"] += 1
        return prefill(self, *args)

    def counting_step(self, *args):
        calls["step"] += 1
        return step(self, *args)

    monkeypatch.setattr(FastDecoder, "prefill", counting_prefill)
    monkeypatch.setattr(FastDecoder, "__call__", counting_step)
    return calls


@pytest.mark.parametrize("fixture", ["policy", "llama_model"])
def test_fast_path_is_taken_for_tiny_qwen2_and_llama(fixture, request, tokenizer, prompts, spy):
    model = request.getfixturevalue(fixture)
    assert unsupported_reason(model) is None
    gen = HFGenerator(model, tokenizer)
    gen.eos_token_ids = torch.tensor([-1])
    gen.generate(prompts, SamplingParams(n=2, temperature=1.0, max_new_tokens=6, seed=0))
    assert spy == {"prefill": 1, "step": 5}


def assert_same_logits(fast, generic, truth, dtype):
    """float32: the fast path computes the HF forward to float error. bfloat16: both round
    differently (packed vs padded matmuls), so the fast path must be as close to the float32 model as
    the HF forward in bfloat16 is, give or take a factor 2."""
    if dtype == torch.float32:  # generic runs the float32 model itself: it is the truth
        torch.testing.assert_close(fast, generic, rtol=1e-5, atol=1e-5)
        return
    hf_error, fast_error = (generic - truth).abs().max(), (fast - truth).abs().max()
    assert 0 < hf_error < 0.1 * truth.abs().max()  # bfloat16 really rounds, and not wildly
    assert fast_error <= 2 * hf_error, (float(fast_error), float(hf_error))


@pytest.mark.parametrize(
    "name,dtype",
    [(name, torch.float32) for name in VARIANTS] + [("qwen2", torch.bfloat16), ("llama-mha-bias-gelu", torch.bfloat16)],
)
def test_fast_logits_equal_generic_with_left_padding_and_dropped_rows(name, dtype, build, tokenizer, monkeypatch):
    # groups of 2 rows, so that the grouped attention and the packed prefill really split the batch
    monkeypatch.setattr(fast_decode, "ATTENTION_GROUP_MIN_ROWS", 2)
    monkeypatch.setattr(fast_decode, "ATTENTION_GROUP_MIN_BYTES", 1)
    groups, row_groups = [], fast_decode._row_groups

    def recording_row_groups(*args, **kwargs):
        groups.append(row_groups(*args, **kwargs))
        return groups[-1]

    monkeypatch.setattr(fast_decode, "_row_groups", recording_row_groups)
    exact = build(name)  # float32: what a bfloat16 run's rounding is measured against
    model = exact if dtype == torch.float32 else build(name).to(dtype)
    prompt_ids, prompt_mask = hf._left_pad([tokenizer.encode(t, add_special_tokens=False) for t in TEXTS], 0, "cpu")
    R = 8
    with torch.inference_mode():
        generic, fast, truth = (stepper_module.Stepper(m, None, prompt_ids.shape[1] + R) for m in (model, model, exact))
        generic.fast = truth.fast = None
        assert fast.fast is not None
        steppers = (generic, fast, truth)
        z_generic, z_fast, z_truth = (s.prefill(prompt_ids, prompt_mask) for s in steppers)
        assert_same_logits(z_fast, z_generic, z_truth, dtype)
        attention, positions = prompt_mask.long(), hf.position_ids(prompt_mask, 0)[:, -1:] + 1
        for t in range(R):
            if t in (3, 5):  # drop rows, as the loop does once enough of them have finished
                keep = torch.arange(len(attention))[torch.arange(len(attention)) % 3 != t % 3]
                for stepper in steppers:
                    stepper.select(keep)
                attention, positions, z_generic = attention[keep], positions[keep], z_generic[keep]
            tokens = z_generic.argmax(-1, keepdim=True)
            attention = torch.cat([attention, attention.new_ones(len(attention), 1)], dim=1)
            z_generic, z_fast, z_truth = (s(tokens, attention, positions) for s in steppers)
            assert_same_logits(z_fast, z_generic, z_truth, dtype)
            positions = positions + 1
    # the batch was split, and some groups started after column 0 (skipped padding)
    assert all(len(g) > 1 for g in groups) and any(start > 0 for g in groups for _, _, start in g)


def test_unsupported_models_keep_the_generic_path(build, tokenizer, prompts, gpt2_model, policy, spy):
    hooked = build("qwen2")
    hooked.model.layers[0].mlp.register_forward_hook(lambda *args: None)
    rope = {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}
    unsupported = {
        "rope": build("qwen2", rope_parameters=rope),
        "sliding": build("qwen2", use_sliding_window=True, sliding_window=4, max_window_layers=0),
        "float32 or all bfloat16": build("llama").double(),
        "hooked": hooked,
        "GPT2LMHeadModel": gpt2_model,
    }
    greedy = SamplingParams(temperature=0.0, max_new_tokens=4)
    for reason, model in unsupported.items():
        assert reason in (unsupported_reason(model) or ""), reason
        if reason not in (
            "float32 or all bfloat16",
            "GPT2LMHeadModel",
        ):  # float64 sampling is not supported; gpt2: test_hf_generator
            assert HFGenerator(model, tokenizer).generate(prompts, greedy).response_ids.shape[0] == len(prompts)
    # a mixture takes the fast path only when both of its models qualify
    params = SamplingParams(max_new_tokens=3, seed=0)
    HFGenerator(policy, tokenizer).generate(prompts, params, mixture=Mixture(model=unsupported["rope"]))
    assert spy == {"prefill": 0, "step": 0}
    HFGenerator(policy, tokenizer).generate(prompts, params, mixture=Mixture(model=build("llama")))
    assert spy["prefill"] == 2 and spy["step"] > 0


def test_fast_path_sees_the_current_weights(build, tokenizer, prompts, monkeypatch):
    """The fused weights are copies, built per generation: an update between two calls must show."""
    model = build("qwen2")
    gen = HFGenerator(model, tokenizer)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=6)
    before = gen.generate(prompts, greedy)
    with torch.no_grad():
        model.model.layers[0].self_attn.k_proj.weight.mul_(-3.0)
        model.model.layers[1].mlp.up_proj.weight.mul_(2.0)
    after = gen.generate(prompts, greedy)
    monkeypatch.setattr(stepper_module, "fast_decoders", lambda *args: None)
    reference = gen.generate(prompts, greedy)
    assert not torch.allclose(before.sampler_logprobs, after.sampler_logprobs)
    assert torch.equal(after.response_ids, reference.response_ids)
    torch.testing.assert_close(after.sampler_logprobs, reference.sampler_logprobs, atol=1e-5, rtol=0)
