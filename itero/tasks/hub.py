"""Rows of a Hugging Face dataset (``hf:NAME[#CONFIG][@SPLIT]``), read with ``datasets`` and cached by it.

NAME is a hub dataset id, or a local copy: a folder written by ``save_to_disk``, a folder of data files
(parquet, JSON Lines, ...) or one such file. A known public source (``itero.data.SOURCES``) gets the
uniform ``problem`` / ``gold_answer`` fields; in a task config it is read from ``ITERO_DATA_DIR`` when that is set.
``datasets`` is imported only here, so the rest of itero works without it.
"""

from __future__ import annotations

from pathlib import Path

from itero.data import DATA_DIR_ENV, HubSource, data_dir_override, source_for, with_uniform_fields
from itero.tasks.arithmetic import Problem
from itero.tasks.jsonl import DataFileError, read_jsonl

HUB_PREFIX = "hf:"
_SAVED_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")  # what save_to_disk writes
_FILE_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv", ".arrow": "arrow"}


def is_hub(source: str | Path) -> bool:
    return str(source).startswith(HUB_PREFIX)


def parse_hub(spec: str, default_split: str) -> tuple[str, str | None, str]:
    """``hf:NAME[#CONFIG][@SPLIT]`` -> (NAME, CONFIG or None, SPLIT)."""
    name, _, split = spec[len(HUB_PREFIX) :].partition("@")
    name, _, config = name.partition("#")
    if not name:
        raise DataFileError(f"{spec}: no dataset after 'hf:'; write hf:NAME[#CONFIG][@SPLIT]")
    return name, config or None, split or default_split


def read_hub(
    spec: str, required: tuple[str, ...] = (), default_split: str = "test", local_copy: bool = True
) -> list[dict]:
    """Every row of ``spec``, checked like a JSONL file's (a row number stands in for the line).

    ``local_copy``: a known source is read from $ITERO_DATA_DIR when that is set (task configs);
    an explicit benchmark spec passes False, since it asks for the hub by name.
    """
    dataset, config, split = parse_hub(spec, default_split)
    return read_dataset(dataset, config, split, required, label=spec, local_copy=local_copy)


def read_dataset(
    dataset: str, config: str | None, split: str, required: tuple[str, ...] = (), *, label: str, local_copy: bool
) -> list[dict]:
    """``read_hub`` with the parts given apart (``task.dataset``: a local path may hold '#' or '@')."""
    spec = label
    known = source_for(dataset, config, split)
    local = data_dir_override() if local_copy else None
    if known is not None and local is not None:
        return _read_local_copy(local / known.local, spec, required)
    source = known or source_for(dataset, config)  # another split of a known set derives its answers alike
    hint = "or save it as JSON Lines and give that file instead"
    if known is not None and local_copy:
        hint = f"give a local JSONL file instead, or set {DATA_DIR_ENV}=DIR with DIR/{known.local}"
    rows = load_rows(dataset, config, split, label=spec, hint=hint)
    return _checked(_uniform(rows, source, spec) if source else rows, spec, required)


def read_source(name: str, source: HubSource, required: tuple[str, ...], hint: str) -> list[dict]:
    """The rows of a built-in data set from its public source, with the uniform fields."""
    rows = load_rows(source.dataset, source.config, source.split, label=name, hint=hint)
    return _checked(_uniform(rows, source, f"{name} ({source.label})"), source.label, required)


def load_rows(dataset: str, config: str | None, split: str, *, label: str, hint: str) -> list[dict]:
    """Rows as dicts; any failure (no package, hub unreachable, unknown split) is one line that says what to do."""
    try:
        import datasets
    except ImportError:
        raise DataFileError(
            f"{label}: reading a Hugging Face dataset needs the `datasets` package (pip install datasets); {hint}"
        ) from None
    where = f"{dataset}" + (f" (config {config})" if config else "") + f", split {split}"
    try:
        return [dict(row) for row in _open(datasets, dataset, config, split)]
    except Exception as err:  # network, offline cache miss, missing split: all end the same way for the user
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataFileError(f"{label}: cannot load {where} ({type(err).__name__}: {reason}); {hint}") from None


def _open(datasets, dataset: str, config: str | None, split: str):
    path = Path(dataset).expanduser()
    if not path.exists():
        return datasets.load_dataset(dataset, config, split=split)
    if path.is_file():
        builder = _FILE_BUILDERS.get(path.suffix)
        if builder is None:
            raise ValueError(f"unknown data file type {path.suffix!r} (use one of {', '.join(_FILE_BUILDERS)})")
        return datasets.load_dataset(builder, data_files=str(path), split="train")
    if any((path / marker).exists() for marker in _SAVED_MARKERS):
        saved = datasets.load_from_disk(str(path))
        if isinstance(saved, datasets.DatasetDict):
            if split not in saved:
                raise ValueError(f"no split {split!r} in {path} (splits: {', '.join(saved)})")
            return saved[split]
        return saved
    return datasets.load_dataset(str(path), split=split)


def _uniform(rows: list[dict], source: HubSource, where: str) -> list[dict]:
    out = []
    for index, row in enumerate(rows, 1):
        uniform = with_uniform_fields(source, row)
        if uniform is None and not source.skip_unanswered:
            raise DataFileError(f"{where}:row {index}: no gold answer could be derived (fields: {', '.join(row)})")
        if uniform is not None:
            out.append(uniform)
    return out


def _checked(rows: list[dict], where: str, required: tuple[str, ...]) -> list[dict]:
    for index, row in enumerate(rows, 1):
        for field in required:
            if row.get(field) is None:
                raise DataFileError(f"{where}:row {index}: missing field {field!r} (fields present: {', '.join(row)})")
    return rows


def _read_local_copy(path: Path, spec: str, required: tuple[str, ...]) -> list[dict]:
    if not path.exists():
        raise DataFileError(
            f"{path}: file does not exist; {DATA_DIR_ENV} is set, so {spec} is read from this local copy "
            f"(unset {DATA_DIR_ENV} to use the hub)"
        )
    return read_jsonl(path, required=required)


def read_problems(
    path: str | Path,
    prompt_field: str = "problem",
    answer_field: str = "gold_answer",
    solution_field: str | None = None,
) -> list[Problem]:
    """Problems from a JSONL file, or from ``hf:NAME[#CONFIG][@SPLIT]`` (split ``train`` unless given)."""
    required = (prompt_field, answer_field)
    if str(path).startswith("hf:"):
        rows = read_hub(str(path), required, default_split="train")
    else:
        rows = read_jsonl(path, required=required)
    return [
        Problem(
            prompt=str(r[prompt_field]),
            answer=str(r[answer_field]),
            solution=str(r.get(solution_field) or "") if solution_field else "",
        )
        for r in rows
    ]
