"""The learner's speed on a real train stage, against the machine's plain fp32 matmul peak.

Replays optimizer steps of one iteration of a run (its ``prepared.pt``, its config's algorithm and
training section, the model the iteration started from) and reports tokens/s, optimizer steps/s and
model FLOP/s as a fraction of what ``torch.mm`` reaches on the same cores for the model's own matmul
shapes. ``--profile`` adds torch.profiler's top operators by self CPU time.

    python benchmarks/bench_learner.py runs/quickstart --iteration 1 --steps 16 --threads 2
    python benchmarks/bench_learner.py runs/grpo --iteration 2 --steps 8 --profile

Model FLOPs per trained token: 6 × (linear weights, LM head included) + 12 × layers × hidden × the
mean context (causal attention's QKᵀ and AV, forward and backward), counted over the rows' real
tokens and, separately, over the padded tensors the forwards actually run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from itero.algorithms import ALGORITHMS
from itero.config import load_config
from itero.models.loading import load_model
from itero.runtime import optim_config
from itero.training.learner import Learner


def matmul_peak(tokens: int, hidden: int, intermediate: int, repeats: int = 20) -> float:
    """FLOP/s of the model's largest linear (tokens × hidden @ hidden × intermediate), fp32, best of runs."""
    a, b = torch.randn(tokens, hidden), torch.randn(hidden, intermediate)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * tokens * hidden * intermediate / best


def flops_per_token(model, context: float) -> float:
    c = model.config
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    return 6 * linear + 12 * c.num_hidden_layers * c.hidden_size * context


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--iteration", type=int, default=1)
    p.add_argument("--steps", type=int, default=16, help="optimizer steps to time (after one warm-up step)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--profile", action="store_true", help="print torch.profiler's top operators")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    cfg = load_config(str(args.run_dir / "config.yaml"), [])
    d = args.run_dir / f"iter_{args.iteration}"
    start = args.run_dir / (f"iter_{args.iteration - 1}/checkpoint" if args.iteration > 1 else "sft/checkpoint")
    model = load_model(str(start), dtype=cfg.model.dtype)
    batch = torch.load(d / "prepared.pt", weights_only=False)
    algo, a = ALGORITHMS[cfg.algorithm.name], cfg.algorithm
    learner = Learner(model, optim_config(cfg.training))
    units = batch.batch_size // algo.rows_per_unit
    size = cfg.training.batch_size
    steps = [list(range(s, min(s + size, units))) for s in range(0, units, size)]
    steps = (steps * (args.steps // len(steps) + 2))[: args.steps + 1]
    learner.start_phase(len(steps))
    loss_fn = lambda mb, lp: algo.loss(mb, lp, a)

    def rows_of(step):
        return [u * algo.rows_per_unit + j for u in step for j in range(algo.rows_per_unit)]

    real = sum(
        int(batch.select(rows_of(s)).response_mask.sum() + batch.select(rows_of(s)).prompt_mask.sum())
        for s in steps[1:]
    )
    padded = 0
    for s in steps[1:]:
        for m in range(0, len(s), cfg.training.micro_batch_size):
            t = batch.select(rows_of(s[m : m + cfg.training.micro_batch_size])).trimmed()
            padded += t.prompt_ids.numel() + t.response_ids.numel()
    learner.step(batch, steps[0], units, loss_fn, algo.rows_per_unit)  # warm-up: allocator, first-call costs
    t0 = time.perf_counter()
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for s in steps[1:]:
                learner.step(batch, s, units, loss_fn, algo.rows_per_unit)
    else:
        for s in steps[1:]:
            learner.step(batch, s, units, loss_fn, algo.rows_per_unit)
    seconds = time.perf_counter() - t0

    c = model.config
    context = (batch.prompt_mask.sum(1) + batch.response_mask.sum(1)).float().mean().item() / 2
    per_token = flops_per_token(model, context)
    tokens_per_micro = padded / max(1, sum(-(-len(s) // cfg.training.micro_batch_size) for s in steps[1:]))
    peak = matmul_peak(int(tokens_per_micro), c.hidden_size, c.intermediate_size)
    print(
        f"run {args.run_dir} iteration {args.iteration}: {cfg.algorithm.name}, {args.steps} steps of {size} units, "
        f"{args.threads} thread(s), torch {torch.__version__}"
    )
    print(
        f"  {seconds:.2f} s: {args.steps / seconds:.2f} steps/s, {real / seconds:,.0f} real tokens/s "
        f"({padded / real:.2f}x padded)"
    )
    print(
        f"  model FLOP/s {real * per_token / seconds / 1e9:.1f} G on real tokens, "
        f"{padded * per_token / seconds / 1e9:.1f} G on padded tensors; fp32 matmul peak of the model's "
        f"shapes {peak / 1e9:.1f} G -> {real * per_token / seconds / peak:.0%} / {padded * per_token / seconds / peak:.0%}"
    )
    if args.profile:
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


if __name__ == "__main__":
    main()
