"""Trackers, read back from what each backend wrote: TensorBoard event files, an MLflow file store and
W&B's offline run files. Resuming logs nothing twice; a new iteration is logged alone."""

import glob
import json
import struct
import sys

import pytest
import yaml
from helpers import TINY_RUN

from itero import distributed
from itero.config import LoggingConfig
from itero.tracking.trackers import TrackerError, check_trackers, sync_trackers

STEPS = {1: 3, 2: 2, 3: 4}  # optimizer steps per iteration


def write_iteration(run, k: int) -> None:
    """What the loop leaves: the stage outputs and metrics.jsonl rebuilt from them."""
    d = run / ("sft" if k == 0 else f"iter_{k}")
    d.mkdir(parents=True)
    (d / "eval.json").write_text(json.dumps({"greedy_accuracy": 0.1 * k}))
    if k:
        steps = [{"loss": 10 * k + i, "lr": 1e-3} for i in range(STEPS[k])]
        (d / "train_steps.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps))
        rollouts = [
            {"prompt": f"{k}+{i}?", "response": "a|b\nc", "answer": "1", "reward": i, "correct": True} for i in range(5)
        ]
        (d / "rollouts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rollouts))
        (d / "train.json").write_text(json.dumps({"loss": float(k), "note": "not a number"}))
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()] if k else []
    rows.append({"iteration": k, "eval/greedy_accuracy": 0.1 * k, **({"train/loss": float(k)} if k else {})})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for the opt-in to a file store
    (tmp_path / "wandb").mkdir()
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"loop": {"iterations": 3}, "training": {"lr": 1e-3}}))
    for k in (0, 1, 2):
        write_iteration(run, k)
    return run


def logging_cfg(tmp_path, trackers=("tensorboard", "wandb", "mlflow")):
    return LoggingConfig(trackers=list(trackers), mlflow_uri=(tmp_path / "mlruns").as_uri(), tracker_samples=2)


def tensorboard_scalars(run) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list] = {}
    for f in sorted(glob.glob(str(run / "tensorboard" / "events.*"))):  # one file per session
        acc = EventAccumulator(f)
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, round(e.value, 6)) for e in acc.Scalars(tag))
    return out


def tensorboard_texts(run) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for f in glob.glob(str(run / "tensorboard" / "events.*")):
        acc = EventAccumulator(f, size_guidance={"tensors": 0})
        acc.Reload()
        tags |= set(acc.Tags()["tensors"])
    return tags


def mlflow_history(tmp_path, run, key: str) -> list[tuple[int, float]]:
    from mlflow.tracking import MlflowClient

    run_id = json.loads((run / "trackers.json").read_text())["mlflow"]["run_id"]
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    return sorted((m.step, round(m.value, 6)) for m in client.get_metric_history(run_id, key))


def wandb_records(tmp_path):
    """Every record of the offline runs' ``.wandb`` files (a LevelDB-style log of protobuf records)."""
    from wandb.proto import wandb_internal_pb2 as pb

    records = []
    for f in sorted(glob.glob(str(tmp_path / "wandb" / "wandb" / "offline-run-*" / "run-*.wandb"))):
        data, pos, chunk = open(f, "rb").read(), 7, b""
        assert data[:4] == b":W&B"
        while pos + 7 <= len(data):
            left = 32768 - pos % 32768
            _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
            if left < 7 or (length == 0 and kind == 0):  # the rest of a block is padding
                pos += left
                continue
            chunk += data[pos + 7 : pos + 7 + length]
            pos += 7 + length
            if kind in (1, 4):  # a full record, or the last piece of one
                record = pb.Record()
                record.ParseFromString(chunk)
                records.append(record)
                chunk = b""
    return records


def wandb_history(tmp_path, key: str, axis: str) -> list[tuple[int, float]]:
    out = []
    for r in wandb_records(tmp_path):
        if r.WhichOneof("record_type") == "history":
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
            if key in items:
                out.append((items[axis], round(items[key], 6)))
    return out


def test_all_three_trackers_log_each_iteration_once_across_resumes(run, tmp_path):
    cfg = logging_cfg(tmp_path)
    sync_trackers(run, cfg)
    expected_acc = [(0, 0.0), (1, 0.1), (2, 0.2)]
    expected_loss = [(1, 10.0), (2, 11.0), (3, 12.0), (4, 20.0), (5, 21.0)]  # steps counted over the run
    tb = tensorboard_scalars(run)
    assert tb["eval/greedy_accuracy"] == expected_acc and tb["train/loss"] == [(1, 1.0), (2, 2.0)]
    assert tb["train_step/loss"] == expected_loss
    assert {"config/text_summary", "samples/text_summary"} <= tensorboard_texts(run)
    assert mlflow_history(tmp_path, run, "eval/greedy_accuracy") == expected_acc
    assert mlflow_history(tmp_path, run, "train_step/loss") == expected_loss
    assert wandb_history(tmp_path, "eval/greedy_accuracy", "iteration") == expected_acc
    assert wandb_history(tmp_path, "train_step/loss", "train_step") == expected_loss
    state = json.loads((run / "trackers.json").read_text())
    assert {kind: s["iteration"] for kind, s in state.items()} == {"tensorboard": 2, "wandb": 2, "mlflow": 2}

    sync_trackers(run, cfg)  # a restart: nothing new, nothing logged
    write_iteration(run, 3)
    sync_trackers(run, cfg, through=2)  # iteration 3 not finished yet
    assert tensorboard_scalars(run)["eval/greedy_accuracy"] == expected_acc
    sync_trackers(run, cfg)
    new_loss = expected_loss + [(6, 30.0), (7, 31.0), (8, 32.0), (9, 33.0)]
    assert tensorboard_scalars(run)["eval/greedy_accuracy"] == [*expected_acc, (3, 0.3)]
    assert tensorboard_scalars(run)["train_step/loss"] == new_loss
    assert mlflow_history(tmp_path, run, "eval/greedy_accuracy") == [*expected_acc, (3, 0.3)]
    assert mlflow_history(tmp_path, run, "train_step/loss") == new_loss
    assert wandb_history(tmp_path, "train_step/loss", "train_step") == new_loss
    assert json.loads((run / "trackers.json").read_text())["wandb"]["run_id"] == state["wandb"]["run_id"]


