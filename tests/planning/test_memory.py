"""Model sizes and per-GPU memory, checked against numbers computed by hand here."""

import json

import pytest

from itero.config import DistributedConfig, load_config
from itero.planning.memory import GiB, ModelRole, estimate, fits, model_memory
from itero.planning.shapes import KNOWN_MODELS, ModelShape, resolve_shape
from itero.schema import ConfigError

QWEN25_7B = ModelShape(hidden=3584, layers=28, heads=28, kv_heads=4, intermediate=18944, vocab=152064, arch="qwen2")
P = 7_615_616_512  # Qwen2.5-7B's parameter count


def test_qwen25_7b_params_by_hand():
    h, kv, inter, vocab, layers = 3584, 4 * 128, 18944, 152064, 28
    attention = (h * h + h) + 2 * (h * kv + kv) + h * h  # q, k, v with bias; o without
    mlp = 3 * h * inter  # gate, up, down
    per_layer = attention + mlp + 2 * h  # two RMSNorms
    by_hand = layers * per_layer + h + 2 * vocab * h  # final norm, embeddings, untied lm_head
    assert by_hand == P == QWEN25_7B.params() == KNOWN_MODELS["Qwen/Qwen2.5-7B"].params()


@pytest.mark.parametrize(
    "name",
    [
        "meta-llama/Meta-Llama-3-8B",
        "realtreetune/rho-1b-sft-MATH",
        "meta-llama/Llama-3.2-1B",
        "sfairXC/FsfairX-LLaMA3-RM-v0.1",
    ],
)
def test_params_match_the_hf_classes(name):
    # built on the meta device: the real layout (ties, score head) without allocating or downloading
    import torch
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        LlamaForSequenceClassification,
    )

    s = KNOWN_MODELS[name]
    cls = LlamaForSequenceClassification if s.head == "score" else LlamaForCausalLM
    config = LlamaConfig(
        hidden_size=s.hidden,
        num_hidden_layers=s.layers,
        num_attention_heads=s.heads,
        num_key_value_heads=s.kv_heads,
        intermediate_size=s.intermediate,
        vocab_size=s.vocab,
        tie_word_embeddings=s.tie_embeddings,
        num_labels=1,
        pad_token_id=0,
    )
    with torch.device("meta"):
        model = cls(config)
    assert s.params() == sum(p.numel() for p in model.parameters())


