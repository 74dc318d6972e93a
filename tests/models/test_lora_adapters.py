"""LoRA through peft (itero/models/lora.py): what is trained, what the reference sees, what a
checkpoint holds and how every consumer loads it back, and the memory plan's numbers."""

import copy
import sys

import pytest
import torch
from helpers import text_batch, tiny

from itero.algorithms import sft
from itero.generation.base import SamplingParams
from itero.generation.hf import HFGenerator
from itero.model_config import LoraSettings
from itero.models import lora
from itero.models.loading import load_model, load_tokenizer, load_weights_into
from itero.models.lora import AdaptersDisabled, apply_lora
from itero.models.tiny import save_tiny
from itero.planning.memory import ModelRole, fits, model_memory
from itero.planning.shapes import ModelShape
from itero.schema import ConfigError
from itero.training.forward import compute_logprobs
from itero.training.learner import Learner, OptimConfig

RESPONSES = ["12+3=15.", "7", "x=1, y=22", "ab", "hello world", "0", "99-9=90. \\boxed{90}", "q"]
SETTINGS = LoraSettings(r=4, alpha=8.0)


@pytest.fixture
def base(tmp_path):
    model, tok = tiny(hidden=32, layers=2)
    save_tiny(tmp_path / "base", model, tok)
    return tmp_path / "base", tok


def trained(path, tok, steps: int = 3):
    """An adapted policy after a few SFT steps on the adapters alone, and its learner."""
    policy = apply_lora(load_model(str(path)), SETTINGS)
    policy.itero_base = lora.base_name(path)
    learner = Learner(policy, OptimConfig(lr=1e-2, batch_size=8, micro_batch_size=4))
    learner.start_phase(steps)
    batch = sft.prepare(text_batch(tok, ["p1", "prompt 2"] * 4, RESPONSES))
    for _ in range(steps):
        learner.step(batch, list(range(8)), 8, sft.loss)
    return policy, learner, batch


def test_a_step_changes_the_adapters_only(base):
    path, tok = base
    plain = load_model(str(path))
    policy, learner, _ = trained(path, tok)
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert {id(p) for g in learner.optimizer.param_groups for p in g["params"]} == {
        id(p) for p in policy.parameters() if p.requires_grad
    }
    inner = policy.get_base_model().state_dict()
    for name, weight in plain.state_dict().items():  # every base weight bitwise as loaded
        key = (
            name
            if name in inner
            else name.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
        )
        assert torch.equal(inner[key], weight), name
    assert any(not torch.equal(v, policy.itero_initial_adapters[k]) for k, v in lora.adapter_state(policy).items())


def test_reference_with_adapters_disabled_is_the_base_exactly(base):
    path, tok = base
    policy, _, batch = trained(path, tok)
    reference = compute_logprobs(AdaptersDisabled(policy), batch, 4)
    assert torch.equal(reference, compute_logprobs(load_model(str(path)), batch, 4))
    assert (compute_logprobs(policy, batch, 4) - reference).abs().max() > 1e-3  # the adapters do move it
    view = AdaptersDisabled(policy).requires_grad_(False).eval()  # freezing the view leaves the policy trainable
    assert view is not None and policy.training and any(p.requires_grad for p in policy.parameters())


def test_checkpoint_holds_adapters_and_loads_back(base, tmp_path):
    path, tok = base
    policy, learner, batch = trained(path, tok)
    folder = tmp_path / "run" / "iter_1" / "checkpoint"
    learner.save(folder)
    tok.save_pretrained(folder)
    lora.point_to_base(folder, str(path), run=tmp_path)
    adapter_bytes = (folder / lora.ADAPTER_WEIGHTS).stat().st_size
    full_bytes = (path / "model.safetensors").stat().st_size
    assert not list(folder.glob("model*.safetensors")) and adapter_bytes < full_bytes / 3
    assert lora.adapter_base(folder) == str(path.resolve())
    assert lora.base_pointer(str(path), folder, tmp_path) == "../../../base"  # relative inside the run
    assert lora.base_pointer(str(path), folder, tmp_path / "run") == str(path.resolve())
    expected = compute_logprobs(policy, batch, 4)
    fresh = apply_lora(load_model(str(path)), SETTINGS)  # the resume path: adapters into a live policy
    fresh.itero_base = lora.base_name(path)
    load_weights_into(fresh, folder)
    assert torch.equal(compute_logprobs(fresh, batch, 4), expected)
    resumed = Learner(fresh, learner.cfg)  # the adapters' AdamW state comes back with them
    resumed.load_state(folder, 3)
    moments = lambda opt: [s["exp_avg"] for s in opt.state_dict()["state"].values()]
    assert len(moments(resumed.optimizer)) == len(lora.adapter_state(fresh))
    assert all(torch.equal(a, b) for a, b in zip(moments(resumed.optimizer), moments(learner.optimizer)))
    merged = load_model(str(folder))  # frozen / eval use: base + adapters merged into a plain model
    assert not lora.is_lora(merged)
    torch.testing.assert_close(compute_logprobs(merged, batch, 4), expected, rtol=0, atol=1e-5)
    assert load_tokenizer(str(folder)).get_vocab() == tok.get_vocab()
    load_weights_into(fresh, path)  # full weights: the base, with the adapters back at their start
    assert torch.equal(compute_logprobs(fresh, batch, 4), compute_logprobs(load_model(str(path)), batch, 4))


