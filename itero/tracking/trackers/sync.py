"""Copying a run directory's metrics into its trackers, each iteration once, across crashes and resumes.

What each tracker has received is kept in ``<run>/trackers.json`` (the last iteration, and the W&B or
MLflow run id that a resumed run continues), rewritten after every iteration logged.
"""

from __future__ import annotations

import json
import math
from itertools import islice
from pathlib import Path
from typing import Any

import yaml

from itero import distributed
from itero.tracking.metrics import read_metrics
from itero.tracking.rundir import atomic_write_json, read_json
from itero.tracking.trackers.backends import open_tracker
from itero.tracking.trackers.base import Tracker

STATE_FILE = "trackers.json"
STEP_AXIS = "train_step"


def sync_trackers(run_dir: Path, cfg: Any, *, through: int | None = None) -> None:
    """Log every row of ``metrics.jsonl`` up to iteration ``through`` (None: all) that a tracker of
    ``cfg.trackers`` (the logging section) has not received yet. Only rank 0 logs."""
    if not cfg.trackers or not distributed.current().is_main:
        return
    run_dir = Path(run_dir)
    state_path = run_dir / STATE_FILE
    state = read_json(state_path) if state_path.exists() else {}
    rows = [r for r in read_metrics(run_dir) if through is None or r["iteration"] <= through]
    for kind in cfg.trackers:
        done = state.setdefault(kind, {})
        todo = [r for r in rows if r["iteration"] > done.get("iteration", -1)]
        if not todo:
            continue
        tracker = open_tracker(kind, run_dir, display_name(run_dir), cfg, done)
        atomic_write_json(state_path, state)  # the run id first: a crash now still resumes the same run
        try:
            if not done.get("config_logged"):
                tracker.log_config(run_config(run_dir))
                done["config_logged"] = True
            for row in todo:
                log_iteration(tracker, run_dir, row, cfg.tracker_samples)
                tracker.flush()
                done["iteration"] = row["iteration"]
                atomic_write_json(state_path, state)
        finally:
            tracker.close()


def log_iteration(tracker: Tracker, run_dir: Path, row: dict, samples: int) -> None:
    k = row["iteration"]
    tracker.log_scalars(scalars(row), step=k)
    d = iteration_dir(run_dir, k)
    step = steps_before(run_dir, k)
    for step_row in read_jsonl(d / "train_steps.jsonl"):
        step += 1
        tracker.log_scalars({f"{STEP_AXIS}/{key}": v for key, v in scalars(step_row).items()}, step, axis=STEP_AXIS)
    rows = read_jsonl(d / "rollouts.jsonl", limit=samples) if samples else []
    if rows:
        tracker.log_samples(rows, step=k)


def scalars(row: dict) -> dict[str, float]:
    """The finite numbers of a row (``iteration`` is the step, not a metric)."""
    return {
        k: float(v)
        for k, v in row.items()
        if k != "iteration" and isinstance(v, (int, float)) and math.isfinite(float(v))
    }


def iteration_dir(run_dir: Path, k: int) -> Path:
    return run_dir / ("sft" if k == 0 else f"iter_{k}")


def steps_before(run_dir: Path, k: int) -> int:
    """Optimizer steps of iterations 1..k-1: the per-step axis counts over the whole run."""
    return sum(len(read_jsonl(run_dir / f"iter_{i}" / "train_steps.jsonl")) for i in range(1, k))


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as f:
        lines = (line for line in f if line.strip())
        return [json.loads(line) for line in islice(lines, limit)]


def run_config(run_dir: Path) -> dict:
    """The resolved config the run wrote; a sub-run (RTO's ``dpo_model/``) has its parent's."""
    for d in (run_dir, run_dir.parent):
        if (d / "config.yaml").exists():
            return yaml.safe_load((d / "config.yaml").read_text()) or {}
    return {}


def display_name(run_dir: Path) -> str:
    """The run directory's name; a sub-run inside a run is ``<run>/<sub-run>``."""
    inside_a_run = (run_dir.parent / "config.yaml").exists()
    return f"{run_dir.parent.name}/{run_dir.name}" if inside_a_run else run_dir.name
