"""``task.dataset``: problems from a Hugging Face ``datasets`` dataset, with a field mapping.

``path`` is a hub id (with ``config`` and ``split``) or a local copy: a ``save_to_disk`` folder, a
folder of data files, or one parquet / JSON Lines / CSV file. Rows are read by ``itero.tasks.hub``
(``datasets`` is imported only there). ``prompt_field`` and ``answer_field`` become the problem's
prompt and gold answer; the columns in ``columns`` (every column when unset) travel with each
problem to the reward functions.
"""

from __future__ import annotations

from itero.tasks.arithmetic import Problem
from itero.tasks.hub import read_dataset
from itero.tasks.jsonl import DataFileError

RESERVED = ("prompts", "responses", "answers")  # the reward functions' own argument names


def read_splits(cfg) -> tuple[list[Problem], list[Problem]]:
    """(train, test) problems; without ``test_split`` the first ``num_test`` rows are held out."""
    train = read_split(cfg, cfg.split)
    if cfg.test_split:
        return train, read_split(cfg, cfg.test_split)
    return train[cfg.num_test :], train[: cfg.num_test]


def read_split(cfg, split: str) -> list[Problem]:
    required = tuple(f for f in (cfg.prompt_field, cfg.answer_field) if f)
    label = f"task.dataset {cfg.path}" + (f" (config {cfg.config})" if cfg.config else "") + f", split {split}"
    rows = read_dataset(cfg.path, cfg.config, split, required, label=label, local_copy=True)
    if rows and cfg.columns is not None:
        missing = [c for c in cfg.columns if c not in rows[0]]
        if missing:
            raise DataFileError(
                f"{label}: task.dataset.columns names {', '.join(map(repr, missing))}, which the dataset lacks "
                f"(columns: {', '.join(rows[0])})"
            )
    return [to_problem(row, cfg) for row in rows]


def to_problem(row: dict, cfg) -> Problem:
    kept = list(row) if cfg.columns is None else cfg.columns
    clash = [c for c in kept if c in RESERVED]
    if clash:
        raise DataFileError(
            f"task.dataset: column {clash[0]!r} has the name of a reward function argument; list the columns to "
            "keep in task.dataset.columns without it"
        )
    return Problem(
        prompt=str(row[cfg.prompt_field]),
        answer=str(row[cfg.answer_field]) if cfg.answer_field else "",
        solution=str(row.get(cfg.solution_field) or "") if cfg.solution_field else "",
        columns={c: row.get(c) for c in kept},
    )
