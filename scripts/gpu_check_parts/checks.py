"""The checks of ``scripts/gpu_check.py``, one function per check, each returning a dict of measurements.

A check that measures something wrong (a checkpoint that reloads different, a frozen weight that moved)
lists it under ``problems``; the runner marks that check failed and still runs the others.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gpu_check_parts.setup import (
    Workload,
    apply_lora,
    build_and_save,
    card_peak_flops,
    checksums,
    grpo_batch,
    init_process_group,
    load,
    peak_bytes,
    random_prompts,
    reset_peak,
    timed,
    train_flops,
)
from itero.algorithms import grpo
from itero.generation.base import SamplingParams
from itero.generation.fast_decode import unsupported_reason
from itero.generation.hf import HFGenerator
from itero.models.loading import load_tokenizer
from itero.training import sharding
from itero.training.forward import compute_logprobs
from itero.training.learner import Learner, OptimConfig

GiB = 1024**3
LR = 1e-6  # a usual RL learning rate for a full fine-tune (TRL's GRPO default)
LORA_LR = 1e-4  # adapters train at larger rates


@dataclass
class ShapeRun:
    """What the checks of one shape share: its saved folder, the loaded policy, earlier results."""

    shape: str
    folder: Path
    work: Workload
    device: torch.device
    model: torch.nn.Module | None = None
    tokenizer: object = None
    results: dict = field(default_factory=dict)

    def free_model(self) -> None:
        self.model = None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def check_build(run: ShapeRun) -> dict:
    """Random weights saved with save_pretrained, loaded back through itero's load_model / load_tokenizer."""
    _, build_s = timed(lambda: build_and_save(run.shape, run.folder, run.work, run.device), run.device)
    run.model, load_s = timed(lambda: load(run.folder, run.work, run.device), run.device)
    run.tokenizer = load_tokenizer(str(run.folder))
    p = next(run.model.parameters())
    return {
        "params": sum(x.numel() for x in run.model.parameters()),
        "dtype": str(p.dtype).removeprefix("torch."),
        "param_device": str(p.device),
        "build_save_s": round(build_s, 2),
        "load_s": round(load_s, 2),
        "fast_decode": unsupported_reason(run.model) or "used",
    }


def _generate_tokens(run: ShapeRun, rows: int, use_hf_generate: bool, seed: int) -> int:
    """One sampled generation of ``rows`` random prompts; returns the new tokens produced."""
    prompts = random_prompts(rows, run.work, run.model.config.vocab_size, seed)
    R = run.work.new_tokens
    if use_hf_generate:
        ids = torch.tensor(prompts, device=run.device)
        with torch.inference_mode():
            out = run.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                do_sample=True,
                top_k=0,
                max_new_tokens=R,
                min_new_tokens=R,  # EOS suppressed: every row runs to the fixed length
                pad_token_id=run.tokenizer.pad_token_id,
            )
        return (out.shape[1] - ids.shape[1]) * rows
    params = SamplingParams(n=1, temperature=1.0, max_new_tokens=R, seed=seed)
    batch = HFGenerator(run.model, run.tokenizer).generate(prompts, params)
    return int(batch.response_mask.sum())  # a row that samples EOS (rare with random weights) ends early


def check_generation(run: ShapeRun) -> dict:
    """itero's hf generator against model.generate, tokens/s at each batch size; sampled, temperature 1."""
    for hf in (False, True):  # warm-up: kernels, allocator, cuBLAS handles
        _generate_tokens(run, 2, hf, seed=99)
    out: dict = {"peak_bytes": None}
    for rows in run.work.gen_batches:
        for name, hf in (("itero", False), ("generate", True)):
            reset_peak(run.device)
            tokens, seconds = timed(lambda r=rows, h=hf: _generate_tokens(run, r, h, seed=r), run.device)
            out[f"{name}_b{rows}_tokens_per_s"] = round(tokens / seconds, 1)
            out[f"{name}_b{rows}_tokens"] = tokens
            peak = peak_bytes(run.device)
            if peak is not None and name == "itero":
                out["peak_bytes"] = max(out["peak_bytes"] or 0, peak)
        out[f"speedup_b{rows}"] = round(out[f"itero_b{rows}_tokens_per_s"] / out[f"generate_b{rows}_tokens_per_s"], 2)
    return out


