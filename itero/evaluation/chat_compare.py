"""``itero compare RUN... --x kl``: a chat metric against KL(policy || base), one curve per run (the samplers paper's picture).

A RUN is a folder holding ``itero eval-chat`` results: its own ``chat_eval.json`` and/or any below it
(e.g. RUN/chat/iter_4/chat_eval.json, one per checkpoint evaluated). Every result needs ``--base``'s
KL; the points of a run are drawn in order of KL, with their standard errors as error bars.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from itero.tracking.report import save_figure
from itero.tracking.rundir import RunDirError, atomic_write_text

DEFAULT_METRIC = "chat/mean_reward"

Point = tuple[str, float, float, float, float]  # (label, kl, kl stderr, value, value stderr)


def chat_points(run: Path, metric: str) -> list[Point]:
    files = sorted(run.rglob("chat_eval.json"))
    if not files:
        raise RunDirError(f"{run} has no chat_eval.json: run `itero eval-chat ... --base BASE --out {run}/...` first")
    points = []
    for path in files:
        metrics = json.loads(path.read_text(encoding="utf-8")).get("metrics", {})
        if "chat/kl" not in metrics:
            raise RunDirError(f"{path} has no KL: rerun itero eval-chat with --base")
        if metric not in metrics:
            raise RunDirError(f"{path} has no {metric!r}; it has: {', '.join(sorted(metrics))}")
        label = str(path.parent.relative_to(run)) if path.parent != run else run.name
        points.append(
            (
                label,
                metrics["chat/kl"],
                metrics["chat/kl_stderr"],
                metrics[metric],
                metrics.get(f"{metric}_stderr", 0.0),
            )
        )
    return sorted(points, key=lambda p: p[1])


def chat_table(curves: dict[str, list[Point]], metric: str) -> str:
    lines = [f"| run | point | KL (nats) | {metric} |", "|---|---|---:|---:|"]
    for name, points in curves.items():
        for label, kl, kl_se, value, value_se in points:
            lines.append(f"| {name} | {label} | {kl:.4g} ± {kl_se:.2g} | {value:.4g} ± {value_se:.2g} |")
    return "\n".join(lines)


def plot_chat(curves: dict[str, list[Point]], metric: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (name, points) in enumerate(curves.items()):
        _, kl, kl_se, value, value_se = zip(*points)
        ax.errorbar(kl, value, xerr=kl_se, yerr=value_se, fmt="osD^v"[i % 5] + "-", label=name, markersize=5, capsize=2)
    ax.set(xlabel="KL(policy ‖ base), nats per response", ylabel=metric, title=f"{metric} against KL")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def compare_chat(
    run_dirs: Sequence[str | Path],
    metric: str,
    out: str | Path | None = None,
    budget: float | None = None,
    until: int | None = None,
) -> tuple[Path, str]:
    """Writes OUT.png and OUT.md; returns (png, table). ``metric`` eval/greedy_accuracy (compare's default) means chat/mean_reward."""
    if budget is not None or until is not None:
        raise ValueError("--budget and --until apply to runs' iterations, not to --x kl")
    metric = DEFAULT_METRIC if metric == "eval/greedy_accuracy" else metric
    curves: dict[str, list[Point]] = {}
    for run in map(Path, run_dirs):
        curves[run.name if run.name not in curves else str(run)] = chat_points(run, metric)
    table = chat_table(curves, metric)
    stem = Path(out) if out else Path("compare")
    png = plot_chat(curves, metric, stem.with_suffix(".png"))
    atomic_write_text(stem.with_suffix(".md"), f"# {metric} against KL\n\n![{metric}]({png.name})\n\n{table}\n")
    return png, table
