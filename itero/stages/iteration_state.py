"""State an algorithm carries across iterations (``IterationState`` in ``algorithms/base.py``), kept in
the run directory: ``iter_k/<name>.json`` holds the state after iteration k's prepare, with its sha256
beside it as the stage outputs have, so iteration k+1, on this run or a resumed one, reads the same."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from itero.algorithms.base import IterationState
from itero.runtime import Runtime
from itero.tracking.rundir import RunDirError, atomic_write_text, read_json


def state_before(rt: Runtime, k: int) -> IterationState | None:
    """The algorithm's state as iteration ``k`` starts: fresh for k = 1, else as iteration k−1 saved it."""
    make = rt.algo.schedule(rt.cfg.algorithm).state
    if make is None:
        return None
    state = make()
    if k > 1:
        state.load_state_dict(read_state(rt.run / f"iter_{k - 1}" / f"{state.name}.json"))
    return state


def iteration_config(rt: Runtime, k: int) -> Any:
    """The algorithm config iteration ``k`` runs with (``rt.cfg.algorithm`` with its carried state in)."""
    state = state_before(rt, k)
    return rt.cfg.algorithm if state is None else state.config(rt.cfg.algorithm)


def save_state(d: Path, state: IterationState) -> None:
    path = d / f"{state.name}.json"
    text = json.dumps(state.state_dict(), indent=2, sort_keys=True) + "\n"
    atomic_write_text(path, text)  # rank 0 writes; every rank hashes the same text
    atomic_write_text(_checksum(path), _sha256(text.encode()) + "\n")


def read_state(path: Path) -> dict:
    if not path.exists():
        raise RunDirError(
            f"{path} is missing: the state the next iteration starts from (the adaptive KL coefficient) is "
            "saved there by that iteration's prepare stage; delete that iteration's folder and rerun the "
            "same command to recompute it"
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
