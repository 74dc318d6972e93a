"""The pure-Python parts of the vLLM backend, on CPU with stand-ins for vLLM's output objects.

What needs a GPU (the engine itself, load_weights, sleep mode) is in test_vllm_gpu.py.
"""

import importlib.util
from dataclasses import dataclass, field

import pytest
import torch

from itero.config import GenerationConfig
from itero.generation.base import SamplingParams
from itero.generation.hf import HFGenerator
from itero.generation.vllm import VLLMGenerator
from itero.generation.vllm_requests import (
    build_requests,
    continuation_requests,
    outputs_to_batch,
    sampling_params_to_vllm,
)
from itero.generation.weight_sync import (
    WeightSyncError,
    check_sync,
    engine_weight_name,
    gathered_state_dict,
    learner_probe_logprobs,
    prompt_token_logprobs,
    vllm_weight_items,
)
from itero.schema import ConfigError

# vllm.SamplingParams fields (v0.8 – v0.11 signatures): a typo in the mapping would be a TypeError on a GPU only.
VLLM_SAMPLING_FIELDS = {
    "n",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "stop",
    "stop_token_ids",
    "max_tokens",
    "min_tokens",
    "logprobs",
    "prompt_logprobs",
    "detokenize",
    "skip_special_tokens",
    "include_stop_str_in_output",
    "ignore_eos",
}


# ---------------------------------------------------------------- stand-ins for vllm.outputs
@dataclass
class Logprob:
    logprob: float


@dataclass
class Completion:  # vllm.CompletionOutput
    index: int
    token_ids: list
    text: str
    finish_reason: str
    logprobs: list | None = None


@dataclass
class RequestOutput:
    prompt_token_ids: list
    outputs: list = field(default_factory=list)


# ---------------------------------------------------------------- sampling parameters and requests
def test_sampled_params_map_one_to_one():
    p = SamplingParams(n=4, temperature=0.7, top_p=0.9, top_k=20, max_new_tokens=32, stop=("\n\n", "END"), seed=5)
    kw = sampling_params_to_vllm(p)
    assert kw == dict(
        n=4,
        temperature=0.7,
        top_p=0.9,
        top_k=20,
        max_tokens=32,
        stop=["\n\n", "END"],
        include_stop_str_in_output=True,
        detokenize=True,
        seed=5,
        logprobs=0,
    )
    assert set(kw) <= VLLM_SAMPLING_FIELDS


def test_disabled_top_k_greedy_and_no_logprobs():
    kw = sampling_params_to_vllm(SamplingParams(temperature=1.0, top_k=0))
    assert kw["top_k"] == -1  # -1 disables top-k in every vLLM version; 0 is rejected by older ones
    assert kw["stop"] is None and kw["detokenize"] is False  # no stop strings: we decode with our tokenizer
    greedy = sampling_params_to_vllm(SamplingParams(temperature=0.0, top_k=5, top_p=0.5, seed=3), logprobs=False)
    assert (greedy["temperature"], greedy["top_k"], greedy["top_p"], greedy["seed"]) == (0.0, -1, 1.0, None)
    assert greedy["logprobs"] is None


def test_requests_seed_each_prompt_apart():
    prompts = [[5, 6], [7], [8, 9, 10]]
    token_prompts, kwargs = build_requests(prompts, SamplingParams(n=4, seed=100))
    assert token_prompts == [{"prompt_token_ids": [5, 6]}, {"prompt_token_ids": [7]}, {"prompt_token_ids": [8, 9, 10]}]
    assert [k["seed"] for k in kwargs] == [100, 104, 108]
    # vLLM seeds sample j of a request with seed + j: every row gets its own stream
    assert len({k["seed"] + j for k in kwargs for j in range(4)}) == 12
    _, unseeded = build_requests(prompts, SamplingParams(n=4, seed=100), per_request_seeds=False)
    assert all(k["seed"] is None for k in unseeded)
    _, greedy = build_requests(prompts, SamplingParams(n=2, temperature=0.0, seed=100))
    assert all(k["seed"] is None for k in greedy)


