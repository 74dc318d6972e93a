"""Input that is legal but suspicious is warned about once on stderr; a full disk or an unwritable run
folder is one line naming the path."""

import errno
import json
import os
from pathlib import Path

import pytest
from helpers import text_batch, tiny

from itero.cli import main
from itero.config import load_config
from itero.runtime import preflight
from itero.tracking.rundir import RunDirError, atomic_torch_save, atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")


def write_jsonl(path: Path, rows: list[tuple[str, str]]) -> str:
    path.write_text("".join(json.dumps({"problem": p, "gold_answer": a}) + "\n" for p, a in rows))
    return str(path)


def jsonl_config(train: str, test: str | None = None, run_dir: Path | None = None):
    overrides = ["task.name=jsonl", f"task.jsonl.train_path={train}", "sft.enabled=false"]
    overrides += [f"task.jsonl.test_path={test}"] if test else ["task.jsonl.num_test=1"]
    return load_config(QUICKSTART, [*overrides, f"logging.run_dir={run_dir or 'runs'}"])


def test_conflicting_golds_and_a_test_split_inside_the_training_split_are_warned_about(tmp_path, capsys):
    train = write_jsonl(tmp_path / "train.jsonl", [("1+1=", "2"), ("1+1=", "3"), ("2+2=", "4"), ("3+3=", "6")])
    test = write_jsonl(tmp_path / "test.jsonl", [("2+2=", "4"), ("5+5=", "10")])
    preflight(jsonl_config(train, test, tmp_path / "runs"))
    err = capsys.readouterr().err
    assert "train.jsonl: 1 prompts have conflicting gold answers (e.g. '1+1=': '2' vs '3')" in err
    assert "train.jsonl: 1 of 2 test problems are also in the training split" in err
    assert not (tmp_path / "runs").exists()


def test_clean_data_gives_no_warning(tmp_path, capsys):
    train = write_jsonl(tmp_path / "clean.jsonl", [("1+1=", "2"), ("2+2=", "4"), ("3+3=", "6")])
    preflight(jsonl_config(train, None, tmp_path / "runs"))
    assert "warning" not in capsys.readouterr().err


def test_an_iteration_that_forms_no_preference_pairs_says_so(capsys):
    from itero.algorithms import dpo

    _, tok = tiny()
    same = text_batch(tok, ["1+1="] * 4, ["2"] * 4, scores=[1.0] * 4, group_ids=[0, 0, 1, 1])  # greedy: all equal
    selected, _ = dpo.select(same, dpo.Config())
    assert selected.batch_size == 0
    assert "no preference pairs formed from 2 prompts" in capsys.readouterr().err


def test_train_rm_pairs_whose_chosen_equals_rejected_are_warned_about(tmp_path, capsys):
    from itero.rewards.cli import read_preference_pairs

    rows = [{"prompt": "1+1=", "chosen": "2", "rejected": "3"}, {"prompt": "2+2=", "chosen": "4", "rejected": "4"}]
    (tmp_path / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    read_preference_pairs(tmp_path / "prefs.jsonl", "prompt", "chosen", "rejected")
    assert "1 of 2 pairs have chosen equal to rejected (first at line 2)" in capsys.readouterr().err


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_is_named_with_the_file_and_leaves_no_partial_file(tmp_path, monkeypatch):
    monkeypatch.setattr("itero.tracking.rundir.os.fsync", no_space)
    with pytest.raises(RunDirError, match=f"disk full while writing {tmp_path / 'a.json'}: free some space"):
        atomic_write_json(tmp_path / "a.json", {"x": 1})
    monkeypatch.setattr("itero.tracking.rundir.torch.save", no_space)
    with pytest.raises(RunDirError, match="disk full while writing .*b.pt"):
        atomic_torch_save(tmp_path / "b.pt", {"x": 1})
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_during_a_run_is_one_line_from_the_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("itero.tracking.rundir.os.fsync", no_space)
    assert main(["train", QUICKSTART, "logging.run_dir=runs", "logging.progress=false"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: disk full while writing runs/quickstart/config.yaml") and "Traceback" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod; the path-under-a-file probe covers this")
def test_a_read_only_run_folder_is_refused_before_anything_runs(tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs").chmod(0o555)
    try:
        with pytest.raises(RunDirError, match="is not writable"):
            preflight(load_config(QUICKSTART, [f"logging.run_dir={tmp_path / 'runs'}"]))
    finally:
        (tmp_path / "runs").chmod(0o755)
