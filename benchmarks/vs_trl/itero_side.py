"""itero's side of the race, in its own process: ``itero.loop``'s stages round after round until the
wall-clock budget, one line per finished round in ``rounds.jsonl``.

The clock starts after the model is loaded (as TRL's ``on_train_begin``), and the process leaves
when the budget is spent, wherever it is: only rounds whose checkpoint was saved are recorded.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from .settings import Job, itero_overrides


def stop_at(deadline_s: float) -> None:
    """Leave the process once ``deadline_s`` seconds have passed, mid-stage or not."""
    timer = threading.Timer(deadline_s, lambda: os._exit(0))
    timer.daemon = True
    timer.start()


def round_record(d: Path, k: int, seconds: float) -> dict:
    stages = json.loads((d / "time.json").read_text())  # wall-clock seconds per stage (tracking.rundir)
    gen = json.loads((d / "generate.json").read_text())
    train = json.loads((d / "train.json").read_text())
    return {
        "round": k,
        "seconds": seconds,  # since the clock started, at the checkpoint's save
        "checkpoint": str(d / "checkpoint"),
        "tokens": gen["tokens"],
        "optimizer_steps": train["steps"],
        # generate | score + old log-probs | train: the split TRL's timing callback makes
        "stages": {
            "generate": stages.get("generate", 0.0),
            "score_and_old_logprobs": stages.get("score", 0.0) + stages.get("prepare", 0.0),
            "train": stages.get("train", 0.0),
        },
    }


def run(job: Job, sft: str, out: Path, seconds: float, threads: int) -> None:
    import torch

    from itero import distributed
    from itero.config import dump_config, load_config
    from itero.loop import iteration
    from itero.runtime import build_base_model, build_runtime, preflight
    from itero.tracking.rundir import config_sha, prepare_run_dir

    torch.set_num_threads(threads)
    cfg = load_config(job.config, [*job.sft_overrides, *itero_overrides(job, sft, str(out))])
    torch.manual_seed(cfg.loop.seed)
    distributed.init()
    task = preflight(cfg)
    text = dump_config(cfg)
    run_dir = prepare_run_dir(cfg.run_path, text)
    build_base_model(cfg, run_dir)
    rt = build_runtime(cfg, run_dir, task)
    rt.config_sha = config_sha(text)
    rt.models.ensure_policy(None)  # the SFT weights loaded before the clock starts
    log = open(out / "rounds.jsonl", "a")
    t0 = time.perf_counter()
    log.write(json.dumps({"start": time.time(), "torch_threads": torch.get_num_threads()}) + "\n")
    log.flush()
    stop_at(seconds)
    start = None
    for k in range(1, cfg.loop.iterations + 1):
        start = iteration(rt, k, start)
        log.write(json.dumps(round_record(run_dir / f"iter_{k}", k, time.perf_counter() - t0)) + "\n")
        log.flush()
