"""Benchmark loaders: the six shared files, a user's own file with its own fields, and errors that name file, line and field."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from itero.evaluation.benchmarks import BUILTIN, load_benchmark, parse_spec
from itero.schema import ConfigError
from itero.tasks.jsonl import DataFileError

DATA_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
ROWS = {"math500": 500, "gsm8k": 1319, "aime24": 30, "amc23": 40, "minerva_math": 272, "olympiadbench": 675}
needs_data = pytest.mark.skipif(not DATA_DIR.is_dir(), reason=f"{DATA_DIR} not present")


@needs_data
@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_benchmarks_read_problem_and_gold_answer(name):
    bench = load_benchmark(name, DATA_DIR)
    assert len(bench.problems) == len(bench.answers) == ROWS[name]
    first = json.loads((DATA_DIR / BUILTIN[name]).read_text(encoding="utf-8").splitlines()[0])
    assert (bench.problems[0], bench.answers[0]) == (first["problem"], first["gold_answer"])
    limited = load_benchmark(name, DATA_DIR, limit=3)
    assert limited.problems == bench.problems[:3] and limited.answers == bench.answers[:3]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_own_file_with_own_fields(tmp_path):
    path = _write(
        tmp_path / "mine.jsonl",
        [
            json.dumps({"question": "1+1?", "answer": 2.0}),
            json.dumps({"question": "Roots of x^2=1?", "answer": ["-1", "1"]}),
        ],
    )
    bench = load_benchmark(f"mine={path}:question:answer")
    assert bench.name == "mine" and bench.source == str(path)
    assert bench.problems == ["1+1?", "Roots of x^2=1?"]
    assert bench.answers == ["2.0", "-1, 1"]


def test_own_file_default_fields(tmp_path):
    path = _write(tmp_path / "b.jsonl", [json.dumps({"problem": "p", "gold_answer": "7"})])
    assert load_benchmark(f"b={path}").answers == ["7"]


def test_missing_answer_field_names_file_line_and_field(tmp_path):
    path = _write(
        tmp_path / "bad.jsonl",
        [
            json.dumps({"question": "a", "answer": "1"}),
            json.dumps({"question": "b"}),
        ],
    )
    with pytest.raises(DataFileError) as err:
        load_benchmark(f"bad={path}:question:answer", limit=1)  # the limit does not hide a bad row
    assert f"{path}:2:" in str(err.value) and "'answer'" in str(err.value)


def test_malformed_line_names_file_and_line(tmp_path):
    path = _write(tmp_path / "bad.jsonl", [json.dumps({"problem": "a", "gold_answer": "1"}), "{oops"])
    with pytest.raises(DataFileError, match=f"{path}:2: malformed JSON"):
        load_benchmark(f"bad={path}")


def test_spec_errors_say_what_is_allowed(tmp_path):
    with pytest.raises(ConfigError, match="unknown benchmark 'math5000'.*math500"):
        parse_spec("math5000")
    with pytest.raises(ConfigError, match="name must be"):
        parse_spec("my bench=x.jsonl")
    with pytest.raises(ConfigError, match="no source"):
        parse_spec("mine=")
    with pytest.raises(DataFileError, match="--data-dir"):
        load_benchmark("aime24", tmp_path)


def test_spec_parsing_keeps_hub_colons():
    spec = parse_spec("m=hf:HuggingFaceH4/MATH-500@test:problem:answer")
    assert (spec.source, spec.problem_field, spec.answer_field) == (
        "hf:HuggingFaceH4/MATH-500@test",
        "problem",
        "answer",
    )
    assert parse_spec("m=hf:HuggingFaceH4/MATH-500").source == "hf:HuggingFaceH4/MATH-500"


def test_hub_dataset_without_datasets_package_says_how(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # the import fails as if it were not installed
    with pytest.raises(DataFileError, match="pip install datasets"):
        load_benchmark("m=hf:HuggingFaceH4/MATH-500:problem:answer")
