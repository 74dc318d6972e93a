"""Fault injection: each file a finished run left is truncated in turn (as a crash on a full disk or a
cut copy leaves it), and the rerun of the same command either stops with one line naming the file and
the recovery, or recomputes what depends on it. Deleting the damaged file, as the message says, and
rerunning completes the run."""

import shutil
from pathlib import Path

import pytest
from helpers import TINY_RUN as TINY

from itero.cli import main

COMMAND = ["quickstart", *TINY, "logging.run_dir=runs", "logging.name=t"]
DEPENDENTS = {  # a stage's file, and what the loop would otherwise not recompute from it
    "iter_1/rollouts.pt": ["iter_1/scored.pt", "iter_1/prepared.pt", "iter_1/checkpoint", "iter_1/eval.json"],
    "iter_1/scored.pt": ["iter_1/prepared.pt", "iter_1/checkpoint", "iter_1/eval.json"],
    "iter_1/prepared.pt": ["iter_1/checkpoint", "iter_1/eval.json"],
    "iter_1/eval.json": [],
    "iter_1/generate.json": [],
    "sft/checkpoint/model.safetensors": [],
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("finished")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        assert main(COMMAND) == 0
    return root


def rerun(where: Path, monkeypatch, capsys) -> tuple[int, str]:
    monkeypatch.chdir(where)
    capsys.readouterr()
    code = main(COMMAND)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("name", list(DEPENDENTS))
def test_a_truncated_run_file_is_named_with_its_recovery_and_the_recovery_works(
    name, finished, tmp_path, monkeypatch, capsys
):
    shutil.copytree(finished, tmp_path, dirs_exist_ok=True)
    run = tmp_path / "runs" / "t"
    damaged = run / name
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    for later in DEPENDENTS[name]:
        shutil.rmtree(run / later) if (run / later).is_dir() else (run / later).unlink()

    code, err = rerun(tmp_path, monkeypatch, capsys)
    assert code == 2, err
    assert err.startswith(f"error: runs/t/{name} cannot be read") and "Traceback" not in err
    assert "delete it and rerun the same command" in err or "delete its folder and rerun the same command" in err

    if name not in RECOVERED:  # each recovery reruns part of the run: two of them keep the test short
        return
    damaged.unlink()  # the message's recovery
    code, err = rerun(tmp_path, monkeypatch, capsys)
    assert code == 0, err
    assert damaged.exists()  # recomputed from its inputs


RECOVERED = ("iter_1/rollouts.pt", "iter_1/eval.json")
