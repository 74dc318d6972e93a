"""The loop's evaluation stages: held-out task accuracy after the warm-up and each iteration, and the
configured math benchmarks. Rank 0 evaluates; its results are files in the iteration's folder."""

from __future__ import annotations

from pathlib import Path

from itero import distributed
from itero.evaluation.task_eval import evaluate_task, greedy_verdicts
from itero.runtime import Runtime
from itero.tasks import fresh_problems
from itero.tracking import progress
from itero.tracking.rundir import atomic_write_json


def evaluate(rt: Runtime, d: Path, checkpoint: Path | None) -> None:
    if (d / "eval.json").exists() or not distributed.current().is_main:  # rank 0 evaluates; the rest go on
        return
    rt.models.ensure_policy(checkpoint)
    e = rt.cfg.eval
    problems = rt.task.test[: e.num_problems] if e.num_problems else rt.task.test
    max_new_tokens = e.max_new_tokens or rt.cfg.generation.max_new_tokens
    with progress.stage(
        f"[{d.name}] evaluate", len(problems) * 2 + e.fresh_problems, rt.cfg.logging.progress
    ) as advance:
        metrics = evaluate_task(
            rt.generator,
            rt.encode,
            rt.task,
            problems,
            rt.reward,
            k=e.k,
            temperature=e.temperature,
            max_new_tokens=max_new_tokens,
            seed=rt.cfg.loop.seed + 17,
            advance=advance,
        )
        if e.fresh_problems:
            fresh = fresh_problems(rt.cfg.task, e.fresh_problems)
            correct = greedy_verdicts(rt.generator, rt.encode, rt.task, fresh, rt.reward, max_new_tokens, advance)
            metrics["fresh_greedy_accuracy"] = sum(correct) / len(correct)
    atomic_write_json(d / "eval.json", metrics)
    fresh = f", on {e.fresh_problems} fresh problems {metrics['fresh_greedy_accuracy']:.1%}" if e.fresh_problems else ""
    progress.info(
        f"[{d.name}] greedy accuracy {metrics['greedy_accuracy']:.1%}{fresh}, pass@{e.k} {metrics[f'pass@{e.k}']:.1%}"
    )


def evaluate_on_benchmarks(rt: Runtime, d: Path, checkpoint: Path | None) -> None:
    """The configured math benchmarks; responses in ``d/eval/``, each benchmark resumable on its own."""
    if (d / "bench.json").exists() or not distributed.current().is_main:
        return
    from itero.evaluation.runner import evaluate_benchmarks

    rt.models.ensure_policy(checkpoint)
    metrics = evaluate_benchmarks(
        rt.generator,
        rt.tokenizer,
        rt.cfg.eval.benchmarks,
        rt.cfg.eval,
        d,
        max_new_tokens=rt.cfg.generation.max_new_tokens,
        seed=rt.cfg.loop.seed + 17,
        show_progress=rt.cfg.logging.progress,
    )
    atomic_write_json(d / "bench.json", {key.removeprefix("bench/"): v for key, v in metrics.items()})
