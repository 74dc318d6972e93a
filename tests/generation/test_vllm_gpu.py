"""The vLLM engine itself, against the hf backend and the learner: needs a CUDA GPU and vLLM
(``pip install 'itero[vllm]'``), skipped otherwise. Not run on this project's CPU-only machines.

One engine for the module (an external_launcher engine joins torch.distributed once per process).
Every test first syncs the weights it compares against, so the tests do not depend on their order.
bf16 throughout: vLLM's default attention backend has no float32 kernels, so engine and learner are
compared in bf16 with a tolerance of 0.05 nats on log-probs.
"""

import copy
import importlib.util

import pytest
import torch

from itero.generation.base import SamplingParams
from itero.generation.hf import HFGenerator

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available() or importlib.util.find_spec("vllm") is None,
        reason="needs a CUDA GPU and vllm (pip install 'itero[vllm]')",
    ),
]

DTYPE = torch.bfloat16
ATOL = 0.05


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, tokenizer, peak):
    from itero.models.tiny import build_tiny_model, save_tiny

    # head_dim 32: vLLM's attention kernels do not take the head_dim 16 of the CPU tests' tiny model
    model = build_tiny_model(
        len(tokenizer), hidden_size=128, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=256, seed=0
    )
    return save_tiny(tmp_path_factory.mktemp("tiny_vllm"), peak(model, 0).to(DTYPE), tokenizer)


@pytest.fixture(scope="module")
def engine(tiny_dir, tokenizer):
    from itero.generation.vllm import VLLMGenerator

    return VLLMGenerator(
        str(tiny_dir),
        tokenizer,
        dtype="bfloat16",
        gpu_memory_utilization=0.3,
        enable_sleep_mode=True,
        enforce_eager=True,
        seed=0,
    )


@pytest.fixture
def learner(tiny_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(tiny_dir), dtype=DTYPE).cuda().eval()


def _rows(batch):
    return [ids[: int(n)] for ids, n in zip(batch.response_ids.tolist(), batch.response_lengths.tolist())]


def _same_greedy(engine, model, tokenizer, prompts):
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=24)
    v = engine.generate(prompts, params)
    h = HFGenerator(model, tokenizer).generate(prompts, params)
    assert _rows(v) == _rows(h)
    assert v.truncated.tolist() == h.truncated.tolist()
    assert torch.equal(v.prompt_ids, h.prompt_ids.cpu()) and torch.equal(v.group_ids, h.group_ids.cpu())
    mask = v.response_mask
    assert torch.allclose(v.sampler_logprobs[mask], h.sampler_logprobs.cpu()[mask], atol=ATOL)
    return v


def test_greedy_matches_hf(engine, learner, tokenizer, prompts):
    engine.sync_weights(learner)
    _same_greedy(engine, learner, tokenizer, prompts)


def test_sampler_logprobs_are_the_learners_at_temperature(engine, learner, tokenizer, prompts, learner_logits):
    engine.sync_weights(learner)
    params = SamplingParams(n=4, temperature=0.5, max_new_tokens=16, seed=1)
    batch = engine.generate(prompts, params)
    assert batch.group_ids.tolist() == [i for i in range(len(prompts)) for _ in range(4)]
    logits = learner_logits(learner, batch.to("cuda")) / params.temperature
    logp = logits.log_softmax(-1).gather(-1, batch.response_ids.cuda()[..., None]).squeeze(-1).cpu()
    mask = batch.response_mask
    # processed_logprobs: log-softmax(logits / T), the learner's old_logprobs at the same temperature
    assert torch.allclose(batch.sampler_logprobs[mask], logp[mask], atol=ATOL)
    again = engine.generate(prompts, params)
    assert torch.equal(again.response_ids, batch.response_ids)  # per-request seeds reproduce a call


def test_sync_serves_new_weights_and_detects_a_stale_engine(engine, learner, tokenizer, prompts, peak):
    from itero.generation.weight_sync import WeightSyncError, check_sync, learner_probe_logprobs

    engine.sync_weights(learner)
    other = peak(copy.deepcopy(learner).float(), 5).to(DTYPE)
    stats = engine.sync_weights(other)
    assert stats["sync/logprob_shift"] > 0.01 and stats["sync/learner_gap"] <= ATOL
    _same_greedy(engine, other, tokenizer, prompts)
    with pytest.raises(WeightSyncError):  # the engine now serves `other`, not `learner`
        check_sync(None, engine.probe_logprobs(), learner=learner_probe_logprobs(learner, engine.probe_ids))


def test_continuation_resumes_the_greedy_response(engine, learner, tokenizer, prompts):
    engine.sync_weights(learner)
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=24)
    full = _rows(engine.generate(prompts, params))
    keep = [i for i, r in enumerate(full) if len(r) > 3]
    prefixes = [list(prompts[i]) + full[i][:3] for i in keep]
    cont = engine.continue_from(prefixes, params, prompt_lengths=[len(prompts[i]) for i in keep])
    assert _rows(cont) == [full[i][3:] for i in keep]  # the budget left is 21 tokens, as the full response had


def test_sleep_and_wake(engine, learner, tokenizer, prompts):
    engine.sync_weights(learner)
    engine.sleep(level=1)
    _same_greedy(engine, learner, tokenizer, prompts)  # generate wakes the engine; weights came back from CPU
    engine.sleep(level=2)
    with pytest.raises(RuntimeError, match="sync_weights"):
        engine.generate(prompts, SamplingParams(temperature=0.0, max_new_tokens=4))
    engine.sync_weights(learner)
    _same_greedy(engine, learner, tokenizer, prompts)
