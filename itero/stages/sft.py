"""The SFT warm-up on the task's worked solutions, before RL; and the divergence message every
training stage shares."""

from __future__ import annotations

import contextlib
import functools
import random
from pathlib import Path

from itero.algorithms import sft
from itero.errors import DivergenceError
from itero.evaluation.stages import evaluate, evaluate_on_benchmarks
from itero.runtime import Runtime
from itero.stages.train import save_checkpoint
from itero.tracking import progress
from itero.tracking.metrics import write_metrics
from itero.tracking.resume import StageFolder, StageOutput
from itero.tracking.trackers import sync_trackers


def warm_up(rt: Runtime) -> Path | None:
    """SFT on the task's worked solutions; returns the checkpoint RL starts from (None = base model)."""
    if rt.cfg.sft.enabled:
        StageFolder(rt.run / "sft", rt.config_sha).run("train", "checkpoint", functools.partial(sft_train, rt))
    rt.models.ensure_policy(rt.models.initial_checkpoint)  # on every rank (see iteration)
    rt.models.adapt_policy()  # model.lora: SFT trained every weight; RL trains adapters on top of its result
    d = rt.run / "sft"
    evaluate(rt, d, rt.models.initial_checkpoint)
    if rt.cfg.eval.benchmarks:
        evaluate_on_benchmarks(rt, d, rt.models.initial_checkpoint)
    write_metrics(rt.run)
    sync_trackers(rt.run, rt.cfg.logging, through=0)
    return rt.models.initial_checkpoint


def sft_train(rt: Runtime) -> StageOutput:
    cfg = rt.cfg.sft
    examples = [p for p in rt.task.train if p.solution][: cfg.num_examples]  # preflight: not empty
    prompts = [rt.encode(rt.task.render(p)) for p in examples]
    responses = [rt.encode(p.solution) + [rt.tokenizer.eos_token_id] for p in examples]
    rng = random.Random(rt.cfg.loop.seed)
    rt.models.release_generator()
    rt.learner.start_phase(cfg.steps, reset=True, lr=cfg.lr, warmup_ratio=cfg.warmup_ratio)
    losses = []
    with (
        stopped_on_divergence(rt.cfg, "SFT warm-up", None),
        progress.stage("[sft] warm-up", cfg.steps, rt.cfg.logging.progress) as advance,
    ):
        for _ in range(cfg.steps):
            idx = [rng.randrange(len(examples)) for _ in range(cfg.batch_size)]
            mb = sft.prepare(
                sft.make_batch([prompts[i] for i in idx], [responses[i] for i in idx], rt.tokenizer.pad_token_id)
            )
            units = list(range(cfg.batch_size))
            losses.append(
                rt.learner.step(mb, units, cfg.batch_size, sft.loss, micro_batch_size=cfg.micro_batch_size)["loss"]
            )
            advance(1)
    metrics = {"loss_first": losses[0], "loss_last": sum(losses[-10:]) / len(losses[-10:]), "steps": cfg.steps}

    def write(path: Path) -> None:
        save_checkpoint(rt, path, with_optimizer=False)
        rt.learner.end_phase()  # RL starts its own schedule, also when it keeps one optimizer across iterations

    return StageOutput(metrics, write=write)


@contextlib.contextmanager
def stopped_on_divergence(cfg, where: str, last_good: Path | None):
    """A DivergenceError from training, said with where it happened, what survives and what to change."""
    try:
        yield
    except DivergenceError as err:
        resume = last_good if last_good is not None else "the start of the run"
        raise DivergenceError(
            f"{where}: training diverged: {err}. Nothing of that stage was saved; the run resumes from "
            f"{resume}. Likely causes: the learning rate (training.lr={cfg.training.lr}, sft.lr={cfg.sft.lr}) "
            f"or the reward scale (reward.*); lower it and rerun the same command with --force"
        ) from None