def test_adapters_follow_their_base(base, tmp_path):
    # a policy whose base layers hold other weights loads the adapters' base before the adapters
    path, tok = base
    policy, learner, batch = trained(path, tok)
    learner.save(tmp_path / "ck")
    lora.point_to_base(tmp_path / "ck", str(path))
    other, _ = tiny(seed=7, hidden=32, layers=2)
    save_tiny(tmp_path / "other", other, tok)
    fresh = apply_lora(load_model(str(tmp_path / "other")), SETTINGS)
    fresh.itero_base = lora.base_name(tmp_path / "other")
    load_weights_into(fresh, tmp_path / "ck")
    assert torch.equal(compute_logprobs(fresh, batch, 4), compute_logprobs(policy, batch, 4))


def test_gradient_accumulation_with_adapters_1x8_equals_8x1(base):
    path, tok = base
    batch = sft.prepare(text_batch(tok, ["p1", "prompt 2"] * 4, RESPONSES))
    policy = apply_lora(load_model(str(path)), SETTINGS)
    with torch.no_grad():  # lora_B starts at zero: give it values so lora_A gets gradients too
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(len(name))) * 0.1)
    grads = []
    for micro in (8, 1):
        model = copy.deepcopy(policy)
        Learner(model, OptimConfig(lr=1e-3, batch_size=8, micro_batch_size=micro)).accumulate(
            batch, list(range(8)), 8, sft.loss
        )
        grads.append({n: p.grad for n, p in model.named_parameters() if p.requires_grad})
        assert all(p.grad is None for p in model.parameters() if not p.requires_grad)
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-6)


def test_export_is_a_plain_folder_with_the_adapted_logprobs(base, tmp_path):
    from itero.models.export import export

    path, tok = base
    policy, learner, batch = trained(path, tok)
    folder = tmp_path / "run" / "iter_1" / "checkpoint"
    learner.save(folder)
    tok.save_pretrained(folder)
    lora.point_to_base(folder, str(path), run=tmp_path / "run")
    (tmp_path / "run" / "config.yaml").write_text("")  # a run directory: its last checkpoint is exported
    out = export(tmp_path / "run", tmp_path / "merged")
    assert out == folder and not lora.is_adapter_folder(tmp_path / "merged")
    exported = load_model(str(tmp_path / "merged"))
    torch.testing.assert_close(
        compute_logprobs(exported, batch, 4), compute_logprobs(policy, batch, 4), rtol=0, atol=1e-5
    )
    assert load_tokenizer(str(tmp_path / "merged")).get_vocab() == tok.get_vocab()


def test_the_hf_generator_samples_from_the_adapted_model(base):
    path, tok = base
    policy = apply_lora(load_model(str(path)), SETTINGS)
    generator = HFGenerator(policy.get_base_model(), tok)  # the runtime's generator holds the inner model
    prompts = [tok.encode(p, add_special_tokens=False) for p in ("1+1=", "2+3=", "7*8=")]
    params = SamplingParams(n=2, temperature=0.0, max_new_tokens=12, seed=0)
    before = generator.generate(prompts, params).response_ids
    assert torch.equal(before, HFGenerator(load_model(str(path)), tok).generate(prompts, params).response_ids)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 1.0, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(generator.generate(prompts, params).response_ids, before)
    # the reference sampler (generation.sampler=ref) generates from the view: the base model again
    assert torch.equal(HFGenerator(AdaptersDisabled(policy), tok).generate(prompts, params).response_ids, before)


