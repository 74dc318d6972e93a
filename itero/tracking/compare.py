"""`itero compare RUN...`: several runs side by side, one curve per run, and a table of start / best / last.

For comparing algorithms, samplers or losses on one task: every run's metrics.jsonl is read as it
is, runs of different lengths are fine, and a run that has not finished shows what it has so far.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from itero.tracking.metrics import read_metrics
from itero.tracking.report import save_figure
from itero.tracking.rundir import RunDirError, atomic_write_text

DEFAULT_METRIC = "eval/greedy_accuracy"


def load_runs(run_dirs: Sequence[str | Path], metric: str) -> dict[str, list[tuple[int, float]]]:
    """{run name: [(iteration, value), ...]}; a run without that metric is an error naming what it has."""
    curves: dict[str, list[tuple[int, float]]] = {}
    for run in map(Path, run_dirs):
        if not (run / "metrics.jsonl").exists():
            raise RunDirError(f"{run} has no metrics.jsonl; is it a run directory (itero train ...)?")
        rows = read_metrics(run)
        points = [(int(r["iteration"]), float(r[metric])) for r in rows if metric in r]
        if not points:
            known = sorted({k for r in rows for k in r if k != "iteration"})
            raise RunDirError(f"{run} has no {metric!r}; it has: {', '.join(known)}")
        name = run.name if run.name not in curves else str(run)
        curves[name] = points
    return curves


def compare_table(curves: dict[str, list[tuple[int, float]]], metric: str) -> str:
    """Markdown: per run the value at iteration 0 (start), the best (and where), and the last."""
    pct = "accuracy" in metric or metric.split("/")[-1].startswith(("pass@", "mean_accuracy", "maj@"))
    fmt = (lambda v: f"{100 * v:.1f}%") if pct else (lambda v: f"{v:.4g}")
    lines = [f"| run | start | best (iteration) | last (iteration) | last − start |", "|---|---:|---:|---:|---:|"]
    for name, pts in curves.items():
        start = next((v for k, v in pts if k == 0), None)
        best_k, best = max(pts, key=lambda p: (p[1], -p[0]))
        last_k, last = pts[-1]
        gain = "" if start is None else (f"{100 * (last - start):+.1f}" if pct else f"{last - start:+.4g}")
        lines.append(f"| {name} | {'' if start is None else fmt(start)} | {fmt(best)} ({best_k}) | {fmt(last)} ({last_k}) | {gain} |")
    return "\n".join(lines)


def plot_curves(curves: dict[str, list[tuple[int, float]]], metric: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    scale = 100 if "accuracy" in metric or "pass@" in metric else 1
    for name, pts in curves.items():
        ax.plot([k for k, _ in pts], [scale * v for _, v in pts], "o-", label=name)
    ax.set(xlabel="iteration (0 = start)", ylabel=metric + (" (%)" if scale == 100 else ""), title=metric)
    ax.grid(alpha=0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def compare(run_dirs: Sequence[str | Path], metric: str = DEFAULT_METRIC, out: Optional[str | Path] = None) -> tuple[Path, str]:
    """Writes OUT.png and OUT.md (default: compare.png / compare.md in the current folder); returns (png, table)."""
    curves = load_runs(run_dirs, metric)
    table = compare_table(curves, metric)
    stem = Path(out) if out else Path("compare")
    png = plot_curves(curves, metric, stem.with_suffix(".png"))
    atomic_write_text(stem.with_suffix(".md"), f"# {metric}\n\n![{metric}]({png.name})\n\n{table}\n")
    return png, table
