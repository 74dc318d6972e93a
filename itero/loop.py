"""The online loop: SFT warm-up, then per iteration generate → score → prepare → train → evaluate.

Each stage returns its output and metrics; the resume layer writes them, the output last, whose
appearing marks the stage done, so a run restarted after a crash or Ctrl-C continues at the first
unfinished stage and ends with the same numbers. Iterative DPO and on-policy methods differ only in config:
prompts per iteration, epochs per iteration and which model is the reference. The loop never reads
an algorithm's config fields: it asks the algorithm's module (``algorithms/base.py``).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import torch

from itero import distributed
from itero.algorithms import ALGORITHMS
from itero.algorithms.base import PreRun
from itero.config import Config, dump_config, upgraded_config_text
from itero.evaluation.stages import evaluate, evaluate_on_benchmarks
from itero.runtime import Runtime, build_base_model, build_runtime, preflight
from itero.stages.iteration_state import iteration_config, state_before
from itero.stages.prepare import prepare
from itero.stages.rollouts import generate, score
from itero.stages.sft import stopped_on_divergence, warm_up
from itero.stages.train import train
from itero.tracking.metrics import write_metrics
from itero.tracking.resume import StageFolder
from itero.tracking.rundir import config_sha, prepare_run_dir
from itero.tracking.trackers import check_trackers, sync_trackers


def run(cfg: Config, *, force: bool = False, new: bool = False) -> Path:
    """The whole run; under ``torchrun`` / ``accelerate launch`` every rank calls this (itero/distributed.py)."""
    torch.manual_seed(cfg.loop.seed)
    dist = distributed.init()
    if not dist.is_main:  # one progress display and one log, from rank 0
        cfg = cfg.model_copy(update={"logging": cfg.logging.model_copy(update={"progress": False})})
    task = preflight(cfg)
    check_trackers(cfg.logging.trackers)  # a missing tracker package fails now, not after SFT
    config_text = dump_config(cfg)
    run_dir = dist.broadcast_object(
        prepare_run_dir(cfg.run_path, config_text, force=force, new=new, upgrade=upgraded_config_text)
        if dist.is_main
        else None
    )
    if dist.is_main:
        build_base_model(cfg, run_dir)  # the tiny model is built once, then every rank loads it
    dist.barrier()
    rt = build_runtime(cfg, run_dir, task)
    rt.config_sha = config_sha(config_text)
    start = warm_up(rt)
    for pre in rt.algo.schedule(cfg.algorithm).pre_runs:
        pre_run(rt, pre, start)
    iterations(rt, start)
    return run_dir


def iterations(rt: Runtime, start: Path | None) -> Path | None:
    for k in range(1, rt.cfg.loop.iterations + 1):
        start = iteration(rt, k, start)
        write_metrics(rt.run)
        sync_trackers(rt.run, rt.cfg.logging, through=k)
    return start


def pre_run(rt: Runtime, pre: PreRun, start: Path | None) -> None:
    """A run the algorithm asks for before its first iteration (RTO's DPO model), in ``<run>/<folder>/``:
    the same stages from the initial policy, so it resumes like the rest; it shares this run's model
    pool, so the policy then holds its result."""
    sub_cfg = pre_run_config(rt.cfg, pre)
    sub = dataclasses.replace(rt, cfg=sub_cfg, run=rt.run / pre.folder, algo=ALGORITHMS[sub_cfg.algorithm.name])
    iterations(sub, start)
    rt.learner.end_phase()


def pre_run_config(cfg: Config, pre: PreRun) -> Config:
    """The pre-run's config: this run's, with the pre-run's algorithm, iterations and learning rate."""
    return cfg.model_copy(
        update={
            "algorithm": pre.algorithm,
            "training": cfg.training.model_copy(update={"lr": pre.lr or cfg.training.lr}),
            "loop": cfg.loop.model_copy(update={"iterations": pre.iterations}),
        }
    )


def iteration(rt: Runtime, k: int, start: Path | None) -> Path:
    """Iteration k from the policy ``start`` holds: each stage a function over the batch the one before
    returned, run (or, when its output exists, skipped) by the resume layer (``tracking/resume.py``)."""
    it = StageFolder(rt.run / f"iter_{k}", rt.config_sha, previous=rt.run / f"iter_{k - 1}" if k > 1 else None)
    algorithm = iteration_config(rt.algo, rt.cfg.algorithm, it)  # an adaptive KL's β as iteration k-1 left it
    with stopped_on_divergence(rt.cfg, f"iteration {k}", start):
        rollouts = it.run("generate", "rollouts.pt", lambda: generate(rt, k, start, it.previous_metrics("generate")))
        scored = it.run("score", "scored.pt", lambda b: score(rt.reward, it.previous_state("reward_norm"), b), rollouts)
        carried = functools.partial(state_before, rt.algo, rt.cfg.algorithm, it)
        prepared = it.run("prepare", "prepared.pt", lambda b: prepare(rt, k, start, carried(), b), scored)
        checkpoint = it.run("train", "checkpoint", lambda b: train(rt, k, start, algorithm, b), prepared)
    rt.models.ensure_policy(checkpoint)  # on every rank: a vLLM engine's sync of a sharded policy is a collective
    e, last = rt.cfg.eval, k == rt.cfg.loop.iterations
    if k % e.every == 0 or last:
        evaluate(rt, it.path, checkpoint)
    if e.benchmarks and (k % e.benchmarks_every == 0 or last):
        evaluate_on_benchmarks(rt, it.path, checkpoint)
    return checkpoint
