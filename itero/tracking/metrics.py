"""metrics.jsonl: one line per iteration, rebuilt from the stage outputs so it always matches them."""

from __future__ import annotations

import json
from pathlib import Path

from itero.tracking.rundir import atomic_write_text, read_json

STAGES = ("generate", "score", "prepare", "train", "eval", "bench", "time")


def iteration_dirs(run_dir: Path) -> list[tuple[int, Path]]:
    dirs = [(0, run_dir / "sft")] if (run_dir / "sft").exists() else []
    iters = [(int(p.name.split("_")[1]), p) for p in run_dir.glob("iter_*") if p.name.split("_")[1].isdigit()]
    return dirs + sorted(iters)


def collect(run_dir: Path) -> list[dict]:
    rows = []
    for k, d in iteration_dirs(run_dir):
        row: dict = {"iteration": k}
        for stage in STAGES:
            f = d / f"{stage}.json"
            if f.exists():
                row.update({f"{stage}/{key}": value for key, value in read_json(f).items()})
        if len(row) > 1:
            rows.append(row)
    return rows


def write_metrics(run_dir: Path) -> list[dict]:
    rows = collect(run_dir)
    atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    return rows


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: is {run_dir} a run directory?")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