def test_config_and_samples_reach_wandb_and_mlflow(run, tmp_path):
    from mlflow.tracking import MlflowClient

    sync_trackers(run, logging_cfg(tmp_path, ("wandb", "mlflow")))
    run_id = json.loads((run / "trackers.json").read_text())["mlflow"]["run_id"]
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    mlrun = client.get_run(run_id)
    assert mlrun.data.params["training.lr"] == "0.001" and mlrun.info.run_name == "r"
    table = json.loads(open(client.download_artifacts(run_id, "samples/iter_2.json")).read())
    assert table["columns"][:2] == ["prompt", "response"] and [row[0] for row in table["data"]] == ["2+0?", "2+1?"]
    records = wandb_records(tmp_path)
    config = next(r.config for r in records if r.WhichOneof("record_type") == "config" and r.config.update)
    assert any(item.key == "training" and "0.001" in item.value_json for item in config.update)
    tables = [
        r
        for r in records
        if r.WhichOneof("record_type") == "history" and any(i.nested_key[:1] == ["samples"] for i in r.history.item)
    ]
    assert len(tables) == 2  # iterations 1 and 2 have rollouts


def test_mlflow_samples_without_pandas_are_the_same_table_as_json(run, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setitem(sys.modules, "pandas", None)  # log_table needs pandas; mlflow-skinny does not bring it
    sync_trackers(run, logging_cfg(tmp_path, ("mlflow",)))
    run_id = json.loads((run / "trackers.json").read_text())["mlflow"]["run_id"]
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    table = json.loads(open(client.download_artifacts(run_id, "samples/iter_1.json")).read())
    assert table["columns"][0] == "prompt" and [row[0] for row in table["data"]] == ["1+0?", "1+1?"]


def test_only_rank_0_logs(run, tmp_path, monkeypatch):
    monkeypatch.setattr(distributed, "_CURRENT", distributed.Dist(rank=1, world_size=2))
    sync_trackers(run, logging_cfg(tmp_path))
    assert not (run / "trackers.json").exists() and not (run / "tensorboard").exists()


def test_a_missing_tracker_package_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what an environment without it gives: ImportError
    with pytest.raises(TrackerError) as err:
        check_trackers(["tensorboard", "mlflow"])
    assert str(err.value) == (
        "logging.trackers has mlflow, but the mlflow-skinny package is not installed: pip install 'itero[mlflow]'"
    )


def test_no_trackers_and_an_unknown_tracker(tmp_path):
    sync_trackers(tmp_path, LoggingConfig())  # nothing configured: no metrics.jsonl needed, nothing written
    assert not (tmp_path / "trackers.json").exists()
    with pytest.raises(ValueError, match="tensorboard"):
        LoggingConfig(trackers=["comet"])


TINY = [*TINY_RUN, "sft.steps=30", "loop.iterations=2"]  # the fast run, two iterations


@pytest.mark.slow
def test_a_run_with_tensorboard_has_one_point_per_iteration_and_a_rerun_adds_none(tmp_path):
    from itero.cli import main

    args = ["train", "configs/quickstart.yaml", *TINY, f"logging.run_dir={tmp_path}", "logging.name=r"]
    assert main([*args, "logging.trackers=[tensorboard]"]) == 0
    run = tmp_path / "r"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    expected = [(r["iteration"], round(r["eval/greedy_accuracy"], 6)) for r in metrics]
    assert [k for k, _ in expected] == [0, 1, 2]
    steps = sum(len((run / f"iter_{k}" / "train_steps.jsonl").read_text().splitlines()) for k in (1, 2))
    scalars = tensorboard_scalars(run)
    assert scalars["eval/greedy_accuracy"] == expected
    assert [s for s, _ in scalars["train_step/loss"]] == list(range(1, steps + 1))
    # a rerun resumes the finished run: tracker options change no result, so they do not refuse it
    assert main([*args, "logging.trackers=[tensorboard]", "logging.tracker_samples=2"]) == 0
    assert tensorboard_scalars(run)["eval/greedy_accuracy"] == expected
