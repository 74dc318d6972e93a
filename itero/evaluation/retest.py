"""Is a run's gain real? Its checkpoints re-evaluated greedily on many problems, paired with the start.

The loop's held-out accuracy is on ``task.num_test`` problems (200 by default), where one run's
greedy accuracy moves by several points from which problems happen to flip. ``itero retest``
decodes every checkpoint on the same, larger problem set (for the arithmetic task: problems the run
never trained on and that are not in its test split) and compares each with the start problem by
problem: the accuracy difference with its paired standard error, the problems gained and lost, and
McNemar's exact test. It measures evaluation noise only; a second training seed measures the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb, sqrt
from pathlib import Path

from itero.evaluation.task_eval import greedy_verdicts
from itero.tasks import build_task, fresh_problems
from itero.tracking.rundir import atomic_write_json


def mcnemar_p(gained: int, lost: int) -> float:
    """Exact two-sided McNemar p-value: under "no change" each discordant problem is a fair coin."""
    n, low = gained + lost, min(gained, lost)
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(low + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_difference(start: Sequence[bool], after: Sequence[bool]) -> dict:
    """Accuracy of ``after`` minus that of ``start`` on the same problems, with the standard error of
    the mean per-problem difference (d_i ∈ {−1, 0, 1}), the problems gained / lost and McNemar's p."""
    if len(start) != len(after) or len(start) < 2:
        raise ValueError(
            f"a paired difference needs two verdicts per problem on >= 2 problems; got {len(start)} and {len(after)}"
        )
    n = len(start)
    d = [int(a) - int(s) for s, a in zip(start, after)]
    mean = sum(d) / n
    se = sqrt(sum((x - mean) ** 2 for x in d) / (n - 1) / n)
    gained, lost = d.count(1), d.count(-1)
    return {
        "problems": n,
        "accuracy": sum(after) / n,
        "start_accuracy": sum(start) / n,
        "difference": mean,
        "standard_error": se,
        "gained": gained,
        "lost": lost,
        "p_value": mcnemar_p(gained, lost),
    }


def checkpoints(run: Path, sft_enabled: bool, iterations: Sequence[int] | None = None) -> list[tuple[str, Path | None]]:
    """(label, checkpoint) of the start (the SFT model, or None = the base model) and of the iterations
    asked for (default: every one with a checkpoint), in order."""
    found = sorted(int(p.parent.name.removeprefix("iter_")) for p in run.glob("iter_*/checkpoint"))
    if iterations is not None:
        missing = sorted(set(iterations) - set(found))
        if missing:
            raise FileNotFoundError(f"{run}: no checkpoint for iteration(s) {missing}; found {found or 'none'}")
        found = sorted(set(iterations))
    start = run / "sft" / "checkpoint" if sft_enabled else None
    if start is not None and not start.exists():
        raise FileNotFoundError(f"{run}: the start checkpoint {start} is missing")
    return [("start", start)] + [(f"iter_{k}", run / f"iter_{k}" / "checkpoint") for k in found]


def retest_run(
    run_dir: str | Path, fresh: int = 2000, iterations: Sequence[int] | None = None, show_progress: bool = True
) -> list[dict]:
    """Rows of ``paired_difference`` (plus ``checkpoint``) for every checkpoint; writes RUN/retest.json."""
    from itero.config import load_config
    from itero.runtime import build_runtime
    from itero.tracking import progress

    run = Path(run_dir)
    if not (run / "config.yaml").exists():
        raise FileNotFoundError(f"{run} is not a run directory (no config.yaml)")
    cfg = load_config(run / "config.yaml")
    task = build_task(cfg.task)
    problems = fresh_problems(cfg.task, fresh) if fresh > 0 else task.test
    targets = checkpoints(run, cfg.sft.enabled, iterations)
    rt = build_runtime(cfg, run, task)
    max_new_tokens = cfg.eval.max_new_tokens or cfg.generation.max_new_tokens
    verdicts: dict[str, list[bool]] = {}
    for label, checkpoint in targets:
        rt.models.ensure_policy(checkpoint)
        with progress.stage(
            f"[{run.name}] {label}: greedy on {len(problems)} problems", len(problems), show_progress
        ) as advance:
            verdicts[label] = greedy_verdicts(
                rt.generator, rt.encode, task, problems, rt.reward, max_new_tokens, advance
            )
    rows = [{"checkpoint": label, **paired_difference(verdicts["start"], v)} for label, v in verdicts.items()]
    source = f"{fresh} fresh problems" if fresh > 0 else f"the test split ({len(problems)} problems)"
    atomic_write_json(run / "retest.json", {"problems": source, "rows": rows})
    return rows


def format_table(run_name: str, rows: list[dict]) -> str:
    lines = [
        f"{run_name}: greedy accuracy on {rows[0]['problems']} problems, paired with the start",
        "| checkpoint | accuracy | − start | 95 % interval | gained / lost | McNemar p |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lo, hi = r["difference"] - 1.96 * r["standard_error"], r["difference"] + 1.96 * r["standard_error"]
        lines.append(
            f"| {r['checkpoint']} | {r['accuracy']:.1%} | {r['difference'] * 100:+.1f} | "
            f"[{lo * 100:+.1f}, {hi * 100:+.1f}] | {r['gained']} / {r['lost']} | {r['p_value']:.2g} |"
        )
    return "\n".join(lines)
