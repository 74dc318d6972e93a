"""GPU memory per device for a config: model states by sharding strategy, activations, generation.

Model states (exact arithmetic on the parameter count, per GPU, N = ``distributed.num_processes``):
- a trained model (policy, value model): weights and gradients at the weights' dtype (bf16 2 bytes,
  fp32 4) and AdamW state: with bf16 weights an fp32 master copy + two fp32 moments = 12 bytes/param
  (DeepSpeed / FSDP mixed precision), with fp32 weights the two moments = 8 bytes/param;
- a LoRA policy (``model.lora``): its base weights frozen at the weights' dtype, and A adapter parameters
  trained in float32 (peft keeps adapters fp32 over a bf16 base): 4 + 4 + 8 = 16 bytes per adapter
  parameter (weights, gradients, two moments), not sharded (LoRA runs ddp);
- a frozen model (reference, reward model, RTO's DPO model): bf16 weights, 2 bytes/param, or nothing
  on the GPU with ``reference_device: cpu``;
- sharding: ddp none; zero2 gradients + optimizer state / N; zero3 and fsdp (full shard) weights too,
  frozen models included (TRL and OpenRLHF wrap the reference in ZeRO-3 as well);
  ``offload_optimizer`` moves the AdamW state to CPU RAM (0 on the GPU).
Rough terms (the formulas are stated so they can be checked; expect ±50%):
- activations of one micro-batch of b rows × s tokens (s = max prompt + max new tokens), bf16,
  after Korthikanti et al. 2022 ("Reducing Activation Recomputation"), without the attention-score
  term because flash / SDPA attention does not store the scores: 34·s·b·h bytes per layer; with
  gradient checkpointing 2·s·b·h per layer (the saved layer inputs) + 34·s·b·h for the layer being
  recomputed; plus the logits, s·b·V·8 bytes (fp32 logits for the log-softmax and their gradient);
- generation with backend hf: the KV cache, 2 × layers × kv_heads × head_dim × 2 bytes per token,
  for generation.batch_size rows × s tokens (both models' caches for the mixp sampler);
  with backend vllm: the engine's share, vllm_gpu_memory_utilization × the GPU (its weights + KV).
Peak = model states + max(activations, generation); with vLLM and no sleep mode the engine's share
is held while training, so the two add up. The CUDA context and fragmentation (1–3 GiB) are extra.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from itero.planning.shapes import KNOWN_MODELS, ModelShape

__all__ = [
    "KNOWN_MODELS",
    "GiB",
    "MemoryEstimate",
    "ModelMemory",
    "ModelRole",
    "ModelShape",
    "estimate",
    "fits",
    "format_memory",
]

GiB = 1024**3
FROZEN_BYTES = 2  # frozen models are loaded in bf16 at scale
ACTIVATION_BYTES_PER_LAYER = 34  # × s·b·h (Korthikanti et al. 2022, flash attention)
LOGIT_BYTES = 8  # fp32 logits + their gradient, per (token, vocab entry)


@dataclass(frozen=True)
class ModelRole:
    role: str  # policy, reference, reward model, value model, DPO model
    name: str
    shape: ModelShape
    trained: bool = False
    kv_cache: bool = False  # keeps its own KV cache while generating
    adapter_params: int = 0  # LoRA: only these are trained, the base weights are frozen


@dataclass(frozen=True)
class ModelMemory:
    role: str
    name: str
    params: int
    weights: int  # bytes per GPU
    grads: int
    optimizer: int
    on_gpu: bool = True
    lora: bool = False  # adapters over a frozen base: replicated (ddp), never sharded

    @property
    def total(self) -> int:
        return self.weights + self.grads + self.optimizer


@dataclass(frozen=True)
class MemoryEstimate:
    models: list[ModelMemory]
    activations: int
    activation_note: str
    generation: int
    generation_note: str
    generation_held_while_training: bool  # vLLM without sleep mode
    gpu_memory_gb: float
    dist: Any = None  # the distributed section the estimate was made for (suggestions name its keys)
    notes: list[str] = field(default_factory=list)

    @property
    def states(self) -> int:
        return sum(m.total for m in self.models)

    @property
    def peak(self) -> int:
        if self.generation_held_while_training:
            return self.states + self.generation + self.activations
        return self.states + max(self.generation, self.activations)


def _shard(nbytes: int, n: int) -> int:
    return -(-nbytes // n)  # ceil: the last shard is padded, as DeepSpeed's partitions are


def model_memory(role: ModelRole, dist, weight_bytes: int) -> ModelMemory:
    """Bytes per GPU of one model's weights, gradients and optimizer state under ``dist.strategy``."""
    n, strategy, p = dist.num_processes, dist.strategy, role.shape.params()
    if role.adapter_params:  # fp32 adapters: 4 bytes weights + 4 gradients + 8 AdamW moments
        a = role.adapter_params
        return ModelMemory(role.role, role.name, p + a, p * weight_bytes + 4 * a, 4 * a, 8 * a, lora=True)
    full_shard = strategy in ("zero3", "fsdp")
    if not role.trained:
        on_gpu = dist.reference_device == "same"
        weights = _shard(p * FROZEN_BYTES, n if full_shard else 1) if on_gpu else 0
        return ModelMemory(role.role, role.name, p, weights, 0, 0, on_gpu)
    optimizer_bytes = 12 if weight_bytes == 2 else 8
    return ModelMemory(
        role.role,
        role.name,
        p,
        weights=_shard(p * weight_bytes, n if full_shard else 1),
        grads=_shard(p * weight_bytes, n if strategy != "ddp" else 1),
        # offloaded (DeepSpeed CPU Adam): the fp32 master copy and the moments live in CPU RAM
        optimizer=0 if dist.offload_optimizer else _shard(p * optimizer_bytes, n if strategy != "ddp" else 1),
    )


