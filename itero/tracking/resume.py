"""The one resume layer. A stage is a function that computes and returns a ``StageOutput``; it writes no
file. ``StageFolder.run`` decides whether it runs (its output file missing), hands it the previous
stage's output, and writes what it returned in one order: rows for people (``<name>.jsonl``), the
state the next iteration reads back (``<name>.json`` + sha256), metrics (``<stage>.json``), then the
output, whose appearing marks the stage done; then the stage's seconds and config sha.

So a run stopped anywhere (Ctrl-C, kill -9, a full disk) continues at the first unfinished stage and
ends with the same numbers, and no stage knows a file name other than its own output's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from itero.tracking.rundir import (
    RunDirError,
    atomic_torch_save,
    atomic_write_json,
    atomic_write_jsonl,
    atomic_write_text,
    load_stage,
    read_json,
)


@dataclasses.dataclass
class StageOutput:
    metrics: dict[str, Any]  # written to <stage>.json
    result: Any = None  # saved (torch.save) as the stage's output: a RolloutBatch
    write: Callable[[Path], None] | None = None  # or the stage's own writer of its output (a checkpoint folder)
    rows: dict[str, list[dict]] = dataclasses.field(default_factory=dict)  # <name>.jsonl, one row per sample
    state: dict[str, dict] = dataclasses.field(default_factory=dict)  # <name>.json, read by the next iteration


@dataclasses.dataclass
class StageFolder:
    """One folder of stages (``sft/``, ``iter_k/``), the folder before it, and the config's sha."""

    path: Path
    sha: str
    previous: Path | None = None

    def run(self, name: str, output: str, compute: Callable[..., StageOutput], input: Path | None = None) -> Path:
        """``compute(batch)`` (``input``: what an earlier ``run`` returned) or ``compute()``, unless its
        ``output`` exists; returns the output's path. Every rank runs it; rank 0 writes, the others wait."""
        from itero.distributed import current

        path = self.path / output
        if not pending(path):
            return path
        t0 = time.perf_counter()
        out = compute(load_stage(input)) if input is not None else compute()
        for rows_name, rows in out.rows.items():
            atomic_write_jsonl(self.path / f"{rows_name}.jsonl", rows)
        for state_name, state in out.state.items():
            write_state(self.path / f"{state_name}.json", state)
        atomic_write_json(self.path / f"{name}.json", out.metrics)
        if out.write is not None:
            out.write(path)
        else:
            atomic_torch_save(path, out.result)
        record_stage(self.path, name, self.sha, time.perf_counter() - t0)
        current().barrier()
        return path

    def previous_state(self, name: str, *, required: bool = False, what: str = "") -> dict | None:
        """The state ``name`` the folder before this one saved; None for the first folder (or, unless
        ``required``, when it saved none)."""
        if self.previous is None:
            return None
        path = self.previous / f"{name}.json"
        if not path.exists() and not required:
            return None
        return read_state(path, what)

    def previous_metrics(self, stage: str) -> dict | None:
        path = None if self.previous is None else self.previous / f"{stage}.json"
        return read_json(path) if path is not None and path.exists() else None


def pending(output: Path) -> bool:
    """Whether a stage still has to run, as rank 0 sees it: all ranks must take the same branch."""
    from itero.distributed import current

    return current().broadcast_object(not output.exists())


def record_stage(d: Path, stage: str, sha: str, seconds: float | None = None) -> None:
    """The config each stage ran under in ``provenance.json`` (its ``config_sha``) and its wall-clock
    seconds in ``time.json`` (compare plots accuracy against the iterations' sums)."""
    for name, value in (("provenance.json", sha), ("time.json", seconds)):
        f = d / name
        if value is not None:
            done = json.loads(f.read_text()) if f.exists() else {}
            atomic_write_json(f, {**done, stage: value})


def write_state(path: Path, state: dict) -> None:
    text = json.dumps(state, indent=2, sort_keys=True) + "\n"
    atomic_write_text(path, text)  # rank 0 writes; every rank hashes the same text
    atomic_write_text(_checksum(path), _sha256(text.encode()) + "\n")


def read_state(path: Path, what: str = "") -> dict:
    """A state file ``write_state`` wrote, its checksum checked; ``what`` names it in the error."""
    if not path.exists():
        raise RunDirError(
            f"{path} is missing: the state the next iteration starts from{f' ({what})' if what else ''} is saved "
            "there by that iteration; delete that iteration's folder and rerun the same command to recompute it"
        )
    checksum = _checksum(path)
    if checksum.exists() and _sha256(path.read_bytes()) != checksum.read_text().strip():
        raise RunDirError(
            f"{path} cannot be read: its sha256 differs from {checksum.name}; delete that iteration's folder "
            "and rerun the same command to recompute it"
        )
    return read_json(path)


def _checksum(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
