"""The three backends. Each imports its library when opened, and keeps what a resumed run needs to
continue the same tracker run (a run id) in ``state``, which the caller saves in ``trackers.json``."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from itero.tracking.trackers.base import Tracker, flatten, require

SAMPLE_COLUMNS = ("prompt", "response", "answer", "reward", "correct")


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", "<br>")


def markdown_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(SAMPLE_COLUMNS) + " |", "|" + "---|" * len(SAMPLE_COLUMNS)]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in SAMPLE_COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


class TensorBoardTracker:
    """Event files in ``<run>/tensorboard/``; a resumed run adds a new event file to the same folder."""

    def __init__(self, run_dir: Path, name: str, cfg: Any, state: dict) -> None:
        require("tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def log_config(self, config: dict) -> None:
        text = yaml.safe_dump(config, sort_keys=False)
        self.writer.add_text("config", "```\n" + text + "```", global_step=0)

    def log_scalars(self, metrics: dict[str, float], step: int, axis: str = "iteration") -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, global_step=step)

    def log_samples(self, rows: list[dict], step: int) -> None:
        self.writer.add_text("samples", markdown_table(rows), global_step=step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    """One W&B run per run directory, resumed by the id kept in ``state``. ``WANDB_MODE=offline`` keeps
    it on disk (``wandb sync`` uploads it later); files go to ``$WANDB_DIR``, else ``<run>/wandb/``."""

    def __init__(self, run_dir: Path, name: str, cfg: Any, state: dict) -> None:
        wandb = require("wandb")
        self.wandb = wandb
        state.setdefault("run_id", uuid.uuid4().hex[:12])
        self.run = wandb.init(
            project=cfg.project,
            name=name,
            id=state["run_id"],
            resume="allow",
            dir=os.environ.get("WANDB_DIR") or str(run_dir),
        )
        self.defined: set[str] = set()

    def log_config(self, config: dict) -> None:
        self.run.config.update(config, allow_val_change=True)

    def log_scalars(self, metrics: dict[str, float], step: int, axis: str = "iteration") -> None:
        self._define(metrics, axis)
        self.run.log({**metrics, axis: step})

    def _define(self, keys, axis: str) -> None:
        # W&B has one step counter per run: each metric is plotted against its own axis instead
        for key in set(keys) - self.defined:
            self.run.define_metric(key, step_metric=axis)
            self.defined.add(key)

    def log_samples(self, rows: list[dict], step: int) -> None:
        table = self.wandb.Table(columns=list(SAMPLE_COLUMNS), data=[[r.get(c) for c in SAMPLE_COLUMNS] for r in rows])
        self._define(["samples"], "iteration")
        self.run.log({"samples": table, "iteration": step})

    def flush(self) -> None:
        pass  # W&B's service process stores what run.log handed it, also when this process dies

    def close(self) -> None:
        self.run.finish()


class MlflowTracker:
    """One MLflow run per run directory in the experiment ``logging.project``, resumed by its id.
    The tracking URI: ``logging.mlflow_uri``, else ``$MLFLOW_TRACKING_URI``, else MLflow's default."""

    def __init__(self, run_dir: Path, name: str, cfg: Any, state: dict) -> None:
        require("mlflow")
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient

        self.Metric, self.Param = Metric, Param
        self.client = MlflowClient(tracking_uri=cfg.mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI") or None)
        if "run_id" in state:
            self.client.update_run(state["run_id"], status="RUNNING")
        else:
            experiment = self.client.get_experiment_by_name(cfg.project)
            eid = experiment.experiment_id if experiment else self.client.create_experiment(cfg.project)
            state["run_id"] = self.client.create_run(eid, run_name=name).info.run_id
        self.run_id = state["run_id"]
        self.pending: list = []  # one request per iteration, not per optimizer step (a server is remote)

    def log_config(self, config: dict) -> None:
        self.client.log_dict(self.run_id, config, "config.json")
        params = [self.Param(k, str(v)[:500]) for k, v in flatten(config).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per call
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    def log_scalars(self, metrics: dict[str, float], step: int, axis: str = "iteration") -> None:
        now = int(time.time() * 1000)
        self.pending += [self.Metric(k, v, now, step) for k, v in metrics.items()]

    def log_samples(self, rows: list[dict], step: int) -> None:
        data = {c: [r.get(c) for r in rows] for c in SAMPLE_COLUMNS}
        path = f"samples/iter_{step}.json"
        try:
            self.client.log_table(self.run_id, data=data, artifact_file=path)
        except ImportError:  # log_table needs pandas; the same table as JSON, in the layout it writes
            table = {"columns": list(SAMPLE_COLUMNS), "data": [[r.get(c) for c in SAMPLE_COLUMNS] for r in rows]}
            self.client.log_text(self.run_id, json.dumps(table), path)

    def flush(self) -> None:
        for i in range(0, len(self.pending), 1000):  # and at most 1000 metrics
            self.client.log_batch(self.run_id, metrics=self.pending[i : i + 1000])
        self.pending = []

    def close(self) -> None:
        self.flush()
        self.client.set_terminated(self.run_id)


BACKENDS = {"tensorboard": TensorBoardTracker, "wandb": WandbTracker, "mlflow": MlflowTracker}


def open_tracker(kind: str, run_dir: Path, name: str, cfg: Any, state: dict) -> Tracker:
    return BACKENDS[kind](run_dir, name, cfg, state)
