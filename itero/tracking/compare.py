"""`itero compare RUN...`: several runs side by side, one curve per run, and a table of start / best / last.

For comparing algorithms, samplers or losses on one task: every run's metrics.jsonl is read as it
is, runs of different lengths are fine, and a run that has not finished shows what it has so far.
``x="seconds"`` or ``"tokens"`` puts the runs on a common budget instead of the iteration: the running
sum of the generate/score/prepare/train wall-clock (``time.json``), or of the tokens generated
(samples plus VinePPO's Monte-Carlo continuations); the table then adds the value each run had
reached within a common budget: the smallest run's total, or the one given (``budget``).
``retest/accuracy`` and ``retest/difference`` come from each run's ``retest.json`` (``itero retest``),
so the curves can be the accuracy on the same 2000 fresh problems instead of the 200 test problems.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from itero.tracking.metrics import read_metrics
from itero.tracking.report import save_figure
from itero.tracking.rundir import RunDirError, atomic_write_text

DEFAULT_METRIC = "eval/greedy_accuracy"
X_AXES = ("iteration", "seconds", "tokens")
_TIMED = ("time/generate", "time/score", "time/prepare", "time/train")


def budget_used(rows: list[dict], x: str) -> dict[int, float]:
    """Iteration → running sum of the budget ``x`` spent up to and including it (0 at the start)."""
    total, out = 0.0, {}
    for r in rows:
        if int(r["iteration"]) == 0:  # the start: the SFT warm-up's own time (sft/time.json) is not RL's budget
            out[0] = 0.0
            continue
        if x == "seconds":
            total += sum(r.get(key, 0.0) for key in _TIMED)
        else:
            total += r.get("generate/tokens", 0) + r.get("prepare/mc_tokens", 0)
        out[int(r["iteration"])] = total
    return out


def with_retest(run: Path, rows: list[dict]) -> tuple[list[dict], str]:
    """``rows`` with ``retest/accuracy`` and ``retest/difference`` at the iterations ``itero retest``
    evaluated (the start = iteration 0), and which problems it used."""
    path = run / "retest.json"
    if not path.exists():
        raise RunDirError(f"{run} has no retest.json: run `itero retest {run}` first")
    data = json.loads(path.read_text())
    by_iteration = {
        0 if r["checkpoint"] == "start" else int(r["checkpoint"].removeprefix("iter_")): r for r in data["rows"]
    }
    merged = []
    for r in rows:
        found = by_iteration.get(int(r["iteration"]))
        merged.append(
            {**r, "retest/accuracy": found["accuracy"], "retest/difference": found["difference"]} if found else r
        )
    return merged, data["problems"]


def load_runs(
    run_dirs: Sequence[str | Path],
    metric: str,
    x: str = "iteration",
    until: int | None = None,
) -> dict[str, list[tuple[float, float]]]:
    """{run name: [(x, value), ...]} over iterations 0..``until`` (all by default); a run without that
    metric is an error naming what it has."""
    if x not in X_AXES:
        raise ValueError(f"unknown x axis {x!r}; choose one of {', '.join(X_AXES)}")
    curves: dict[str, list[tuple[float, float]]] = {}
    retested: dict[str, str] = {}  # problems → first run retested on them
    for run in map(Path, run_dirs):
        if not (run / "metrics.jsonl").exists():
            raise RunDirError(f"{run} has no metrics.jsonl; is it a run directory (itero train ...)?")
        rows = [r for r in read_metrics(run) if until is None or int(r["iteration"]) <= until]
        if metric.startswith("retest/"):
            rows, problems = with_retest(run, rows)
            retested.setdefault(problems, str(run))
            if len(retested) > 1:  # accuracies on different problem sets are not comparable
                raise RunDirError(
                    f"the runs were retested on different problems: {retested}; retest them with the same --fresh"
                )
        at = budget_used(rows, x) if x != "iteration" else {int(r["iteration"]): int(r["iteration"]) for r in rows}
        points = [(at[int(r["iteration"])], float(r[metric])) for r in rows if metric in r]
        if not points:
            known = sorted({k for r in rows for k in r if k != "iteration"})
            raise RunDirError(f"{run} has no {metric!r}; it has: {', '.join(known)}")
        name = run.name if run.name not in curves else str(run)
        curves[name] = points
    return curves


def compare_table(
    curves: dict[str, list[tuple[float, float]]],
    metric: str,
    x: str = "iteration",
    budget: float | None = None,
) -> str:
    """Markdown: per run the value at the start, the best (and where), the last, and with a budget
    axis the value reached within ``budget`` (default: the smallest run's total), the last point at or
    below it; a run that stopped short of it shows its last value, marked with where it stopped."""
    pct = "accuracy" in metric or metric.split("/")[-1].startswith(("pass@", "mean_accuracy", "maj@"))
    fmt = (lambda v: f"{100 * v:.1f}%") if pct else (lambda v: f"{v:.4g}")
    where = (lambda k: f"{int(k)}") if x == "iteration" else (lambda k: f"{k:.4g} {'s' if x == 'seconds' else 'tok'}")
    if x == "iteration":
        budget = None
    elif budget is None:
        budget = min(pts[-1][0] for pts in curves.values())
    head = "| run | start | best (at) | last (at) | last − start |" + (
        f" within {where(budget)} |" if budget is not None else ""
    )
    lines = [head, "|---|---:|---:|---:|---:|" + ("---:|" if budget is not None else "")]
    for name, pts in curves.items():
        start = next((v for k, v in pts if k == 0), None)
        best_k, best = max(pts, key=lambda p: (p[1], -p[0]))
        last_k, last = pts[-1]
        gain = "" if start is None else (f"{100 * (last - start):+.1f}" if pct else f"{last - start:+.4g}")
        row = f"| {name} | {'' if start is None else fmt(start)} | {fmt(best)} ({where(best_k)}) | {fmt(last)} ({where(last_k)}) | {gain} |"
        if budget is not None:
            short = f" (stopped at {where(last_k)})" if last_k < budget else ""
            row += f" {fmt([v for k, v in pts if k <= budget][-1])}{short} |"
        lines.append(row)
    return "\n".join(lines)


def plot_curves(curves: dict[str, list[tuple[float, float]]], metric: str, path: Path, x: str = "iteration") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5) if len(curves) <= 10 else (9, 5))
    scale = 100 if "accuracy" in metric or "pass@" in metric else 1
    # past matplotlib's 10 default colours, curves would share them: 20 colours and 5 markers instead
    colors = plt.get_cmap("tab10" if len(curves) <= 10 else "tab20").colors
    for i, (name, pts) in enumerate(curves.items()):
        ax.plot(
            [k for k, _ in pts],
            [scale * v for _, v in pts],
            "osD^v"[i % 5] + "-",
            color=colors[i % len(colors)],
            label=name,
            markersize=5,
        )
    xlabel = {
        "iteration": "iteration (0 = start)",
        "seconds": "wall-clock seconds (generate + score + prepare + train)",
        "tokens": "tokens generated (samples + MC continuations)",
    }[x]
    ax.set(xlabel=xlabel, ylabel=metric + (" (%)" if scale == 100 else ""), title=metric)
    ax.grid(alpha=0.3)
    if x == "iteration":
        ax.xaxis.get_major_locator().set_params(integer=True)
    if len(curves) <= 10:
        ax.legend(fontsize=8)
    else:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_figure(fig, path)


def compare(
    run_dirs: Sequence[str | Path],
    metric: str = DEFAULT_METRIC,
    out: str | Path | None = None,
    x: str = "iteration",
    budget: float | None = None,
    until: int | None = None,
) -> tuple[Path, str]:
    """Writes OUT.png and OUT.md (default: compare.png / compare.md in the current folder); returns (png, table)."""
    if x == "kl":  # points of itero eval-chat (chat_eval.json), not rows of metrics.jsonl
        from itero.evaluation.chat_compare import compare_chat

        return compare_chat(run_dirs, metric, out, budget, until)
    if budget is not None and x == "iteration":
        raise ValueError("--budget needs --x seconds or --x tokens (a budget in seconds or tokens)")
    curves = load_runs(run_dirs, metric, x, until)
    table = compare_table(curves, metric, x, budget)
    stem = Path(out) if out else Path("compare")
    png = plot_curves(curves, metric, stem.with_suffix(".png"), x)
    atomic_write_text(stem.with_suffix(".md"), f"# {metric}\n\n![{metric}]({png.name})\n\n{table}\n")
    return png, table