def test_continuations_keep_the_response_budget():
    prefixes = [[1, 2, 3, 10, 11], [4, 5, 12]]  # prompt + partial response
    params = SamplingParams(n=3, max_new_tokens=8, seed=0)
    token_prompts, kwargs = continuation_requests(prefixes, params, prompt_lengths=[3, 2])
    assert [t["prompt_token_ids"] for t in token_prompts] == prefixes
    assert [k["max_tokens"] for k in kwargs] == [6, 7]  # 8 minus the 2 and 1 response tokens already there
    assert [k["n"] for k in kwargs] == [3, 3]
    _, plain = continuation_requests(prefixes, params)
    assert [k["max_tokens"] for k in plain] == [8, 8]
    with pytest.raises(ValueError, match="leaves 0"):
        continuation_requests([[1] + [9] * 8], params, prompt_lengths=[1])
    with pytest.raises(ValueError, match="prompt 6"):
        continuation_requests([[1, 2]], params, prompt_lengths=[6])
    with pytest.raises(ValueError, match="one per prefix"):
        continuation_requests(prefixes, params, prompt_lengths=[3])


# ---------------------------------------------------------------- outputs → RolloutBatch
def _completion(index, ids, lps, reason, text="", extra=True):
    # logprobs=0 returns the sampled token's entry; an extra top token checks the sampled one is picked
    entries = [{t: Logprob(lp), **({t + 1: Logprob(-0.01)} if extra else {})} for t, lp in zip(ids, lps)]
    return Completion(index, ids, text, reason, entries)


def test_outputs_become_the_hf_layout():
    prompts = [[5, 6, 7], [8]]
    outputs = [
        RequestOutput(
            [5, 6, 7],
            [
                _completion(1, [30], [-0.5], "stop", "b"),  # out of index order on purpose
                _completion(0, [20, 21, 22], [-1.0, -2.0, -3.0], "length", "a"),
            ],
        ),
        RequestOutput(
            [8],
            [
                _completion(0, [40, 41], [-0.25, -0.75], "stop", "c"),
                _completion(1, [50, 51, 52], [-0.1, -0.2, -0.3], "length", "d"),
            ],
        ),
    ]
    b = outputs_to_batch(outputs, prompts, 2, pad_token_id=0, prompt_texts=["p0", "p1"], answers=["a0", "a1"])
    assert b.prompt_ids.tolist() == [[5, 6, 7], [5, 6, 7], [0, 0, 8], [0, 0, 8]]
    assert b.prompt_mask.tolist() == [[True] * 3] * 2 + [[False, False, True]] * 2
    assert b.response_ids.tolist() == [[20, 21, 22], [30, 0, 0], [40, 41, 0], [50, 51, 52]]
    assert b.response_mask.sum(-1).tolist() == [3, 1, 2, 3]
    assert b.group_ids.tolist() == [0, 0, 1, 1]
    assert b.truncated.tolist() == [True, False, False, True]
    expected = [[-1.0, -2.0, -3.0], [-0.5, 0, 0], [-0.25, -0.75, 0], [-0.1, -0.2, -0.3]]
    assert torch.allclose(b.sampler_logprobs, torch.tensor(expected))
    assert b.old_logprobs is None  # engine log-probs never stand in for the learner's
    assert b.response_texts == ["a", "b", "c", "d"]
    assert b.prompt_texts == ["p0", "p0", "p1", "p1"] and b.answers == ["a0", "a0", "a1", "a1"]
    decoded = outputs_to_batch(outputs, prompts, 2, pad_token_id=0, decode=lambda rows: [str(len(r)) for r in rows])
    assert decoded.response_texts == ["3", "1", "2", "3"]


