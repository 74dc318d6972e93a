"""The GPU check's shapes, workload sizes, random-weight models and rollout batches.

Nothing is downloaded: a model with a real model's shapes gets random weights, is saved with
``save_pretrained`` beside the character tokenizer and loaded back through ``itero.models.loading``,
so the same path a downloaded model takes runs.
"""

from __future__ import annotations

import os
import platform
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from itero.algorithms import grpo
from itero.batch import RolloutBatch
from itero.models.loading import load_model
from itero.models.tiny import build_char_tokenizer
from itero.training.forward import compute_logprobs

# Copied from Qwen2.5-0.5B's and Qwen2.5-1.5B's config.json. Both tie the LM head to the embeddings
# (their published sizes, 0.49B and 1.54B, count it once).
_QWEN25 = dict(vocab_size=151936, rope_theta=1_000_000.0, rms_norm_eps=1e-6, tie_word_embeddings=True)
SHAPES = {
    "0.5b": dict(
        _QWEN25,
        hidden_size=896,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        intermediate_size=4864,
        max_position_embeddings=32768,
    ),
    "1.5b": dict(
        _QWEN25,
        hidden_size=1536,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        intermediate_size=8960,
        max_position_embeddings=131072,
    ),
    # CI's stand-in: the same code on a model that runs in milliseconds on a CPU
    "tiny": dict(
        vocab_size=256,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
        tie_word_embeddings=True,
    ),
}

# bf16 dense tensor-core peaks (no sparsity) from NVIDIA's datasheets, matched in this order against
# torch.cuda.get_device_name: the PCIe and NVL H100s are slower than the SXM one.
BF16_PEAK_TFLOPS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H200", 989.0), ("H100", 989.0))


@dataclass(frozen=True)
class Workload:
    """Sizes of every check. Every prompt has ``prompt_tokens`` tokens and every response
    ``new_tokens``, so generation and training see the same sequence length."""

    dtype: str  # itero's model.dtype
    gen_batches: tuple[int, ...]  # rows per generation call
    prompt_tokens: int
    new_tokens: int
    train_rows: int  # rows of one optimizer step
    micro_rows: int  # rows of one forward / backward
    timed_steps: int  # optimizer steps timed after one warm-up step
    lora_rank: int = 16

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.new_tokens


WORKLOADS = {
    "cuda": Workload("bfloat16", (64, 256), 64, 128, train_rows=64, micro_rows=16, timed_steps=2),
    "cpu": Workload("float32", (2, 4), 8, 8, train_rows=4, micro_rows=2, timed_steps=1, lora_rank=4),
}


def versions(device: torch.device) -> dict:
    import transformers

    try:
        import peft

        peft_version = peft.__version__
    except ImportError:
        peft_version = None
    cuda = device.type == "cuda"
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft_version,
        "cuda": torch.version.cuda if cuda else None,
        "card": torch.cuda.get_device_name(device) if cuda else f"cpu ({platform.processor() or platform.machine()})",
        "device": str(device),
        "cpu_threads": torch.get_num_threads(),
    }


def card_peak_flops(name: str) -> float | None:
    """The card's bf16 dense peak in FLOP/s, or None for a card not in the table."""
    for key, tflops in BF16_PEAK_TFLOPS:
        if key.lower() in name.lower():
            return tflops * 1e12
    return None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device):
    """(fn(), seconds), the device's queued work included."""
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t0


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_bytes(device: torch.device) -> int | None:
    """Peak bytes allocated since ``reset_peak`` on CUDA; None on CPU (an RSS delta would mostly
    measure the allocator's caching, not the tensors)."""
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None


def build_and_save(shape: str, folder: Path, work: Workload, device: torch.device) -> Path:
    """A random-weight Qwen2 model of ``shape`` at the workload's dtype, saved with the character
    tokenizer (its ids are the first 100 rows of the vocabulary) into ``folder``."""
    from transformers import AutoModelForCausalLM, Qwen2Config

    tokenizer = build_char_tokenizer()
    config = Qwen2Config(
        **SHAPES[shape],
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    with torch.device(device):  # initialised where it runs: a 1.5B fp32 init on the CPU takes a while
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, work.dtype))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    return folder


