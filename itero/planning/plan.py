"""The stage plan of a config: what one iteration generates and trains, and totals over the run.

Counts follow the loop (itero/loop.py) and the learner: prompts_per_iteration prompts, n samples
each; training units are pairs for a pairwise algorithm (``rows_per_unit == 2``), kept samples for
RAFT, samples otherwise; optimizer steps = epochs × ceil(units / training.batch_size). Token counts
and units are upper bounds: responses stop early, tied prompts give no pair, RAFT keeps only the
correct samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class IterationPlan:
    prompts: int
    samples_per_prompt: int
    samples: int  # prompts × n
    max_new_tokens: int
    tokens_to_generate: int  # ≤ samples × max_new_tokens
    units: int  # ≤ this many training examples
    unit_name: str
    epochs: int
    batch_size: int  # units per optimizer step, over all GPUs
    steps: int  # epochs × ceil(units / batch_size)


@dataclass(frozen=True)
class StagePlan:
    iteration: IterationPlan
    iterations: int
    sft_steps: int  # 0 when the warm-up is off
    sft_examples: int
    units_per_gpu_per_step: int  # batch_size / num_processes
    micro_batches_per_step: int  # per GPU: gradient accumulation
    micro_batch_size: int
    prompt_pool: int | None = None  # training prompts available, when the task was read

    @property
    def total_prompts(self) -> int:
        return self.iterations * self.iteration.prompts

    @property
    def total_samples(self) -> int:
        return self.iterations * self.iteration.samples

    @property
    def total_tokens(self) -> int:
        return self.iterations * self.iteration.tokens_to_generate

    @property
    def total_steps(self) -> int:
        return self.iterations * self.iteration.steps


def training_units(cfg, prompts: int) -> tuple[int, str]:
    """(at most this many training units per iteration, what a unit is) for cfg.algorithm."""
    from itero.algorithms import ALGORITHMS

    a, n = cfg.algorithm, cfg.generation.n_samples_per_prompt
    module = ALGORITHMS[a.name]
    if hasattr(module, "max_units"):  # an algorithm that selects (pairs, kept samples) says how many at most
        return module.max_units(a, prompts, n)
    return prompts * n, "samples"


def stage_plan(cfg, prompt_pool: int | None = None) -> StagePlan:
    g, t, d = cfg.generation, cfg.training, cfg.distributed
    prompts = cfg.loop.prompts_per_iteration
    samples = prompts * g.n_samples_per_prompt
    units, unit_name = training_units(cfg, prompts)
    per_gpu = t.batch_size // d.num_processes
    it = IterationPlan(
        prompts=prompts,
        samples_per_prompt=g.n_samples_per_prompt,
        samples=samples,
        max_new_tokens=g.max_new_tokens,
        tokens_to_generate=samples * g.max_new_tokens,
        units=units,
        unit_name=unit_name,
        epochs=t.epochs,
        batch_size=t.batch_size,
        steps=t.epochs * math.ceil(units / t.batch_size),
    )
    sft_steps = cfg.sft.steps if cfg.sft.enabled else 0
    return StagePlan(
        iteration=it,
        iterations=cfg.loop.iterations,
        sft_steps=sft_steps,
        sft_examples=sft_steps * cfg.sft.batch_size,
        units_per_gpu_per_step=per_gpu,
        micro_batches_per_step=math.ceil(per_gpu / t.micro_batch_size),
        micro_batch_size=t.micro_batch_size,
        prompt_pool=prompt_pool,
    )


def _row(label: str, value, indent: int = 4) -> str:
    text = f"{value:,}" if isinstance(value, int) else str(value)
    return f"{' ' * indent}{label:<{62 - indent}} {text:>14}"


def format_plan(plan: StagePlan, cfg) -> str:
    it = plan.iteration
    lines = [
        "stage plan (upper bounds: responses stop early, tied prompts give no pair, RAFT keeps the correct only)",
        _row(f"sft warm-up ({plan.sft_steps} steps x {cfg.sft.batch_size} examples)", plan.sft_examples, 2)
        if plan.sft_steps
        else _row("sft warm-up", "off", 2),
        "  per iteration",
        _row("prompts", it.prompts),
        _row(f"samples ({it.prompts:,} prompts x {it.samples_per_prompt})", it.samples),
        _row(f"tokens to generate ({it.samples:,} x {it.max_new_tokens} new tokens)", it.tokens_to_generate),
        _row(f"training {it.unit_name}", it.units),
        _row(f"optimizer steps ({it.epochs} epochs x ceil({it.units:,} / {it.batch_size}))", it.steps),
        (
            f"    per GPU per step: {plan.units_per_gpu_per_step} {it.unit_name} = "
            f"{plan.micro_batches_per_step} micro-batches of {plan.micro_batch_size}"
        ),
        f"  over {plan.iterations} iterations",
        _row("prompts", plan.total_prompts),
        _row("samples", plan.total_samples),
        _row("tokens to generate", plan.total_tokens),
        _row(
            "optimizer steps" + (" (with the sft warm-up)" if plan.sft_steps else ""), plan.total_steps + plan.sft_steps
        ),
    ]
    from itero.algorithms import ALGORITHMS

    algo = ALGORITHMS[cfg.algorithm.name]
    if "rollout" in algo.models_needed(cfg.algorithm):
        lines.append("  note: VinePPO adds K Monte-Carlo continuations per reasoning step, not counted above")
    warmup = algo.schedule(cfg.algorithm).actor_frozen_iterations
    if warmup:
        lines.append(
            f"  note: iterations 1-{warmup} train the critic only (algorithm.critic_warmup): the policy takes "
            f"{(plan.iterations - warmup) * it.steps:,} of the optimizer steps above"
        )
    spec = algo.schedule(cfg.algorithm).dynamic_sampling
    if spec is not None:
        rounds = f"at most {spec.max_rounds}" if spec.max_rounds else "no cap on the"
        lines.append(
            f"  note: dynamic sampling generates rounds of {spec.prompts_per_round or it.prompts:,} prompts until "
            f"{it.prompts:,} groups of mixed correctness are kept ({rounds} rounds): the generation above is one round"
        )
    lines += [f"  note: {n}" for n in _pool_notes(plan, cfg)]
    return "\n".join(lines)


def _pool_notes(plan: StagePlan, cfg) -> list[str]:
    pool, it = plan.prompt_pool, plan.iteration
    if pool is None:
        return []
    notes = [f"the task has {pool:,} training prompts"]
    if it.prompts > pool:
        notes.append(f"loop.prompts_per_iteration={it.prompts:,} > {pool:,}: some prompts appear twice in an iteration")
    elif not cfg.loop.same_prompts_every_iteration and plan.total_prompts > pool:
        notes.append(
            f"{plan.total_prompts:,} prompts over the run: the pool is reused after {pool // it.prompts} iterations"
        )
    return notes