def _learner_steps(model, run: ShapeRun, lr: float) -> tuple[dict, float, int | None, tuple]:
    """One warm-up step, then ``timed_steps`` timed ones. Returns (last metrics, seconds per step,
    peak bytes, (the fraction of layer 0's down_proj weights the warm-up step changed, the same of
    their fp32 masters), each None when it does not apply: a frozen weight, fp32 weights)."""
    batch, cfg = grpo_batch(model, run.work)
    work = run.work
    optim = OptimConfig(
        lr=lr,
        batch_size=work.train_rows,
        micro_batch_size=work.micro_rows,
        schedule="constant",
        precision="bf16" if work.dtype == "bfloat16" else "fp32",
    )
    learner = Learner(model, optim)
    learner.start_phase(1 + work.timed_steps)
    loss_fn = lambda mb, lp: grpo.loss(mb, lp, cfg)
    units = list(range(work.train_rows))
    probe = next(
        (p for n, p in model.named_parameters() if n.endswith("mlp.down_proj.weight") and p.requires_grad), None
    )
    local = lambda p: p.to_local() if hasattr(p, "to_local") else p  # a sharded parameter: this rank's part
    before = None if probe is None else local(probe).detach().clone()
    reset_peak(run.device)
    metrics = learner.step(batch, units, work.train_rows, loss_fn)  # warm-up; allocates the AdamW state
    # bf16 weights lose an update smaller than half their rounding step: what share does this lr move?
    changed = None if probe is None else float((local(probe).detach() != before).float().mean())
    # bf16 weights train through fp32 masters (MasterWeightAdamW), which all move: None for fp32 weights
    master = None if probe is None else learner.optimizer.state.get(probe, {}).get("master")
    master_changed = None if master is None else float((local(master) != before.float()).float().mean())
    del before
    seconds = 0.0
    for _ in range(work.timed_steps):
        metrics, s = timed(lambda: learner.step(batch, units, work.train_rows, loss_fn), run.device)
        seconds += s
    return metrics, seconds / work.timed_steps, peak_bytes(run.device), (changed, master_changed)


def _tokens_per_step(work: Workload) -> int:
    return work.train_rows * work.tokens


def check_learner(run: ShapeRun) -> dict:
    """One GRPO optimizer step: tokens/s and model FLOPs utilisation against the card's peak."""
    from benchmarks.bench_learner import matmul_peak

    metrics, seconds, peak, (changed, master_changed) = _learner_steps(run.model, run, lr=LR)
    work, c = run.work, run.model.config
    tokens = _tokens_per_step(work)
    flops = train_flops(run.model, work)
    if run.device.type == "cuda":
        name = torch.cuda.get_device_name(run.device)
        peak_flops, against = card_peak_flops(name), f"{name} bf16 dense peak"
    else:
        peak_flops = matmul_peak(work.micro_rows * work.tokens, c.hidden_size, c.intermediate_size)
        against = "measured fp32 matmul peak of the model's shapes (benchmarks/bench_learner.py)"
    problems = [] if torch.isfinite(torch.tensor(metrics["loss"])) else [f"loss {metrics['loss']} is not finite"]
    if not metrics["grad_norm"] > 0:
        problems.append(f"gradient norm {metrics['grad_norm']}: the step had nothing to train on")
    return {
        "tokens_per_step": tokens,
        "step_s": round(seconds, 4),
        "tokens_per_s": round(tokens / seconds, 1),
        "model_flops_per_step": flops,
        "model_tflops_per_s": round(flops / seconds / 1e12, 3),
        "peak_tflops": None if peak_flops is None else round(peak_flops / 1e12, 3),
        "mfu": None if peak_flops is None else round(flops / seconds / peak_flops, 4),
        "mfu_against": against,
        "loss": metrics["loss"],
        "grad_norm": metrics["grad_norm"],
        "lr": LR,
        "down_proj_fraction_changed": changed,
        "down_proj_master_fraction_changed": master_changed,
        "peak_bytes": peak,
        "problems": problems,
    }


def plan(run: ShapeRun, lora_rank: int = 0):
    """The dry run's estimate (itero/planning/memory.py, called directly) for this shape on one GPU,
    ``ddp``, with the workload's micro-batch, largest generation batch and sequence length; with
    ``lora_rank``, for adapters of that rank on every decoder linear. Returns (shape, adapter
    parameters, estimate)."""
    from itero.config import DistributedConfig
    from itero.planning.memory import ModelRole, estimate
    from itero.planning.shapes import ModelShape

    work = run.work
    shape = ModelShape.from_hf_config(run.model.config.to_dict())
    adapter_params = shape.lora_params(lora_rank, "all-linear")[0] if lora_rank else 0
    gpu_gb = torch.cuda.get_device_properties(run.device).total_memory / GiB if run.device.type == "cuda" else 80.0
    role = ModelRole("policy", run.shape, shape, trained=True, kv_cache=True, adapter_params=adapter_params)
    est = estimate(
        [role],
        DistributedConfig(num_processes=1, strategy="ddp", gpu_memory_gb=gpu_gb),
        weight_bytes=2 if work.dtype == "bfloat16" else 4,
        train_rows=work.micro_rows,
        gen_rows=max(work.gen_batches),
        tokens=work.tokens,
    )
    return shape, adapter_params, est


