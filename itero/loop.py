"""The online loop: SFT warm-up, then per iteration generate → score → prepare → train → evaluate.

Each stage writes its metrics (``<stage>.json``) and then its output; the output appearing is what
marks the stage done, so a run restarted after a crash or Ctrl-C continues at the first unfinished
stage and ends with the same numbers. Iterative DPO and on-policy methods differ only in config:
prompts per iteration, epochs per iteration and which model is the reference.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import random
import time
from pathlib import Path

import torch

from itero import distributed
from itero.algorithms import ALGORITHMS, sft
from itero.algorithms.policy_gradient import apply_negative_weight
from itero.batch import RolloutBatch
from itero.config import Config, dump_config
from itero.core.advantages import outcome_to_token_rewards, zero_variance_group_fraction
from itero.core.importance import tis_weights
from itero.core.masked import explained_variance
from itero.errors import DivergenceError
from itero.evaluation.stages import evaluate, evaluate_on_benchmarks
from itero.mc_values import mc_rollout
from itero.models.loading import load_model
from itero.old_logprobs import old_logprobs, sampler_is_the_policy
from itero.runtime import Runtime, build_base_model, build_runtime, preflight
from itero.samplers import sources
from itero.tracking import progress
from itero.tracking.metrics import write_metrics
from itero.tracking.rundir import (
    atomic_dir,
    atomic_torch_save,
    atomic_write_json,
    atomic_write_jsonl,
    config_sha,
    load_stage,
    prepare_run_dir,
    record_stage,
)
from itero.tracking.trackers import check_trackers, sync_trackers
from itero.training.learner import compute_logprobs, forward_logits


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
        prepare_run_dir(cfg.run_path, config_text, force=force, new=new) if dist.is_main else None
    )
    if dist.is_main:
        build_base_model(cfg, run_dir)  # the tiny model is built once, then every rank loads it
    dist.barrier()
    rt = build_runtime(cfg, run_dir, task)
    rt.config_sha = config_sha(config_text)
    start = warm_up(rt)
    if getattr(cfg.algorithm, "dpo_iterations", 0):
        train_dpo_model(rt, start)
    for k in range(1, cfg.loop.iterations + 1):
        start = iteration(rt, k, start)
        write_metrics(run_dir)
        sync_trackers(run_dir, cfg.logging, through=k)
    return run_dir


def warm_up(rt: Runtime) -> Path | None:
    """SFT on the task's worked solutions; returns the checkpoint RL starts from (None = base model)."""
    cfg, d = rt.cfg.sft, rt.run / "sft"
    if cfg.enabled and pending(d / "checkpoint"):
        examples = [p for p in rt.task.train if p.solution][: cfg.num_examples]  # preflight: not empty
        prompts = [rt.encode(rt.task.render(p)) for p in examples]
        responses = [rt.encode(p.solution) + [rt.tokenizer.eos_token_id] for p in examples]
        rng = random.Random(rt.cfg.loop.seed)
        rt.learner.start_phase(cfg.steps, reset=True, lr=cfg.lr, warmup_ratio=cfg.warmup_ratio)
        losses = []
        with (
            stopped_on_divergence(rt, "SFT warm-up", None),
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
        atomic_write_json(
            d / "train.json",
            {"loss_first": losses[0], "loss_last": sum(losses[-10:]) / len(losses[-10:]), "steps": cfg.steps},
        )
        save_checkpoint(rt, d / "checkpoint", with_optimizer=False)
        record_stage(d, "sft", rt.config_sha)
        rt.learner.end_phase()  # RL starts its own schedule, also when it keeps one optimizer across iterations
    rt.ensure_policy(rt.initial_checkpoint)  # on every rank (see iteration)
    evaluate(rt, d, rt.initial_checkpoint)
    if rt.cfg.eval.benchmarks:
        evaluate_on_benchmarks(rt, d, rt.initial_checkpoint)
    write_metrics(rt.run)
    sync_trackers(rt.run, rt.cfg.logging, through=0)
    return rt.initial_checkpoint


def train_dpo_model(rt: Runtime, start: Path | None) -> None:
    """RTO's DPO model trained first, in the same run: iterative DPO from the initial policy, as a
    sub-run in ``<run>/dpo_model/`` (same stages, so it resumes like the rest)."""
    a = rt.cfg.algorithm
    sub = dataclasses.replace(rt, cfg=dpo_model_config(rt.cfg), run=rt.run / "dpo_model", algo=ALGORITHMS["dpo"])
    for k in range(1, a.dpo_iterations + 1):
        start = iteration(sub, k, start)
        write_metrics(sub.run)
        sync_trackers(sub.run, sub.cfg.logging, through=k)
    rt.policy_source, rt.generator_source = sub.policy_source, sub.generator_source  # the policy now holds π_dpo
    rt.learner.end_phase()


def dpo_model_config(cfg: Config) -> Config:
    """The sub-run's config: RTO's run with an iterative-DPO section built from its ``dpo_*`` keys."""
    a = cfg.algorithm
    return cfg.model_copy(
        update={
            "algorithm": ALGORITHMS["dpo"].Config(loss=a.dpo_loss, beta=a.dpo_beta, nll_weight=a.dpo_nll_weight),
            "training": cfg.training.model_copy(update={"lr": a.dpo_lr or cfg.training.lr}),
            "loop": cfg.loop.model_copy(update={"iterations": a.dpo_iterations}),
        }
    )


def dpo_model_path(rt: Runtime) -> str:
    """RTO's frozen DPO model: the configured folder, or the one ``train_dpo_model`` wrote."""
    a = rt.cfg.algorithm
    return a.dpo_model_path or str(rt.run / "dpo_model" / f"iter_{a.dpo_iterations}" / "checkpoint")


def iteration(rt: Runtime, k: int, start: Path | None) -> Path:
    d = rt.run / f"iter_{k}"
    for output, stage in (
        ("rollouts.pt", generate),
        ("scored.pt", score),
        ("prepared.pt", prepare),
        ("checkpoint", train),
    ):
        if pending(d / output):
            t0 = time.perf_counter()
            with stopped_on_divergence(rt, f"iteration {k}", start):
                stage(rt, d, k, start)
            record_stage(d, stage.__name__, rt.config_sha, time.perf_counter() - t0)
            distributed.current().barrier()  # rank 0 has written the stage's output; the others read it
    rt.ensure_policy(d / "checkpoint")  # on every rank: a vLLM engine's sync of a sharded policy is a collective
    if k % rt.cfg.eval.every == 0 or k == rt.cfg.loop.iterations:
        evaluate(rt, d, d / "checkpoint")
    e = rt.cfg.eval
    if e.benchmarks and (k % e.benchmarks_every == 0 or k == rt.cfg.loop.iterations):
        evaluate_on_benchmarks(rt, d, d / "checkpoint")
    return d / "checkpoint"


@contextlib.contextmanager
def stopped_on_divergence(rt: Runtime, where: str, last_good: Path | None):
    """A DivergenceError from training, said with where it happened, what survives and what to change."""
    try:
        yield
    except DivergenceError as err:
        resume = last_good if last_good is not None else "the start of the run"
        raise DivergenceError(
            f"{where}: training diverged: {err}. Nothing of that stage was saved; the run resumes from "
            f"{resume}. Likely causes: the learning rate (training.lr={rt.cfg.training.lr}, sft.lr={rt.cfg.sft.lr}) "
            f"or the reward scale (reward.*); lower it and rerun the same command with --force"
        ) from None


def pending(output: Path) -> bool:
    """Whether a stage still has to run, as rank 0 sees it: all ranks must take the same branch."""
    return distributed.current().broadcast_object(not output.exists())


def prompts_for(rt: Runtime, k: int) -> list:
    """Iteration k's prompts: consecutive slices of one seeded shuffle of the training problems."""
    pool = list(rt.task.train)
    random.Random(rt.cfg.loop.seed).shuffle(pool)
    n = rt.cfg.loop.prompts_per_iteration
    offset = 0 if rt.cfg.loop.same_prompts_every_iteration else ((k - 1) * n) % max(len(pool), 1)
    return (pool + pool)[offset : offset + n]


def generate(rt: Runtime, d: Path, k: int, start: Path | None) -> None:
    rt.ensure_policy(start)
    problems = prompts_for(rt, k)
    params = rt.sampling_params(seed=rt.cfg.loop.seed * 100_003 + k)
    g = rt.cfg.generation
    plan = sources.plan(
        g.sampler if k >= g.sampler_from_iteration else "online", g.n_samples_per_prompt, g.mixp_on_policy_samples
    )
    t0, parts, chunk, dist = time.perf_counter(), [], g.prompts_per_call, distributed.current()
    with progress.stage(f"[iter {k}] generate", len(problems), rt.cfg.logging.progress) as advance:
        for s in range(0, len(problems), chunk):
            if not dist.mine(s // chunk):  # data parallel: chunk i on rank i mod W, seeded by its offset
                continue
            ps = problems[s : s + chunk]
            texts = [rt.task.render(p) for p in ps]
            b = sources.generate(
                rt.generator,
                rt.initial_policy,
                [rt.encode(t) for t in texts],
                dataclasses.replace(params, seed=params.seed + s),
                plan,
                prompt_texts=texts,
                answers=[p.answer for p in ps],
            )
            parts.append((s, b.to("cpu").replace(group_ids=b.group_ids.cpu() + s)))
            advance(len(ps) * dist.world_size)
    parts = sorted((p for rank_parts in dist.gather_objects(parts) for p in rank_parts), key=lambda p: p[0])
    batch = RolloutBatch.concat([b for _, b in parts], rt.tokenizer.pad_token_id)
    seconds = time.perf_counter() - t0
    tokens = int(batch.response_lengths.sum())
    atomic_write_json(
        d / "generate.json",
        {
            "tokens": tokens,
            "seconds": seconds,
            "tokens_per_second": tokens / seconds,
            "response_length": float(batch.response_lengths.float().mean()),
            "truncation_rate": float(batch.truncated.float().mean()),
        },
    )
    atomic_torch_save(d / "rollouts.pt", batch)


def score(rt: Runtime, d: Path, k: int, start: Path | None = None) -> None:
    batch = load_stage(d / "rollouts.pt")
    norm = getattr(rt.reward, "norm", None)  # a reward model's running normalisation
    if norm is not None:  # continue from the state iteration k-1 left, whatever ran (evaluation, a crash) since
        previous = rt.run / f"iter_{k - 1}" / "reward_norm.json"
        if previous.exists():
            norm.load_state_dict(json.loads(previous.read_text()))
        else:
            norm.reset()
    rewards, correct = rt.reward.grade(batch.response_texts, batch.answers, prompts=batch.prompt_texts)
    if norm is not None:
        atomic_write_json(d / "reward_norm.json", norm.state_dict())
    scores = torch.tensor(rewards, dtype=torch.float32)
    batch = batch.replace(scores=scores, rewards=outcome_to_token_rewards(scores, batch.response_mask))
    atomic_write_jsonl(
        d / "rollouts.jsonl",
        [
            {"prompt": p, "response": r, "answer": a, "reward": s, "correct": c, "truncated": bool(t)}
            for p, r, a, s, c, t in zip(
                batch.prompt_texts, batch.response_texts, batch.answers, rewards, correct, batch.truncated
            )
        ],
    )
    atomic_write_json(
        d / "score.json",
        {
            "reward_mean": float(scores.mean()),
            "sample_accuracy": sum(correct) / len(correct),
            "frac_zero_variance_groups": zero_variance_group_fraction(scores, batch.group_ids),
            **getattr(rt.reward, "last_metrics", {}),  # reward.functions: each function's mean, <name>_mean
        },
    )
    atomic_torch_save(d / "scored.pt", batch)


def logprob_temperature(rt: Runtime) -> float:
    """Temperature of every log-prob a policy-gradient ratio / KL uses: the sampling one (TRL, VinePPO)."""
    cfg, T = rt.cfg.algorithm, rt.cfg.generation.temperature
    return T if getattr(cfg, "logprobs_at_sampling_temperature", False) and T > 0 else 1.0


def prepare(rt: Runtime, d: Path, k: int, start: Path | None) -> None:
    batch = load_stage(d / "scored.pt")
    algo, cfg, mbs, temp = rt.algo, rt.cfg.algorithm, rt.cfg.training.micro_batch_size, logprob_temperature(rt)
    # frozen passes: each rank its rows, then gathered (the same count on every rank for a sharded model)
    per_rank = functools.partial(distributed.current().map_rows, balanced=rt.learner.sharded)
    selected, stats = algo.select(batch, cfg, torch.Generator().manual_seed(rt.cfg.loop.seed * 7919 + k))
    if getattr(cfg, "needs_reference", False) and selected.batch_size:
        rt.ensure_policy(start)
        ref_model = rt.policy if cfg.reference == "previous" else rt.initial_policy()
        selected = selected.replace(
            ref_logprobs=per_rank(lambda b: compute_logprobs(ref_model, b, mbs, temp), selected)
        )
    if getattr(cfg, "needs_old_logprobs", False) and selected.batch_size:
        # π_old of the clipped ratio: the policy that sampled, through the learner's forward; with the
        # previous iterate as reference that is the same forward as ref_logprobs above
        if selected.ref_logprobs is not None and cfg.reference == "previous":
            old = selected.ref_logprobs
        else:
            rt.ensure_policy(start)
            forward = functools.partial(per_rank, lambda b: compute_logprobs(rt.policy, b, mbs, temp))
            old, old_stats = old_logprobs(selected, forward, mbs, sampler_is_the_policy(rt.cfg, k, temp))
            stats.update(old_stats)
        selected = selected.replace(old_logprobs=old)
    if getattr(cfg, "needs_dpo_model", False) and selected.batch_size:
        dpo_model = rt.frozen_model(dpo_model_path(rt))
        selected = selected.replace(
            dpo_logprobs=per_rank(lambda b: compute_logprobs(dpo_model, b, mbs, temp), selected)
        )
    if getattr(cfg, "needs_value_model", False) and cfg.needs_critic and selected.batch_size:
        from itero.models.value import compute_values

        critic = rt.ensure_critic(start).model
        selected = selected.replace(values=per_rank(lambda b: compute_values(critic, b, mbs), selected))
    if getattr(cfg, "needs_mc_values", False) and selected.batch_size:
        rt.ensure_policy(start)
        rollout = mc_rollout(rt, selected, k)
        selected, mc_stats = algo.estimate_advantages(selected, cfg, rt.tokenizer, rollout)
        stats.update(mc_stats, mc_tokens=rollout.counted["tokens"])
    prepared = apply_negative_weight(algo.prepare(selected, cfg), cfg) if selected.batch_size else selected
    cap = rt.cfg.generation.tis_cap
    if cap is not None and prepared.token_weights is not None and prepared.old_logprobs is not None:
        # truncated importance sampling: the engine sampled from π_sampler, the learner's π_old differs a little
        w = tis_weights(prepared.old_logprobs, prepared.sampler_logprobs, prepared.response_mask, cap)
        prepared = prepared.replace(token_weights=prepared.token_weights * w)
        stats.update(tis_weight_mean=float(w[prepared.response_mask].mean()))
    mask = prepared.response_mask
    if prepared.advantages is not None and int(mask.sum()) > 1:
        adv = prepared.advantages[mask]  # over valid tokens, as verl logs them
        stats.update(advantage_mean=float(adv.mean()), advantage_std=float(adv.std()))
    if prepared.values is not None and prepared.returns is not None and int(mask.sum()) > 1:
        stats.update(explained_variance=explained_variance(prepared.values, prepared.returns, mask))
    atomic_write_jsonl(
        d / "selected.jsonl",
        [
            {"group": int(g), "response": r, "reward": float(s)}
            for g, r, s in zip(prepared.group_ids, prepared.response_texts, prepared.scores)
        ],
    )
    atomic_write_json(d / "prepare.json", stats)
    atomic_torch_save(d / "prepared.pt", prepared)


def train(rt: Runtime, d: Path, k: int, start: Path | None) -> None:
    batch = load_stage(d / "prepared.pt")
    cfg, t = rt.cfg.algorithm, rt.cfg.training
    restart = getattr(cfg, "restart_from_base", False)
    rt.ensure_policy(rt.initial_checkpoint if restart else start)
    units = batch.batch_size // rt.algo.rows_per_unit
    steps = rt.learner.num_steps(units, t.epochs)
    metrics: dict = {"steps": steps}
    per_step: list[dict] = []
    if units:
        reset = t.reset_optimizer_each_iteration or restart
        fit_args = dict(
            rows_per_unit=rt.algo.rows_per_unit,
            epochs=t.epochs,
            seed=rt.cfg.loop.seed * 31 + k,
            temperature=logprob_temperature(rt),
        )
        # one optimizer kept across iterations gets one schedule over the whole run (this iteration's
        # step count × iterations), or its cosine would reach 0 at the end of iteration 1
        horizon = steps if reset else steps * rt.cfg.loop.iterations
        warmup = getattr(cfg, "critic_warmup", 0)
        if k <= warmup:  # the policy stays as it is; the checkpoint below saves it unchanged
            metrics["actor_frozen"] = 1.0
        else:
            actor_horizon = steps if reset else steps * (rt.cfg.loop.iterations - warmup)
            rt.learner.start_phase(actor_horizon, reset=reset)
            if not reset and start is not None and (start / "trainer_state.pt").exists():
                rt.learner.load_state(start, actor_horizon)
            with progress.stage(f"[iter {k}] train", steps, rt.cfg.logging.progress) as advance:
                metrics.update(
                    rt.learner.fit(
                        batch,
                        loss_function(rt, start),
                        **fit_args,
                        on_step=lambda i, m: (per_step.append(m), advance(1)),
                    )
                )
        if getattr(cfg, "needs_value_model", False) and cfg.needs_critic:
            critic = rt.ensure_critic(start)
            critic.start_phase(horizon, reset=reset)
            with progress.stage(f"[iter {k}] train value model", steps, rt.cfg.logging.progress) as advance:
                value_metrics = critic.fit(
                    batch, lambda mb, v: rt.algo.value_loss(mb, v, cfg), **fit_args, on_step=lambda i, m: advance(1)
                )
            metrics.update(
                {f"value_{key}" if not key.startswith("value") else key: v for key, v in value_metrics.items()}
            )
    atomic_write_json(d / "train.json", metrics)
    atomic_write_jsonl(d / "train_steps.jsonl", per_step)  # every optimizer step's diagnostics
    save_checkpoint(rt, d / "checkpoint", with_optimizer=not t.reset_optimizer_each_iteration)


def loss_function(rt: Runtime, start: Path | None):
    """The algorithm's loss for the learner; with the policy's logits of the same forward when the loss
    needs them (an entropy bonus), and the reference's as well for TDPO."""
    cfg = rt.cfg.algorithm
    if getattr(cfg, "needs_logits", False):
        temperature = logprob_temperature(rt)  # the loss divides the raw logits by it

        def with_logits(mb: RolloutBatch, lp: torch.Tensor, logits: torch.Tensor):
            return rt.algo.loss(mb, lp, cfg, logits=logits, temperature=temperature)

        with_logits.needs_logits = True
        return with_logits
    if not getattr(cfg, "needs_reference_logits", False):
        return lambda mb, lp: rt.algo.loss(mb, lp, cfg)
    if cfg.reference == "initial":
        ref_model = rt.initial_policy()
    else:  # the policy as this iteration started, frozen while the learner moves the live one
        ref_model = load_model(str(start) if start is not None else rt.base_path, dtype=rt.cfg.model.dtype)
        ref_model.requires_grad_(False).eval()

    def with_reference_logits(mb: RolloutBatch, lp: torch.Tensor, logits: torch.Tensor):
        with torch.no_grad():
            ref_logits = forward_logits(ref_model, mb)
        return rt.algo.loss(mb, lp, cfg, logits=logits, ref_logits=ref_logits)

    with_reference_logits.needs_logits = True
    return with_reference_logits


def save_checkpoint(rt: Runtime, path: Path, with_optimizer: bool) -> None:
    with atomic_dir(path) as tmp:
        rt.learner.save(tmp, with_optimizer=with_optimizer)
        rt.tokenizer.save_pretrained(tmp)
        if rt.critic is not None and path.name == "checkpoint" and path.parent.name.startswith("iter_"):
            rt.critic.save(tmp / "value_model", with_optimizer=with_optimizer)
    rt.policy_source = path
    if (path / "value_model").exists():
        rt.critic_source = str(path / "value_model")