def activation_bytes(shape: ModelShape, rows: float, tokens: int, checkpointing: bool) -> float:
    """Rough bytes of one training micro-batch's activations (formula in the module docstring)."""
    sbh = tokens * rows * shape.hidden
    if checkpointing:
        layers = 2 * sbh * shape.layers + ACTIVATION_BYTES_PER_LAYER * sbh
    else:
        layers = ACTIVATION_BYTES_PER_LAYER * sbh * shape.layers
    outputs = shape.vocab if shape.head == "lm" else 1
    return layers + tokens * rows * outputs * LOGIT_BYTES


def estimate(
    roles: list[ModelRole],
    dist,
    *,
    weight_bytes: int,
    train_rows: int,
    gen_rows: int,
    tokens: int,
    vllm_utilization: float | None = None,
    vllm_sleep: bool = False,
    token_budget: int | None = None,
) -> MemoryEstimate:
    """Per-GPU estimate for ``roles`` under ``dist`` (a DistributedConfig); ``tokens`` = prompt + new.
    ``token_budget`` (``training.max_tokens_per_micro_batch``): a micro-batch holds at most that many
    padded tokens, or one unit of ``train_rows`` full-length rows where a unit is longer."""
    models = [model_memory(r, dist, weight_bytes) for r in roles]
    trained = [r for r in roles if r.trained]
    ckpt = "checkpointed" if dist.gradient_checkpointing else "no checkpointing"
    if token_budget is None:
        rows, act_note = train_rows, f"micro-batch {train_rows} rows x {tokens} tokens, {ckpt}"
    else:  # the activations scale with rows x tokens: a budget's worth of full-length rows
        rows = max(token_budget / tokens, train_rows)
        act_note = f"micro-batch of at most {max(token_budget, train_rows * tokens)} padded tokens, {ckpt}"
    activations = max(
        (int(activation_bytes(r.shape, rows, tokens, dist.gradient_checkpointing)) for r in trained), default=0
    )
    if vllm_utilization is not None:
        generation = int(vllm_utilization * dist.gpu_memory_gb * GiB)
        gen_note = f"vLLM share {vllm_utilization:g} of the GPU" + (", released while training" if vllm_sleep else "")
        held = not vllm_sleep
    else:
        per_token = sum(r.shape.kv_bytes_per_token() for r in roles if r.kv_cache)
        generation = per_token * gen_rows * tokens
        gen_note = f"hf KV cache, {gen_rows} rows x {tokens} tokens"
        held = False
    return MemoryEstimate(models, activations, act_note, generation, gen_note, held, dist.gpu_memory_gb, dist)


