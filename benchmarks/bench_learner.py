"""The learner's speed on a real train stage, against the machine's plain fp32 matmul peak.

Replays optimizer steps of one iteration of a run (its ``prepared.pt``, its config's algorithm and
training section, the model the iteration started from) and reports tokens/s, optimizer steps/s and
model FLOP/s as a fraction of what ``torch.mm`` reaches on the same cores for the model's own matmul
shapes. ``--profile`` adds torch.profiler's top operators by self CPU time.

    python benchmarks/bench_learner.py runs/quickstart --iteration 1 --steps 16 --threads 2
    python benchmarks/bench_learner.py runs/grpo --iteration 2 --steps 8 --profile
    python benchmarks/bench_learner.py runs/grpo --max-tokens 0 1376 2752 --rounds 3 --mixed-lengths

``--precision fp32 bf16`` times the forward in float32 and under bfloat16 autocast (AMX or AVX-512 BF16
matmuls on CPUs that have them) the same way. ``--max-tokens`` times several ``training.max_tokens_per_micro_batch`` settings side by side (0: the
config's ``micro_batch_size`` rows), each on its own copy of the model, in alternating rounds so a
change in the machine's load falls on all of them. ``--mixed-lengths`` cuts every response at a
random length (seeded), as if the rows had stopped at EOS anywhere: the shapes a token budget is for.

Model FLOPs per trained token: 6 × (linear weights, LM head included) + 12 × layers × hidden × the
mean context (causal attention's QKᵀ and AV, forward and backward), counted over the rows' real
tokens and, separately, over the padded tensors the forwards actually run.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time
from pathlib import Path

import torch

from itero.algorithms import ALGORITHMS
from itero.batch import RolloutBatch
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


def mixed_lengths(batch: RolloutBatch, seed: int = 0) -> RolloutBatch:
    """Each response cut at a uniform length in [1, its own] (its per-token fields masked with it); the
    token weights keep their total, so the loss keeps its scale."""
    g = torch.Generator().manual_seed(seed)
    lengths = batch.response_mask.sum(-1)  # (B,)
    keep = (torch.rand(lengths.shape, generator=g) * lengths).long() + 1  # (B,) in [1, length]
    cut = batch.response_mask & (torch.arange(batch.response_mask.shape[1])[None, :] < keep[:, None])  # (B, R)
    out = {"response_mask": cut}
    for name in ("old_logprobs", "ref_logprobs", "sampler_logprobs", "advantages", "returns", "values"):
        if getattr(batch, name) is not None:
            out[name] = getattr(batch, name) * cut
    if batch.token_weights is not None:
        w = batch.token_weights * cut
        out["token_weights"] = w * batch.token_weights.sum() / w.sum().clamp(min=1e-12)
    return dataclasses.replace(batch, **out)


def padded_tokens(learner: Learner, batch: RolloutBatch, steps: list[list[int]], rows_per_unit: int) -> tuple[int, int]:
    """(B, P+R) sizes the forwards run on over ``steps``, and the number of micro-batches."""
    padded = count = 0
    for s in steps:
        for micro in learner.micro_batches(batch, s, rows_per_unit):
            t = batch.select([u * rows_per_unit + j for u in micro for j in range(rows_per_unit)]).trimmed()
            padded += t.prompt_ids.numel() + t.response_ids.numel()
            count += 1
    return padded, count


def report(args, cfg, model, batch, steps, learners, budgets, seconds, rows_per_unit: int) -> None:
    """One line of speed and one of FLOP/s per setting; steps[0] was the untimed warm-up."""
    timed = steps[1:]
    real = 0
    for s in timed:
        rows = batch.select([u * rows_per_unit + j for u in s for j in range(rows_per_unit)])
        real += int(rows.response_mask.sum() + rows.prompt_mask.sum())
    real *= args.rounds
    c = model.config
    context = (batch.prompt_mask.sum(1) + batch.response_mask.sum(1)).float().mean().item() / 2
    per_token = flops_per_token(model, context)
    print(
        f"run {args.run_dir} iteration {args.iteration}: {cfg.algorithm.name}, {args.steps} steps of "
        f"{cfg.training.batch_size} units x {args.rounds} round(s), {args.threads} thread(s), torch {torch.__version__}"
        + (", responses cut at random lengths" if args.mixed_lengths else "")
    )
    for (budget, precision), learner, secs in zip(budgets, learners, seconds):
        padded, count = padded_tokens(learner, batch, timed, rows_per_unit)
        peak = matmul_peak(int(padded / max(1, count)), c.hidden_size, c.intermediate_size)
        padded *= args.rounds
        name = f"max_tokens_per_micro_batch={budget}" if budget else f"micro_batch_size={cfg.training.micro_batch_size}"
        name += f", precision={precision}"
        print(
            f"  {name}: {count / len(timed):.1f} micro-batches/step, {secs:.2f} s: "
            f"{len(timed) * args.rounds / secs:.2f} steps/s, {real / secs:,.0f} real tokens/s ({padded / real:.2f}x padded)"
        )
        print(
            f"    model FLOP/s {real * per_token / secs / 1e9:.1f} G on real tokens, {padded * per_token / secs / 1e9:.1f} G "
            f"on padded tensors; fp32 matmul peak of the model's shapes {peak / 1e9:.1f} G -> "
            f"{real * per_token / secs / peak:.0%} / {padded * per_token / secs / peak:.0%}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--iteration", type=int, default=1)
    p.add_argument("--steps", type=int, default=16, help="optimizer steps to time (after one warm-up step)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--profile", action="store_true", help="print torch.profiler's top operators")
    p.add_argument("--max-tokens", type=int, nargs="+", help="max_tokens_per_micro_batch settings (0: rows)")
    p.add_argument("--rounds", type=int, default=1, help="alternating rounds of --steps per setting")
    p.add_argument("--mixed-lengths", action="store_true", help="cut each response at a random length")
    p.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], help="training.precision settings")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    cfg = load_config(str(args.run_dir / "config.yaml"), [])
    d = args.run_dir / f"iter_{args.iteration}"
    start = args.run_dir / (f"iter_{args.iteration - 1}/checkpoint" if args.iteration > 1 else "sft/checkpoint")
    model = load_model(str(start), dtype=cfg.model.dtype)
    batch = torch.load(d / "prepared.pt", weights_only=False)
    if args.mixed_lengths:
        batch = mixed_lengths(batch)
    algo, a = ALGORITHMS[cfg.algorithm.name], cfg.algorithm
    units = batch.batch_size // algo.rows_per_unit
    size = cfg.training.batch_size
    steps = [list(range(s, min(s + size, units))) for s in range(0, units, size)]
    steps = (steps * (args.steps // len(steps) + 2))[: args.steps + 1]
    loss_fn = lambda mb, lp: algo.loss(mb, lp, a)
    precisions = args.precision or [cfg.training.precision]
    budgets = [(b, p) for p in precisions for b in args.max_tokens or [cfg.training.max_tokens_per_micro_batch or 0]]
    learners = []
    for budget, precision in budgets:
        oc = dataclasses.replace(
            optim_config(cfg.training), max_tokens_per_micro_batch=budget or None, precision=precision
        )
        learner = Learner(copy.deepcopy(model), oc)
        learner.start_phase(len(steps) * args.rounds)
        learner.step(batch, steps[0], units, loss_fn, algo.rows_per_unit)  # warm-up: allocator, first-call costs
        learners.append(learner)

    seconds = [0.0] * len(budgets)
    prof = None
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        prof = profile(activities=[ProfilerActivity.CPU])
        prof.__enter__()
    for _ in range(args.rounds):
        for i, learner in enumerate(learners):
            t0 = time.perf_counter()
            for s in steps[1:]:
                learner.step(batch, s, units, loss_fn, algo.rows_per_unit)
            seconds[i] += time.perf_counter() - t0
    if prof is not None:
        prof.__exit__(None, None, None)

    report(args, cfg, model, batch, steps, learners, budgets, seconds, algo.rows_per_unit)
    if prof is not None:
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


if __name__ == "__main__":
    main()