def test_outputs_are_checked():
    good = [RequestOutput([5], [_completion(0, [1], [-1.0], "stop")])]
    with pytest.raises(ValueError, match="another prompt"):
        outputs_to_batch(good, [[6]], 1, pad_token_id=0)
    with pytest.raises(ValueError, match="expected n=2"):
        outputs_to_batch(good, [[5]], 2, pad_token_id=0)
    with pytest.raises(ValueError, match="finish_reason 'abort'"):
        outputs_to_batch([RequestOutput([5], [_completion(0, [1], [-1.0], "abort")])], [[5]], 1, pad_token_id=0)
    no_lp = [RequestOutput([5], [Completion(0, [1, 2], "x", "stop", None)])]
    assert outputs_to_batch(no_lp, [[5]], 1, pad_token_id=0).sampler_logprobs is None


def test_hf_batch_roundtrips_through_engine_outputs(policy, tokenizer, prompts):
    """Engine outputs carrying the hf backend's own samples give back the hf batch, field for field."""
    hf = HFGenerator(policy, tokenizer)
    params = SamplingParams(n=3, temperature=1.0, max_new_tokens=6, seed=0)
    ref = hf.generate(prompts, params, prompt_texts=[str(i) for i in range(len(prompts))], answers=list("abcd"))
    outputs = []
    for i, p in enumerate(prompts):
        completions = []
        for j in range(params.n):
            r = i * params.n + j
            n_tok = int(ref.response_mask[r].sum())
            ids = ref.response_ids[r, :n_tok].tolist()
            reason = "length" if ref.truncated[r] else "stop"
            completions.append(_completion(j, ids, ref.sampler_logprobs[r, :n_tok].tolist(), reason))
        outputs.append(RequestOutput(list(p), completions))
    decode = lambda rows: tokenizer.batch_decode(rows, skip_special_tokens=True)
    got = outputs_to_batch(
        outputs,
        prompts,
        params.n,
        pad_token_id=hf.pad_token_id,
        decode=decode,
        prompt_texts=[str(i) for i in range(len(prompts))],
        answers=list("abcd"),
    )
    for name in ("prompt_ids", "prompt_mask", "response_ids", "response_mask", "group_ids", "truncated"):
        assert torch.equal(getattr(got, name), getattr(ref, name).cpu()), name
    assert torch.allclose(got.sampler_logprobs, ref.sampler_logprobs.cpu())
    assert (got.response_texts, got.prompt_texts, got.answers) == (ref.response_texts, ref.prompt_texts, ref.answers)


# ---------------------------------------------------------------- weight names
def test_wrapper_prefixes_are_stripped():
    assert (
        engine_weight_name("module.model.layers.0.self_attn.q_proj.weight") == "model.layers.0.self_attn.q_proj.weight"
    )
    assert engine_weight_name("module.module.lm_head.weight") == "lm_head.weight"
    assert (
        engine_weight_name(
            "_fsdp_wrapped_module.model.layers.3._fsdp_wrapped_module._checkpoint_wrapped_module.mlp.up_proj.weight"
        )
        == "model.layers.3.mlp.up_proj.weight"
    )
    assert engine_weight_name("_orig_mod.model.norm.weight") == "model.norm.weight"
    assert engine_weight_name("model.submodule.x") == "model.submodule.x"  # "module." only as the DDP wrapper


def test_weight_items_skip_heads_and_rename():
    t = torch.zeros(2)
    sd = {
        "module.model.embed_tokens.weight": t,
        "v_head.weight": t,
        "score.weight": t,
        "model.layers.0.self_attn.rotary_emb.inv_freq": t,
        "lm_head.weight": t,
    }
    items = list(vllm_weight_items(sd))
    assert [n for n, _ in items] == ["model.embed_tokens.weight", "lm_head.weight"]
    assert items[0][1] is t  # streamed, not copied
    renamed = dict(vllm_weight_items(sd.items(), name_map={"lm_head.weight": None}))
    assert list(renamed) == ["model.embed_tokens.weight"]
    upper = dict(vllm_weight_items(sd, name_map=lambda n: n.upper()))
    assert list(upper) == ["MODEL.EMBED_TOKENS.WEIGHT", "LM_HEAD.WEIGHT"]
    with pytest.raises(ValueError, match="flat parameter"):
        list(vllm_weight_items({"_fsdp_wrapped_module._flat_param": t}))