def fits(est: MemoryEstimate, gpu_memory_gb: float) -> list[str]:
    """Warnings when the estimated peak does not fit (or barely fits) a GPU of ``gpu_memory_gb`` GiB."""
    cap, peak = gpu_memory_gb * GiB, est.peak
    if peak <= 0.9 * cap:
        return []
    if peak <= cap:
        return [
            (
                f"tight: estimated peak {_gib(peak)} GiB per GPU is within 10% of {gpu_memory_gb:g} GiB, "
                f"before the CUDA context and fragmentation (1-3 GiB)"
            )
        ]
    return [
        f"will NOT fit: estimated peak {_gib(peak)} GiB per GPU > {gpu_memory_gb:g} GiB. Try: "
        + "; ".join(_suggestions(est))
    ]


def _suggestions(est: MemoryEstimate) -> list[str]:
    dist, out = est.dist, []
    if dist is None:
        return ["more or larger GPUs"]
    if not dist.offload_optimizer and any(m.optimizer for m in est.models):
        out.append("distributed.offload_optimizer=true (AdamW state in CPU RAM; slower steps)")
    if dist.strategy in ("ddp", "zero2") and not any(m.lora for m in est.models):  # LoRA runs ddp only
        out.append(f"distributed.strategy=zero3 (shards the weights too over {dist.num_processes} GPUs)")
    if not dist.gradient_checkpointing and est.activations > 0.1 * est.gpu_memory_gb * GiB:
        out.append("distributed.gradient_checkpointing=true")
    if any(not m.grads and m.on_gpu for m in est.models):
        out.append("distributed.reference_device=cpu (frozen models off the GPUs)")
    if est.activations > 0.25 * est.gpu_memory_gb * GiB:
        out.append("a smaller training.micro_batch_size")
    if est.generation > 0.25 * est.gpu_memory_gb * GiB:
        key = "generation.vllm_gpu_memory_utilization" if "vLLM" in est.generation_note else "generation.batch_size"
        out.append(f"a smaller {key}")
    if dist.strategy in ("zero3", "fsdp"):
        out.append("more GPUs (distributed.num_processes)")
    return out or ["more or larger GPUs"]


# ----------------------------------------------------------------------------- from a config


def _gib(nbytes: float) -> str:
    return f"{nbytes / GiB:.2f}"


def _count(params: int) -> str:
    return f"{params / 1e9:.2f}B" if params >= 1e8 else f"{params / 1e6:.1f}M"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("s" if n != 1 else "")


def format_memory(est: MemoryEstimate) -> str:
    d = est.dist
    ckpt = "gradient checkpointing" if d.gradient_checkpointing else "no gradient checkpointing"
    ckpt += ", optimizer on CPU" if d.offload_optimizer else ""
    gpus, nodes = _plural(d.num_processes, "GPU"), _plural(d.num_nodes, "node")
    frozen = "GPU" if d.reference_device == "same" else "CPU"
    lines = [
        f"memory per GPU, GiB ({gpus} on {nodes}, {d.gpu_memory_gb:g} GiB each, {d.strategy}, {ckpt}, frozen models on {frozen})",
        f"  {'model':<44} {'role':<13} {'params':>7} {'weights':>8} {'grads':>7} {'optim':>7} {'total':>7}",
    ]
    for m in est.models:
        where = "" if m.on_gpu else "  (on CPU)"
        lines.append(
            f"  {m.name[:44]:<44} {m.role:<13} {_count(m.params):>7} {_gib(m.weights):>8} {_gib(m.grads):>7} "
            f"{_gib(m.optimizer):>7} {_gib(m.total):>7}{where}"
        )
    held = (
        "state + generation + activations"
        if est.generation_held_while_training
        else "state + max(generation, activations)"
    )
    lines += [
        f"  {'model states':<75} {_gib(est.states):>7}",
        f"  {'activations, rough (' + est.activation_note + ')':<75} {_gib(est.activations):>7}",
        f"  {'generation (' + est.generation_note + ')':<75} {_gib(est.generation):>7}",
        f"  {'peak = ' + held:<75} {_gib(est.peak):>7}  of {d.gpu_memory_gb:g}",
    ]
    lines += [f"  note: {n}" for n in est.notes]
    return "\n".join(lines)