def load(folder: Path, work: Workload, device: torch.device):
    return load_model(str(folder), dtype=work.dtype, device=device)


def random_prompts(rows: int, work: Workload, vocab: int, seed: int = 0) -> list[list[int]]:
    """``rows`` prompts of ``work.prompt_tokens`` token ids drawn uniformly (the specials 0-2 left out)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, vocab, (rows, work.prompt_tokens), generator=g).tolist()


def grpo_batch(model, work: Workload, seed: int = 0) -> tuple[RolloutBatch, grpo.Config]:
    """A GRPO-prepared batch of ``work.train_rows`` random rows, groups of 4, every response
    ``new_tokens`` long; old_logprobs from the model itself, as the loop recomputes them."""
    g = torch.Generator().manual_seed(seed)
    B, P, R, vocab = work.train_rows, work.prompt_tokens, work.new_tokens, model.config.vocab_size
    batch = RolloutBatch(
        prompt_ids=torch.randint(3, vocab, (B, P), generator=g),
        prompt_mask=torch.ones(B, P, dtype=torch.bool),
        response_ids=torch.randint(3, vocab, (B, R), generator=g),
        response_mask=torch.ones(B, R, dtype=torch.bool),
        group_ids=torch.arange(B).div(4, rounding_mode="floor"),
        truncated=torch.ones(B, dtype=torch.bool),
        scores=(torch.arange(B) % 2).float(),  # two of each group's four score 1: every group has a signal
    )
    batch = batch.replace(old_logprobs=compute_logprobs(model, batch, work.micro_rows))
    # ρ unclipped (ε 0.99 below, 100 above): the timed steps, taken after the warm-up moved the
    # weights, still have a gradient to compute however far a random model's log-probs moved
    cfg = grpo.Config(epsilon=0.99, epsilon_high=100.0)
    return grpo.prepare(batch, cfg), cfg


def train_flops(model, work: Workload) -> float:
    """Model FLOPs of one optimizer step: 6 × (linear weights) per token the weights see, the LM head
    on the response positions only (the learner keeps no prompt logits), plus causal attention's
    QKᵀ and AV, 12 × layers × hidden × the mean context (T / 2 for rows of T tokens), per token."""
    c = model.config
    head = model.get_output_embeddings().weight.numel()
    body = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear)) - head
    attention = 12 * c.num_hidden_layers * c.hidden_size * work.tokens / 2
    rows, R = work.train_rows, work.new_tokens
    return rows * work.tokens * (6 * body + attention) + rows * R * 6 * head


def checksums(model) -> dict[str, tuple[float, float]]:
    """(sum, sum of squares) of every parameter in float64: a changed tensor changes them, and they
    cost no second copy of the weights."""
    with torch.no_grad():
        return {
            name: (float(p.double().sum()), float(p.double().square().sum())) for name, p in model.named_parameters()
        }


def apply_lora(model, rank: int):
    """Adapters of rank ``rank`` (alpha 2·rank) on every decoder linear, through itero's own
    ``apply_lora`` (what ``model.lora`` runs)."""
    from itero.model_config import LoraSettings
    from itero.models import lora

    return lora.apply_lora(model, LoraSettings(r=rank, alpha=2.0 * rank, target_modules="all-linear"))


def init_process_group(device: torch.device) -> str:
    """World size 1 in this process: NCCL on CUDA, gloo on CPU, the rendezvous on a free local port."""
    import torch.distributed as tdist

    backend = "nccl" if device.type == "cuda" else "gloo"
    if not tdist.is_initialized():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        if device.type == "cuda":
            torch.cuda.set_device(device)
        tdist.init_process_group(backend, rank=0, world_size=1)
    return backend