def test_local_config_json_wins(tmp_path):
    config = {
        "model_type": "qwen2",
        "architectures": ["Qwen2ForCausalLM"],
        "hidden_size": 3584,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "intermediate_size": 18944,
        "vocab_size": 152064,
        "tie_word_embeddings": False,
        "max_position_embeddings": 4096,
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    shape, source = resolve_shape(str(tmp_path))
    assert shape.params() == P and source.endswith("config.json") and shape.max_positions == 4096
    assert resolve_shape("someone/unknown-model")[0] is None


def _dist(**kw):
    return DistributedConfig(num_processes=8, **kw)


def test_zero2_and_zero3_per_gpu_bytes_by_hand():
    policy = ModelRole("policy", "qwen", QWEN25_7B, trained=True)
    # bf16 weights: 2 bytes weights, 2 bytes gradients, 12 bytes AdamW (fp32 master + 2 moments)
    z2 = model_memory(policy, _dist(strategy="zero2"), weight_bytes=2)
    assert (z2.weights, z2.grads, z2.optimizer) == (2 * P, 2 * P // 8, 12 * P // 8)
    assert z2.total == 15_231_233_024 + 1_903_904_128 + 11_423_424_768 == 28_558_561_920
    z3 = model_memory(policy, _dist(strategy="zero3"), weight_bytes=2)
    assert (z3.weights, z3.grads, z3.optimizer) == (1_903_904_128, 1_903_904_128, 11_423_424_768)
    assert z3.total == 16 * P // 8 == model_memory(policy, _dist(strategy="fsdp"), 2).total
    ddp = model_memory(policy, _dist(strategy="ddp"), weight_bytes=4)  # fp32: 4 + 4 + 8 (two moments)
    assert ddp.total == 16 * P
    offloaded = model_memory(policy, _dist(strategy="zero2", offload_optimizer=True), weight_bytes=2)
    assert (offloaded.weights, offloaded.grads, offloaded.optimizer) == (2 * P, 2 * P // 8, 0)


def test_frozen_and_value_models():
    reference = ModelRole("reference", "qwen", QWEN25_7B)
    value = ModelRole("value model", "qwen", QWEN25_7B.as_scorer(), trained=True)
    ref = model_memory(reference, _dist(strategy="zero3"), weight_bytes=2)
    assert (ref.weights, ref.grads, ref.optimizer) == (2 * P // 8, 0, 0)  # bf16, sharded as the policy
    assert model_memory(reference, _dist(strategy="zero2"), 2).weights == 2 * P
    assert model_memory(reference, _dist(strategy="zero3", reference_device="cpu"), 2).total == 0
    scorer_params = P - 152064 * 3584 + 3584  # lm_head replaced by a hidden -> 1 head
    v = model_memory(value, _dist(strategy="zero3", reference_device="cpu"), weight_bytes=2)
    assert v.total == 16 * scorer_params // 8  # a trained model stays on the GPU with grads + optimizer


def test_kv_cache_and_peak():
    assert QWEN25_7B.kv_bytes_per_token() == 2 * 28 * 4 * 128 * 2 == 57_344
    roles = [ModelRole("policy", "qwen", QWEN25_7B, trained=True, kv_cache=True)]
    est = estimate(roles, _dist(strategy="zero3"), weight_bytes=2, train_rows=2, gen_rows=64, tokens=1024)
    assert est.generation == 57_344 * 64 * 1024
    assert est.peak == est.states + max(est.generation, est.activations)
    vllm = estimate(
        roles, _dist(strategy="zero3"), weight_bytes=2, train_rows=2, gen_rows=64, tokens=1024, vllm_utilization=0.5
    )
    assert vllm.generation == 40 * GiB and vllm.peak == vllm.states + vllm.generation + vllm.activations


def test_too_small_gpu_warns_with_what_to_change():
    roles = [ModelRole("policy", "qwen", QWEN25_7B, trained=True, kv_cache=True)]
    dist = _dist(strategy="zero2", gpu_memory_gb=24)
    est = estimate(roles, dist, weight_bytes=2, train_rows=2, gen_rows=8, tokens=1024)
    warnings = fits(est, 24)
    assert len(warnings) == 1 and "will NOT fit" in warnings[0] and "distributed.strategy=zero3" in warnings[0]
    assert fits(est, 80) == []


@pytest.mark.parametrize(
    "overrides, words",
    [
        (
            ["distributed.num_processes=12", "distributed.num_nodes=5"],
            ["distributed.num_processes=12", "num_nodes=5", "divisible"],
        ),
        (["distributed.strategy=zero1"], ["distributed.strategy", "'zero1'", "'zero3'", "'fsdp'"]),
        (
            ["distributed.num_processes=3", "training.batch_size=32", "training.micro_batch_size=1"],
            ["training.batch_size=32", "distributed.num_processes=3"],
        ),
        (["distributed.gpu_memory_gb=0"], ["distributed.gpu_memory_gb", "greater than 0"]),
        (["distributed.reference_device=disk"], ["distributed.reference_device", "'same'", "'cpu'"]),
    ],
)
def test_bad_distributed_config_says_what_to_change(overrides, words):
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    for word in words:
        assert word in str(err.value)


def test_a_frozen_model_an_algorithm_names_is_counted():
    # the plan reads models_needed: a distillation teacher is a frozen model of its own shape
    from itero.planning.memory_config import roles_for_config

    cfg = load_config(None, ["algorithm=distill", "algorithm.teacher_path=Qwen/Qwen2.5-7B"])
    roles, _ = roles_for_config(cfg)
    teacher = [r for r in roles if r.role == "teacher"]
    assert len(teacher) == 1 and not teacher[0].trained
    assert teacher[0].shape.params() == KNOWN_MODELS["Qwen/Qwen2.5-7B"].params()
    plain, _ = roles_for_config(load_config(None, ["algorithm=grpo"]))
    assert "teacher" not in [r.role for r in plain]


def test_a_token_budget_sizes_the_activations_by_its_tokens():
    roles = [ModelRole("policy", "qwen", QWEN25_7B, trained=True, kv_cache=True)]
    dist = _dist(strategy="zero3")
    rows = estimate(roles, dist, weight_bytes=2, train_rows=8, gen_rows=8, tokens=1024)  # 8 rows of 1024
    # a budget of 8192 padded tokens holds at most what 8 full-length rows hold: the same activations
    budget = estimate(roles, dist, weight_bytes=2, train_rows=2, gen_rows=8, tokens=1024, token_budget=8192)
    assert budget.activations == rows.activations and "at most 8192 padded tokens" in budget.activation_note
    half = estimate(roles, dist, weight_bytes=2, train_rows=2, gen_rows=8, tokens=1024, token_budget=4096)
    assert half.activations == pytest.approx(rows.activations / 2, rel=1e-9)  # linear in rows x tokens
    # a budget below one unit (a pair of 1024-token rows) still trains that unit whole
    tiny = estimate(roles, dist, weight_bytes=2, train_rows=2, gen_rows=8, tokens=1024, token_budget=100)
    pair = estimate(roles, dist, weight_bytes=2, train_rows=2, gen_rows=8, tokens=1024)
    assert tiny.activations == pair.activations
