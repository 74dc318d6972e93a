"""The resume layer (itero/tracking/resume.py): what a stage returns is written in one order, the output
last; a finished stage is not run again; a stage reads the batch the one before returned."""

import json
from pathlib import Path

import pytest

from itero.errors import IteroError
from itero.tracking.resume import StageFolder, StageOutput
from itero.tracking.rundir import RunDirError, load_stage


def test_a_stage_returns_and_the_layer_writes_rows_state_metrics_then_the_output(tmp_path):
    it = StageFolder(tmp_path / "iter_1", "abc")
    seen = []

    def stage():
        seen.append(sorted(p.name for p in it.path.glob("*")) if it.path.exists() else [])
        return StageOutput({"m": 1.5}, result=[1, 2, 3], rows={"samples": [{"a": 1}, {"a": 2}]}, state={"s": {"x": 3}})

    out = it.run("generate", "rollouts.pt", stage)
    assert out == tmp_path / "iter_1" / "rollouts.pt" and load_stage(out) == [1, 2, 3]
    assert seen == [[]]  # the stage itself wrote nothing
    assert json.loads((it.path / "generate.json").read_text()) == {"m": 1.5}
    assert [json.loads(line) for line in (it.path / "samples.jsonl").read_text().splitlines()] == [{"a": 1}, {"a": 2}]
    assert json.loads((it.path / "s.json").read_text()) == {"x": 3} and (it.path / "s.json.sha256").exists()
    assert json.loads((it.path / "provenance.json").read_text()) == {"generate": "abc"}
    assert json.loads((it.path / "time.json").read_text())["generate"] >= 0


def test_a_finished_stage_is_skipped_and_the_next_reads_its_output(tmp_path):
    it = StageFolder(tmp_path / "iter_1", "abc")
    calls = []
    first = it.run("generate", "rollouts.pt", lambda: calls.append("g") or StageOutput({}, result=[1, 2]))
    again = it.run("generate", "rollouts.pt", lambda: calls.append("g2") or StageOutput({}, result=[9]))
    assert calls == ["g"] and again == first and load_stage(first) == [1, 2]
    second = it.run("score", "scored.pt", lambda b: StageOutput({"n": len(b)}, result=[x * 10 for x in b]), first)
    assert load_stage(second) == [10, 20] and json.loads((it.path / "score.json").read_text()) == {"n": 2}


def test_a_stage_that_fails_leaves_no_output_and_runs_again(tmp_path):
    it = StageFolder(tmp_path / "iter_1", "abc")

    def broken():
        raise IteroError("boom")

    with pytest.raises(IteroError, match="boom"):
        it.run("generate", "rollouts.pt", broken)
    assert not (it.path / "rollouts.pt").exists() and not (it.path / "generate.json").exists()
    it.run("generate", "rollouts.pt", lambda: StageOutput({}, result=[1]))
    assert load_stage(it.path / "rollouts.pt") == [1]


def test_a_writer_stage_writes_its_own_output_after_everything_else(tmp_path):
    it = StageFolder(tmp_path / "iter_1", "abc")
    present = []

    def write(path):
        present.extend(sorted(p.name for p in it.path.glob("*")))
        path.mkdir(parents=True)
        (path / "weights").write_text("w")

    out = it.run(
        "train", "checkpoint", lambda: StageOutput({"steps": 2}, write=write, rows={"steps": [{}]}, state={"s": {}})
    )
    assert (out / "weights").read_text() == "w" and json.loads((it.path / "train.json").read_text()) == {"steps": 2}
    # a crash while the output is written leaves the stage pending with everything else already whole
    assert present == ["s.json", "s.json.sha256", "steps.jsonl", "train.json"]


def test_the_previous_folders_state_and_metrics(tmp_path):
    first = StageFolder(tmp_path / "iter_1", "abc")
    assert first.previous_state("s", required=True) is None and first.previous_metrics("generate") is None
    first.run("generate", "rollouts.pt", lambda: StageOutput({"m": 2}, result=0, state={"s": {"v": 0.5}}))
    second = StageFolder(tmp_path / "iter_2", "abc", previous=first.path)
    assert second.previous_state("s") == {"v": 0.5} and second.previous_metrics("generate") == {"m": 2}
    assert second.previous_state("absent") is None
    with pytest.raises(RunDirError, match="absent.json is missing"):
        second.previous_state("absent", required=True)
    (first.path / "s.json").write_text('{"v": 0.6}')
    with pytest.raises(RunDirError, match="sha256 differs"):
        second.previous_state("s")


def test_a_stage_output_appears_after_its_checksum(tmp_path, monkeypatch):
    """A run killed right after an output appears must leave it whole and checked: its checksum is
    already there, and no temporary file is left behind."""
    import os

    from itero.tracking import rundir

    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(rundir.os, "replace", lambda a, b: (replaced.append(Path(b).name), real_replace(a, b)))
    StageFolder(tmp_path / "iter_1", "abc").run("generate", "rollouts.pt", lambda: StageOutput({}, result=[1]))
    assert replaced.index("rollouts.pt.sha256") < replaced.index("rollouts.pt")
    assert not list(tmp_path.rglob("*.tmp"))