def check_memory(run: ShapeRun) -> dict:
    """Peaks measured in the generation and learner checks against the dry run's plan."""
    shape, _, est = plan(run)
    gen, learn = (run.results.get(k, {}).get("peak_bytes") for k in ("generation", "learner"))
    measured = max((x for x in (gen, learn) if x is not None), default=None)
    return {
        "planned_params": shape.params(),
        "planned_states_bytes": est.states,
        "planned_activations_bytes": est.activations,
        "planned_generation_bytes": est.generation,
        "planned_peak_bytes": est.peak,
        "planned_training_bytes": est.states + est.activations,
        "planned_generating_bytes": est.models[0].weights + est.generation,
        "measured_training_bytes": learn,
        "measured_generating_bytes": gen,
        "measured_peak_bytes": measured,
        "measured_over_planned": None if measured is None else round(measured / est.peak, 3),
        "problems": [] if shape.params() == run.results["build"]["params"] else ["planned params != model params"],
    }


def check_lora(run: ShapeRun) -> dict:
    """A GRPO step with LoRA adapters: tokens/s, peak memory, and that only adapter weights moved."""
    run.free_model()
    run.model = apply_lora(load(run.folder, run.work, run.device), run.work.lora_rank)
    model = run.model
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    _, planned_adapters, est = plan(run, lora_rank=run.work.lora_rank)
    before = checksums(model)
    metrics, seconds, peak, _ = _learner_steps(model, run, lr=LORA_LR)
    after = checksums(model)
    moved = [name for name in before if before[name] != after[name]]
    adapters = [n for n in moved if "lora_" in n]
    base = [n for n in moved if "lora_" not in n]
    problems = [f"{len(base)} base weights changed (first: {base[0]})"] if base else []
    if not adapters:
        problems.append("no adapter weight changed")
    if trainable != planned_adapters:
        problems.append(f"{trainable} trainable parameters, the plan counts {planned_adapters}")
    del model
    return {
        "rank": run.work.lora_rank,
        "trainable_params": trainable,
        "tokens_per_s": round(_tokens_per_step(run.work) / seconds, 1),
        "step_s": round(seconds, 4),
        "peak_bytes": peak,
        "planned_adapter_params": planned_adapters,
        "planned_states_bytes": est.states,
        "planned_training_bytes": est.states + est.activations,
        "measured_over_planned": None if peak is None else round(peak / (est.states + est.activations), 3),
        "adapter_tensors_changed": len(adapters),
        "base_tensors_changed": len(base),
        "loss": metrics["loss"],
        "problems": problems,
    }


def check_fsdp(run: ShapeRun) -> dict:
    """FSDP2 (zero3) on one rank: a GRPO step, a gathered checkpoint, reloaded with equal weights and log-probs."""
    run.free_model()
    backend = init_process_group(run.device)
    model = sharding.shard_model(load(run.folder, run.work, run.device), "zero3", run.device)
    metrics, seconds, peak, _ = _learner_steps(model, run, lr=LR)
    batch, _ = grpo_batch(model, run.work, seed=1)
    before = compute_logprobs(model, batch, run.work.micro_rows)
    checkpoint = run.folder.parent / f"{run.shape}-fsdp-checkpoint"
    t0 = time.perf_counter()
    Learner(model, None).save(checkpoint, with_optimizer=False)  # gathered to this rank, as rank 0 of many
    save_s = time.perf_counter() - t0
    run.tokenizer.save_pretrained(checkpoint)
    full = sharding.full_state_dict(model)
    del model
    reloaded = load(checkpoint, run.work, run.device)
    after = compute_logprobs(reloaded, batch, run.work.micro_rows)
    own = reloaded.state_dict()
    weight_diff = max(float((full[k].float() - own[k].float().cpu()).abs().max()) for k in full)
    logprob_diff = float((before - after).abs().max())
    del reloaded, full, own
    problems = [] if weight_diff == 0 else [f"reloaded weights differ by up to {weight_diff:g}"]
    # the same weights through the same kernels; bf16 leaves room for a different kernel choice
    if logprob_diff > (1e-4 if run.work.dtype == "float32" else 2e-2):
        problems.append(f"log-probs before / after the reload differ by up to {logprob_diff:g}")
    return {
        "backend": backend,
        "strategy": "zero3",
        "tokens_per_s": round(_tokens_per_step(run.work) / seconds, 1),
        "step_s": round(seconds, 4),
        "peak_bytes": peak,
        "save_s": round(save_s, 2),
        "grad_norm": metrics["grad_norm"],
        "weights_max_abs_diff": weight_diff,
        "logprobs_max_abs_diff": logprob_diff,
        "reload_equal": not problems,
        "problems": problems,
    }


CHECKS = {
    "build": check_build,
    "generation": check_generation,
    "learner": check_learner,
    "memory": check_memory,
    "lora": check_lora,
    "fsdp": check_fsdp,
}
