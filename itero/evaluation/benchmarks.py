"""Math benchmarks: problems and gold answers from their public Hugging Face datasets or local JSON Lines files.

A benchmark is a name, a source and the fields holding the problem and the gold answer. The six
built-in names read their public source (``itero.data.SOURCES``: dataset id, config, split, and how the
gold answer is derived) through ``datasets``, which caches them. A local folder laid out as
``<name>/test.jsonl`` replaces the hub: ``--data-dir DIR`` (``eval.data_dir``) first, else the
``ITERO_DATA_DIR`` environment variable. Both paths give rows with the uniform fields ``problem`` and
``gold_answer``. A spec string adds a benchmark without code:

    math500                                    built-in: the hub, or <data dir>/math500/test.jsonl
    mine=path/to/file.jsonl                    fields problem / gold_answer
    mine=path/to/file.jsonl:question:answer    problem field, answer field
    math500=hf:HuggingFaceH4/MATH-500@test:problem:answer
                                               a Hugging Face dataset (``hf:NAME[#CONFIG][@SPLIT]``,
                                               split ``test`` by default; needs ``pip install datasets``)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from itero.data import DATA_DIR_ENV, SOURCES, data_dir_override
from itero.schema import ConfigError
from itero.tasks.hub import HUB_PREFIX, read_hub, read_source
from itero.tasks.jsonl import DataFileError, read_jsonl

BENCHMARKS = ("math500", "gsm8k", "aime24", "amc23", "minerva_math", "olympiadbench")
BUILTIN = {name: SOURCES[name].local for name in BENCHMARKS}  # name -> its file inside a local data folder
_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")  # names become file names in the output folder


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    source: str  # a JSONL path (a built-in's is relative to the data folder) or hf:NAME[#CONFIG][@SPLIT]
    problem_field: str = "problem"
    answer_field: str = "gold_answer"
    builtin: bool = False


@dataclass(frozen=True)
class Benchmark:
    name: str
    source: str  # the file (or hub dataset) the rows came from
    problems: list[str]
    answers: list[str]  # gold final answers, as strings


def parse_spec(spec: str) -> BenchmarkSpec:
    """``NAME`` (built-in) or ``NAME=SOURCE[:PROBLEM_FIELD:ANSWER_FIELD]``; see the module docstring."""
    name, sep, source = spec.strip().partition("=")
    if not _NAME_RE.fullmatch(name):
        raise ConfigError(f"benchmark {spec!r}: the name must be letters, digits, '_', '.' or '-'")
    if not sep:
        if name not in BUILTIN:
            raise ConfigError(
                f"unknown benchmark {name!r}; built-in: {', '.join(BUILTIN)}; "
                "or add one as NAME=FILE.jsonl[:PROBLEM_FIELD:ANSWER_FIELD]"
            )
        return BenchmarkSpec(name, BUILTIN[name], builtin=True)
    parts = source.rsplit(":", 2)
    # Field names are split off only as a pair, so "hf:NAME" and "C:\\file" keep their own colons.
    if len(parts) == 3 and parts[0] and parts[0] != HUB_PREFIX[:-1]:
        source, problem_field, answer_field = parts
        if not problem_field or not answer_field:
            raise ConfigError(f"benchmark {spec!r}: empty field name; write NAME=FILE:PROBLEM_FIELD:ANSWER_FIELD")
        return BenchmarkSpec(name, source, problem_field, answer_field)
    if not source:
        raise ConfigError(f"benchmark {spec!r}: no source after '='; give a JSONL file or hf:DATASET")
    return BenchmarkSpec(name, source)


def load_benchmark(
    spec: BenchmarkSpec | str, data_dir: str | Path | None = None, limit: int | None = None
) -> Benchmark:
    """Every row is checked (a bad line anywhere is an error naming file, line and field); the first ``limit`` are kept."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    fields = (spec.problem_field, spec.answer_field)
    if spec.source.startswith(HUB_PREFIX):
        rows, source = read_hub(spec.source, fields, local_copy=False), spec.source
    else:
        rows, source = _read_builtin(spec, data_dir, fields) if spec.builtin else _read_file(spec, fields)
    if not rows:
        raise DataFileError(f"{source}: benchmark {spec.name!r} has no rows")
    rows = rows[:limit] if limit else rows
    return Benchmark(
        spec.name,
        source,
        [str(r[spec.problem_field]) for r in rows],
        [_answer_text(r[spec.answer_field]) for r in rows],
    )


def _read_builtin(spec: BenchmarkSpec, data_dir: str | Path | None, fields) -> tuple[list[dict], str]:
    """A local folder if one is given (argument, then $ITERO_DATA_DIR), else the public source."""
    folder = data_dir_override(data_dir)
    if folder is None:
        source = SOURCES[spec.name]
        hint = f"for a local copy give --data-dir DIR (eval.data_dir) or set {DATA_DIR_ENV}=DIR, with DIR/{spec.source}"
        return read_source(spec.name, source, fields, hint), source.spec
    path = folder / spec.source
    if not path.exists():
        raise DataFileError(
            f"{path}: file does not exist; benchmark {spec.name!r} is read from <data dir>/{spec.source} "
            f"(--data-dir, eval.data_dir or {DATA_DIR_ENV}); without any of them it comes from the hub"
        )
    return read_jsonl(path, required=fields), str(path)


def _read_file(spec: BenchmarkSpec, fields) -> tuple[list[dict], str]:
    path = Path(spec.source).expanduser()
    return read_jsonl(path, required=fields), str(path)


def _answer_text(value) -> str:
    # A list of answers (OlympiadBench's final_answer) is one answer with several parts.
    return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