def test_streamed_weights_load_into_a_fresh_model(policy, tokenizer):
    """Plain and torch.compile-wrapped models stream HF names that rebuild the same model (as load_weights would)."""
    from itero.models.tiny import build_tiny_model

    for source in (policy, torch.compile(policy)):
        fresh = build_tiny_model(len(tokenizer), hidden_size=64, num_layers=2, intermediate_size=128, seed=7)
        params = dict(fresh.named_parameters())
        for name, tensor in vllm_weight_items(gathered_state_dict(source)):
            params[name].data.copy_(tensor)  # KeyError on any name the engine would not know
        for name, p in policy.named_parameters():
            assert torch.equal(fresh.get_parameter(name), p), name


# ---------------------------------------------------------------- sync check
def test_check_sync_against_the_learner():
    before, after, learner = [-1.0, -2.0, -3.0], [-1.2, -2.1, -2.9], [-1.21, -2.08, -2.93]
    stats = check_sync(before, after, learner=learner)
    assert stats["sync/logprob_shift"] == pytest.approx(0.2)
    assert stats["sync/learner_gap"] == pytest.approx((0.01 + 0.02 + 0.03) / 3)
    with pytest.raises(WeightSyncError, match="0.2000 nats"):  # a stale engine: still the old log-probs
        check_sync(before, before, learner=[-1.2, -2.2, -2.8])
    # a learner step too small to move bf16 weights: unchanged, and still in sync
    assert check_sync(before, before, learner=before)["sync/learner_gap"] == 0.0


def test_check_sync_without_the_learner():
    with pytest.raises(WeightSyncError, match="still serves the old weights"):
        check_sync([-1.0, -2.0], [-1.0, -2.0])
    assert check_sync([-1.0, -2.0], [-1.0, -2.5])["sync/logprob_shift"] == pytest.approx(0.5)
    assert check_sync([-1.0, -2.0], [-1.0, -2.0], weights_changed=False)["sync/logprob_shift"] == 0.0
    with pytest.raises(WeightSyncError):
        check_sync([-1.0, -2.0], [-1.0, -2.0 + 1e-4], atol=1e-3)
    assert check_sync(None, [-1.0]) == {}  # weights were dropped (sleep level 2): nothing to compare
    with pytest.raises(ValueError, match="same probe"):
        check_sync([-1.0], [-1.0, -2.0])


def test_probe_logprobs_engine_and_learner(policy):
    entries = [None, {7: Logprob(-1.0), 3: Logprob(-0.5)}, {9: Logprob(-2.0)}]
    assert prompt_token_logprobs(entries, [1, 7, 9]) == [-1.0, -2.0]
    with pytest.raises(ValueError):
        prompt_token_logprobs(entries, [1, 7])
    ids = [3, 10, 20, 30]
    policy.train()
    got = learner_probe_logprobs(policy, ids)
    assert policy.training  # mode restored
    policy.eval()
    with torch.no_grad():
        logp = policy(input_ids=torch.tensor([ids])).logits[0].float().log_softmax(-1)
    assert got == pytest.approx([float(logp[t, ids[t + 1]]) for t in range(3)], abs=1e-6)


# ---------------------------------------------------------------- construction and config
@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_missing_vllm_says_how_to_install(tokenizer):
    with pytest.raises(ImportError, match=r"itero\[vllm\].*CUDA GPU"):
        VLLMGenerator("some/model", tokenizer)


def test_generation_config_vllm_fields():
    g = GenerationConfig(backend="vllm", vllm_gpu_memory_utilization=0.3)
    assert (g.vllm_sleep_mode, g.vllm_prefix_caching) == (False, True)
    for bad in (
        dict(vllm_gpu_memory_utilization=0.0),
        dict(vllm_gpu_memory_utilization=1.5),
        dict(backend="vllm", sampler="mixp"),
    ):
        with pytest.raises((ValueError, ConfigError)):
            GenerationConfig(**bad)