def test_lora_params_and_memory_by_hand():
    # Qwen2.5-0.5B: hidden 896, 24 layers, 14 heads / 2 KV heads of 64, intermediate 4864
    shape = ModelShape(896, 24, 14, 2, 4864, 151936, tie_embeddings=True, arch="qwen2")
    # r·(in + out) per linear: q 896+896, k 896+128, v 896+128, o 896+896, gate/up 896+4864, down 4864+896
    per_layer = 16 * ((896 + 896) + 2 * (896 + 128) + (896 + 896) + 3 * (896 + 4864))
    assert shape.lora_params(16, "all-linear") == (24 * per_layer, []) == (8_798_208, [])
    assert shape.lora_params(8, ["q_proj", "model.layers.0.self_attn.v_proj", "w1"]) == (
        24 * 8 * ((896 + 896) + (896 + 128)),
        ["w1"],
    )
    p, a = shape.params(), 8_798_208
    dist = type("D", (), dict(num_processes=1, strategy="ddp", offload_optimizer=False, reference_device="same"))
    m = model_memory(ModelRole("policy", "q", shape, trained=True, adapter_params=a), dist, weight_bytes=2)
    # frozen bf16 base (2 bytes) + fp32 adapters: 4 weights + 4 gradients + 8 AdamW moments
    assert (m.weights, m.grads, m.optimizer) == (2 * p + 4 * a, 4 * a, 8 * a)
    full = model_memory(ModelRole("policy", "q", shape, trained=True), dist, weight_bytes=2)
    assert full.total - m.total == 16 * p - (2 * p + 16 * a)  # 2 + 2 + 12 bytes a weight when fully trained


def test_dry_run_shows_the_saving_and_no_reference_copy():
    from itero.config import load_config
    from itero.planning.memory_config import estimate_for_config

    cfg = load_config(None, ["algorithm=grpo", "algorithm.beta=0.04", "model.lora.r=8"])
    est, notes = estimate_for_config(cfg)
    full, _ = estimate_for_config(load_config(None, ["algorithm=grpo", "algorithm.beta=0.04"]))
    assert [m.role for m in est.models] == ["policy"] and [m.role for m in full.models] == ["policy", "reference"]
    assert est.states < full.states / 3
    assert any("reference = the policy with its LoRA adapters disabled" in n for n in notes)
    assert any(n.startswith("LoRA r=8") and "saved" in n for n in notes)
    small = est.__class__(**{**est.__dict__, "gpu_memory_gb": 0.01})  # does not fit: what to change
    advice = fits(small, 0.01)[0]
    assert "will NOT fit" in advice and "zero3" not in advice  # a sharded strategy is refused with LoRA


def test_missing_peft_is_one_line_at_preflight(monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # import peft raises ImportError
    with pytest.raises(ConfigError, match=r"model.lora needs the peft package: pip install 'itero\[lora\]'"):
        lora.check_supported("ddp", "hf")
    with pytest.raises(ConfigError, match="distributed.strategy=ddp"):
        monkeypatch.delitem(sys.modules, "peft")
        lora.check_supported("zero3", "hf")


def test_vllm_lora_requests_with_a_stand_in_engine(monkeypatch):
    # the pure part of the vLLM backend's LoRA path: engine arguments, request ids, what generate gets
    import types

    from itero.generation import vllm as backend

    assert backend.lora_engine_kwargs(4) == {"enable_lora": True, "max_lora_rank": 8, "max_loras": 1}
    assert backend.lora_engine_kwargs(16)["max_lora_rank"] == 16
    with pytest.raises(ValueError, match="up to 512"):
        backend.lora_engine_kwargs(1024)
    requests = backend.AdapterRequests()
    first = requests.args("/run/iter_1/checkpoint")
    assert first == {"lora_name": "itero-1", "lora_int_id": 1, "lora_path": "/run/iter_1/checkpoint"}
    assert requests.args("/run/iter_1/checkpoint") == first  # the same folder keeps its id
    assert requests.args("/run/iter_2/checkpoint")["lora_int_id"] == 2  # a new folder: a new id
    assert requests.args(None) is None

    class LoRARequest(dict):
        def __init__(self, **kw):
            super().__init__(**kw)

    module = types.ModuleType("vllm.lora.request")
    module.LoRARequest = LoRARequest
    monkeypatch.setitem(sys.modules, "vllm.lora.request", module)
    calls = []
    gen = object.__new__(backend.VLLMGenerator)
    gen.adapters, gen._lora_request = backend.AdapterRequests(), None
    gen.llm = types.SimpleNamespace(generate=lambda prompts, **kw: calls.append(kw) or [])
    gen.llm.generate([], **gen._lora_kwargs())
    gen.load_adapter("/run/iter_1/checkpoint", check=False)
    gen.llm.generate([], **gen._lora_kwargs())
    gen.load_adapter(None, check=False)
    gen.llm.generate([], **gen._lora_kwargs())
    assert calls == [{}, {"lora_request": {**first}}, {}]
