"""`itero report`: a PNG of accuracy and reward per iteration and a short markdown summary."""

from __future__ import annotations

from pathlib import Path

from itero.tracking.metrics import read_metrics
from itero.tracking.rundir import atomic_write_text


def accuracy_table(rows: list[dict]) -> str:
    """Markdown table: one line per evaluated iteration (iteration 0 is the SFT start)."""
    evals = [r for r in rows if "eval/greedy_accuracy" in r]
    k_keys = sorted({key for r in evals for key in r if key.startswith(("eval/pass@", "eval/mean_accuracy@"))})
    head = ["iteration", "greedy acc", *[key.split("/")[1] for key in k_keys], "sample reward", "pairs / kept"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for r in evals:
        kept = r.get("prepare/pairs", r.get("prepare/kept", ""))
        reward = r.get("score/reward_mean")
        cells = [
            "SFT" if r["iteration"] == 0 else str(r["iteration"]),
            f"{r['eval/greedy_accuracy']:.1%}",
            *[f"{r[key]:.1%}" if key in r else "" for key in k_keys],
            "" if reward is None else f"{reward:+.3f}",
            str(kept),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evals = [r for r in rows if "eval/greedy_accuracy" in r]
    bench_keys = sorted({k for r in rows for k in r if k.startswith("bench/") and k.endswith("/greedy_accuracy")})
    fig, axes = plt.subplots(1, 3 if bench_keys else 2, figsize=(16 if bench_keys else 11, 4))
    ax1, ax2 = axes[0], axes[1]
    xs = [r["iteration"] for r in evals]
    ax1.plot(xs, [100 * r["eval/greedy_accuracy"] for r in evals], "o-", label="greedy accuracy")
    for key in sorted({k for r in evals for k in r if k.startswith(("eval/pass@", "eval/mean_accuracy@"))}):
        ax1.plot(xs, [100 * r.get(key, float("nan")) for r in evals], "s--", alpha=0.7, label=key.split("/")[1])
    sft = next((r for r in evals if r["iteration"] == 0), None)
    if sft is not None:
        ax1.axhline(100 * sft["eval/greedy_accuracy"], color="gray", ls=":", label="SFT start (greedy)")
    ax1.set(xlabel="iteration", ylabel="test accuracy (%)", title="held-out accuracy")
    ax1.legend(fontsize=8)
    scored = [r for r in rows if "score/reward_mean" in r]
    ax2.plot(
        [r["iteration"] for r in scored],
        [r["score/reward_mean"] for r in scored],
        "o-",
        color="tab:green",
        label="mean reward of samples",
    )
    ax2.plot(
        [r["iteration"] for r in scored],
        [r["score/sample_accuracy"] for r in scored],
        "^--",
        color="tab:olive",
        label="sample accuracy",
    )
    ax2.set(xlabel="iteration", title="training samples")
    ax2.legend(fontsize=8)
    if bench_keys:
        ax3 = axes[2]
        for key in bench_keys:
            pts = [(r["iteration"], 100 * r[key]) for r in rows if key in r]
            ax3.plot(*zip(*pts), "o-" if "/average/" in key else ".--", label=key.split("/")[1])
        ax3.set(xlabel="iteration", ylabel="greedy accuracy (%)", title="benchmarks")
        ax3.legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title)
    return save_figure(fig, path)


def save_figure(fig, path: Path) -> Path:
    """Write a PNG atomically (a reader never sees half a file) and free the figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_report(run_dir: str | Path) -> tuple[Path, Path, str]:
    """Returns (png, markdown, accuracy table)."""
    run_dir = Path(run_dir)
    rows = read_metrics(run_dir)
    table = accuracy_table(rows)
    png = plot(rows, run_dir / "report.png", run_dir.name)
    md = run_dir / "report.md"
    atomic_write_text(md, f"# {run_dir.name}\n\n![accuracy]({png.name})\n\n{table}\n")
    return png, md, table
