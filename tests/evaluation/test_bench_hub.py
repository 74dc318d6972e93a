"""The hub path of the built-in data: real ``datasets`` loading of local copies shaped like the public sources.

The hub itself cannot be reached from the tests (conftest sets HF_HUB_OFFLINE), so each test writes a small
dataset with the public source's field names (``save_to_disk`` or parquet) and points the source's id at it.
The derived ``problem`` / ``gold_answer`` must equal what the local JSONL copies hold for the same rows.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

datasets = pytest.importorskip("datasets")

from itero import data  # noqa: E402
from itero.cli import main  # noqa: E402
from itero.evaluation.benchmarks import BUILTIN, load_benchmark  # noqa: E402
from itero.tasks.hub import read_problems  # noqa: E402
from itero.tasks.jsonl import DataFileError  # noqa: E402

SHARED = data.data_dir_override()  # the suite's local copies (conftest sets ITERO_DATA_DIR)
needs_shared = pytest.mark.skipif(SHARED is None or not SHARED.is_dir(), reason="no local data folder")
ROWS = 5


@pytest.fixture
def hub(monkeypatch):
    """No local override, so built-ins take the hub path; ``hub(name, folder)`` points a source at a folder."""
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)

    def point(name: str, location: Path) -> data.HubSource:
        source = dataclasses.replace(data.SOURCES[name], dataset=str(location))
        monkeypatch.setitem(data.SOURCES, name, source)
        return source

    return point


def _shared_rows(name: str, limit: int = ROWS) -> list[dict]:
    lines = (SHARED / BUILTIN[name]).read_text(encoding="utf-8").splitlines()[:limit]
    return [json.loads(line) for line in lines]


def _as_published(name: str, row: dict) -> dict:
    """The row as the public source has it: without the two uniform fields the local copy added."""
    row = {k: v for k, v in row.items() if k != "gold_answer"}
    field = data.SOURCES[name].problem_field
    problem = row.pop("problem")
    row[field] = row.get(field, problem)
    return row


def _save_to_disk(folder: Path, split: str, rows: list[dict]) -> Path:
    datasets.DatasetDict({split: datasets.Dataset.from_list(rows)}).save_to_disk(str(folder))
    return folder


def _parquet(folder: Path, split: str, rows: list[dict]) -> Path:
    folder.mkdir(parents=True)
    datasets.Dataset.from_list(rows).to_parquet(str(folder / f"{split}-00000-of-00001.parquet"))
    return folder


@needs_shared
@pytest.mark.parametrize("name", sorted(BUILTIN))
@pytest.mark.parametrize("writer", [_save_to_disk, _parquet], ids=["save_to_disk", "parquet"])
def test_hub_rows_match_the_local_copy(name, writer, hub, tmp_path):
    expected = _shared_rows(name)
    split = data.SOURCES[name].split
    source = hub(name, writer(tmp_path / name, split, [_as_published(name, r) for r in expected]))
    bench = load_benchmark(name)
    assert bench.source == source.spec
    assert bench.problems == [r["problem"] for r in expected]
    assert bench.answers == [r["gold_answer"] for r in expected]


def test_gsm8k_gold_is_after_the_last_marker_without_commas(hub, tmp_path):
    rows = [
        {"question": "How many?", "answer": "2 * 617 = <<2*617=1234>>1,234\n#### 1,234"},
        {"question": "And now?", "answer": "Not #### this one.\n#### -7"},
    ]
    hub("gsm8k", _save_to_disk(tmp_path / "gsm8k", "test", rows))
    bench = load_benchmark("gsm8k")
    assert (bench.problems, bench.answers) == (["How many?", "And now?"], ["1234", "-7"])


def test_minerva_gold_is_the_last_box_or_the_shipped_answer(hub, tmp_path):
    boxed = [{"question": "q", "solution": r"first \boxed{1} then \boxed{\frac{1}{2}} \mathrm{~m}"}]
    hub("minerva_math", _parquet(tmp_path / "boxed", "test", boxed))
    assert load_benchmark("minerva_math").answers == [r"\frac{1}{2}"]
    # the public card lists question / answer only: an answer already extracted is taken as it is
    hub("minerva_math", _parquet(tmp_path / "plain", "test", [{"question": "q", "answer": "4.5e33"}]))
    assert load_benchmark("minerva_math").answers == ["4.5e33"]


def test_olympiad_list_answers_and_amc_floats(hub, tmp_path):
    rows = [
        {"question": "a", "final_answer": ["$69$,$84$"]},
        {"question": "b", "final_answer": ["$x=1$", "$y=2$"]},
        {"question": "c", "final_answer": ["$(-\\infty, 0)$."]},
    ]
    hub("olympiadbench", _save_to_disk(tmp_path / "ob", "test", rows))
    assert load_benchmark("olympiadbench").answers == ["69, 84", "x=1, y=2", "(-\\infty, 0)$."]
    hub(
        "amc23",
        _parquet(tmp_path / "amc", "test", [{"question": "q", "answer": 27.0}, {"question": "r", "answer": 2.5}]),
    )
    assert load_benchmark("amc23").answers == ["27", "2.5"]


def test_a_row_without_a_gold_answer_names_the_row(hub, tmp_path):
    hub("gsm8k", _save_to_disk(tmp_path / "g", "test", [{"question": "q", "answer": "no marker"}]))
    with pytest.raises(DataFileError, match=r"row 1: no gold answer"):
        load_benchmark("gsm8k")


def test_offline_hub_without_override_is_one_line_naming_it(hub, capsys):
    hub("aime24", Path("itero-tests/not-a-dataset"))  # never cached, and the hub is offline
    with pytest.raises(DataFileError) as err:
        load_benchmark("aime24")
    message = str(err.value)
    assert "\n" not in message and "--data-dir" in message and data.DATA_DIR_ENV in message
    # the same through the command line, before any model is loaded
    assert main(["eval", "no-such-model", "--benchmarks", "aime24", "--no-progress"]) == 2
    stderr = capsys.readouterr().err.strip().splitlines()
    assert stderr[-1].startswith("error: aime24: cannot load") and "--data-dir" in stderr[-1]


def test_without_the_datasets_package_the_override_is_named(hub, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(DataFileError, match=f"pip install datasets.*--data-dir.*{data.DATA_DIR_ENV}"):
        load_benchmark("math500")


@needs_shared
def test_explicit_folder_beats_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))  # empty: would fail if it were used
    assert len(load_benchmark("aime24", SHARED).problems) == 30
    with pytest.raises(DataFileError, match="aime24/test.jsonl: file does not exist"):
        load_benchmark("aime24")


def test_task_prompts_from_a_hub_source_derive_answers_and_drop_unanswered(hub, tmp_path):
    rows = [
        {"problem": "p1", "solution": r"so \boxed{3}.", "level": "Level 3", "type": "Algebra"},
        {"problem": "p2", "solution": "no box here", "level": "Level 1", "type": "Algebra"},
    ]
    source = hub("math_train", _save_to_disk(tmp_path / "math", "train", rows))
    problems = read_problems(source.spec)
    assert [(p.prompt, p.answer) for p in problems] == [("p1", "3")]
    # any other dataset: its own fields, the split defaulting to train
    plain = _parquet(tmp_path / "plain", "train", [{"q": "1+1", "a": 2}])
    assert [(p.prompt, p.answer) for p in read_problems(f"hf:{plain}", "q", "a")] == [("1+1", "2")]


def test_task_hub_source_reads_the_local_copy_when_the_environment_names_one(monkeypatch, tmp_path):
    (tmp_path / "math").mkdir()
    (tmp_path / "math" / "train.jsonl").write_text(json.dumps({"problem": "p", "gold_answer": "7"}) + "\n")
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    monkeypatch.setitem(sys.modules, "datasets", None)  # proves the hub is not consulted
    problems = read_problems(data.SOURCES["math_train"].spec)
    assert [(p.prompt, p.answer) for p in problems] == [("p", "7")]


def test_task_hub_source_offline_names_both_ways_out(hub):
    source = hub("math_train", Path("itero-tests/not-a-dataset"))
    with pytest.raises(DataFileError) as err:
        read_problems(source.spec)
    message = str(err.value)
    assert (
        "\n" not in message
        and "JSONL file" in message
        and f"{data.DATA_DIR_ENV}=DIR with DIR/math/train.jsonl" in message
    )
