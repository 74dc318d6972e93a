"""State an algorithm carries across iterations (``IterationState`` in ``algorithms/base.py``): iteration
k's prepare stage returns it updated, the resume layer keeps it in ``iter_k/<name>.json`` with its sha256,
and iteration k+1, on this run or a resumed one, starts from what it reads there."""

from __future__ import annotations

from typing import Any

from itero.algorithms.base import IterationState
from itero.tracking.resume import StageFolder


def state_before(algo, cfg: Any, folder: StageFolder) -> IterationState | None:
    """``algo``'s state as ``folder``'s iteration starts: fresh for the first, else as the one before saved it."""
    make = algo.schedule(cfg).state
    if make is None:
        return None
    state = make()
    saved = folder.previous_state(state.name, required=True, what="the adaptive KL coefficient")
    if saved is not None:
        state.load_state_dict(saved)
    return state


def iteration_config(algo, cfg: Any, folder: StageFolder) -> Any:
    """The algorithm config ``folder``'s iteration runs with: ``cfg`` with the carried state in."""
    state = state_before(algo, cfg, folder)
    return cfg if state is None else state.config(cfg)
