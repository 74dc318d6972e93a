"""Math benchmarks: problems and gold answers from local JSON Lines files, or a hub dataset on request.

A benchmark is a name, a source and the fields holding the problem and the gold answer. The six
built-in names read the copies in the data folder (``../shared/data`` beside the repo by default),
whose rows all carry the uniform fields ``problem`` and ``gold_answer`` (its README says how each
gold answer was derived). A spec string adds a benchmark without code:

    math500                                    built-in: <data_dir>/math500/test.jsonl
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

from itero.grading.check import default_data_dir
from itero.schema import ConfigError
from itero.tasks.jsonl import DataFileError, read_jsonl

BUILTIN = {
    "math500": "math500/test.jsonl",
    "gsm8k": "gsm8k/test.jsonl",
    "aime24": "aime24/test.jsonl",
    "amc23": "amc23/test.jsonl",
    "minerva_math": "minerva_math/test.jsonl",
    "olympiadbench": "olympiadbench/test.jsonl",
}
HUB_PREFIX = "hf:"
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
        rows, source = _read_hub(spec.source, fields), spec.source
    else:
        path = _resolve(spec, data_dir)
        rows, source = read_jsonl(path, required=fields), str(path)
    if not rows:
        raise DataFileError(f"{source}: benchmark {spec.name!r} has no rows")
    rows = rows[:limit] if limit else rows
    return Benchmark(
        spec.name,
        source,
        [str(r[spec.problem_field]) for r in rows],
        [_answer_text(r[spec.answer_field]) for r in rows],
    )


def _resolve(spec: BenchmarkSpec, data_dir: str | Path | None) -> Path:
    if not spec.builtin:
        return Path(spec.source).expanduser()
    folder = Path(data_dir).expanduser() if data_dir else default_data_dir()
    path = folder / spec.source
    if not path.exists():
        raise DataFileError(
            f"{path}: file does not exist; benchmark {spec.name!r} is read from <data dir>/{spec.source}, "
            "give the data folder with --data-dir (eval.data_dir in a config)"
        )
    return path


def _answer_text(value) -> str:
    # A list of answers (OlympiadBench's final_answer) is one answer with several parts.
    return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)


def _read_hub(source: str, fields: tuple[str, ...]) -> list[dict]:
    """Rows of a hub dataset, with the same checks as a file (a row number stands in for the line)."""
    try:
        import datasets
    except ImportError:
        raise DataFileError(
            f"{source}: reading a hub dataset needs the `datasets` package (pip install datasets), "
            "or save it as JSON Lines and give the file"
        ) from None
    name, _, split = source[len(HUB_PREFIX) :].partition("@")
    name, _, config = name.partition("#")
    rows = []
    for index, row in enumerate(datasets.load_dataset(name, config or None, split=split or "test"), 1):
        for field in fields:
            if row.get(field) is None:
                raise DataFileError(f"{source}:row {index}: missing field {field!r} (fields present: {', '.join(row)})")
        rows.append(dict(row))
    return rows
