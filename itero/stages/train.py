"""The train stage: the algorithm's loss through the learner, then its critic when it has one, and
the checkpoint that marks the iteration trained (the resume layer writes it with ``save_checkpoint``).
The learner never sees the algorithm's config; the algorithm's ``schedule`` says what differs (a
frozen actor, a restart from the initial policy)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from itero.batch import RolloutBatch
from itero.models import lora
from itero.runtime import Runtime
from itero.stages.context import LearnerContext, critic_for
from itero.stages.prepare import logprob_temperature
from itero.tracking import progress
from itero.tracking.resume import StageOutput
from itero.tracking.rundir import atomic_dir


def train(rt: Runtime, k: int, start: Path | None, cfg: Any, batch: RolloutBatch) -> StageOutput:
    """Iteration k's optimizer steps on the prepared ``batch`` from the policy ``start`` holds, with
    ``cfg`` the algorithm config of this iteration (its carried state in)."""
    algo, t = rt.algo, rt.cfg.training
    plan, models = algo.schedule(cfg), algo.models_needed(cfg)
    rt.models.ensure_policy(rt.models.initial_checkpoint if plan.restart_from_base else start)
    units = batch.batch_size // algo.rows_per_unit
    steps = rt.learner.num_steps(units, t.epochs)
    metrics: dict = {"steps": steps}
    per_step: list[dict] = []
    if units:
        rt.models.release_generator()
        reset = t.reset_optimizer_each_iteration or plan.restart_from_base
        temperature = logprob_temperature(rt)
        fit_args = dict(rows_per_unit=algo.rows_per_unit, epochs=t.epochs, seed=rt.cfg.loop.seed * 31 + k)
        fit_args["temperature"] = temperature
        # one optimizer kept across iterations gets one schedule over the whole run (this iteration's
        # step count × iterations), or its cosine would reach 0 at the end of iteration 1
        horizon = steps if reset else steps * rt.cfg.loop.iterations
        warmup = plan.actor_frozen_iterations
        if k <= warmup:  # the policy stays as it is; the checkpoint below saves it unchanged
            metrics["actor_frozen"] = 1.0
        else:
            actor_horizon = steps if reset else steps * (rt.cfg.loop.iterations - warmup)
            rt.learner.start_phase(actor_horizon, reset=reset)
            if not reset and start is not None and (start / "trainer_state.pt").exists():
                rt.learner.load_state(start, actor_horizon)
            loss = algo.learner_loss(cfg, LearnerContext(rt, start, models, temperature))
            with progress.stage(f"[iter {k}] train", steps, rt.cfg.logging.progress) as advance:
                metrics.update(
                    rt.learner.fit(batch, loss, **fit_args, on_step=lambda i, m: (per_step.append(m), advance(1)))
                )
        if plan.critic_lr is not None:
            critic = critic_for(rt, start, models)
            critic.start_phase(horizon, reset=reset)
            with progress.stage(f"[iter {k}] train value model", steps, rt.cfg.logging.progress) as advance:
                value_metrics = critic.fit(
                    batch, lambda mb, v: algo.value_loss(mb, v, cfg), **fit_args, on_step=lambda i, m: advance(1)
                )
            metrics.update(
                {f"value_{key}" if not key.startswith("value") else key: v for key, v in value_metrics.items()}
            )
    return StageOutput(
        metrics,
        write=functools.partial(save_checkpoint, rt, with_optimizer=not t.reset_optimizer_each_iteration),
        rows={"train_steps": per_step},  # every optimizer step's diagnostics
    )


def save_checkpoint(rt: Runtime, path: Path, with_optimizer: bool) -> None:
    with atomic_dir(path) as tmp:
        rt.learner.save(tmp, with_optimizer=with_optimizer)
        if lora.is_lora(rt.policy):  # the learner wrote the adapters: they name their base
            # relative inside the run directory the pool belongs to (a pre-run's is its outer run's)
            lora.point_to_base(tmp, rt.policy.itero_base, final=path, run=rt.models.run)
        rt.tokenizer.save_pretrained(tmp)
        if rt.models.critic is not None and path.name == "checkpoint" and path.parent.name.startswith("iter_"):
            rt.models.critic.save(tmp / "value_model", with_optimizer=with_optimizer)
    rt.models.policy_source = path
    if (path / "value_model").exists():
        rt.models.critic_source = str(path / "value_model")
