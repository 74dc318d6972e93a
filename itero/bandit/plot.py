"""The paper's figure (log-scale Param Diff against updates, a curve per sampler) and a CSV of every step."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on CPU boxes or CI
import matplotlib.pyplot as plt  # noqa: E402

from itero.bandit.simulate import Trajectory  # noqa: E402

CSV_COLUMNS = ("setting", "dtype", "sampler", "updates", "param_diff", "value", "value_diff")


def _replace_when_done(path: Path, write) -> Path:
    """Write to a temporary name and rename, so a killed run never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)
    return path


def write_csv(path: Path, setting: str, dtype: str, runs: dict[str, Trajectory]) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(CSV_COLUMNS)
            for name, run in runs.items():
                rows = zip(run.param_diff.tolist(), run.value.tolist(), run.value_diff.tolist())
                for t, (pd, v, vd) in enumerate(rows):
                    # repr keeps every digit, so the CSV can be compared across runs exactly
                    out.writerow((setting, dtype, name, t, repr(pd), repr(v), repr(vd)))

    return _replace_when_done(path, write)


def write_png(path: Path, title: str, runs: dict[str, Trajectory]) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=120)
    for name, run in runs.items():
        # a log axis cannot show an exact zero; those points are left as gaps
        y = [v if v > 0 else float("nan") for v in run.param_diff.tolist()]
        ax.plot(range(len(y)), y, label=name, lw=1.6)
    ax.set_yscale("log")
    ax.set_xlabel("# Updates: t")
    ax.set_ylabel("Param Diff")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    fig.tight_layout()

    def write(tmp: Path) -> None:
        fig.savefig(tmp, format="png")

    try:
        return _replace_when_done(path, write)
    finally:
        plt.close(fig)
