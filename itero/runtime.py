"""Everything a run needs, built once from the config: tokenizer, the model pool (policy, learner,
generator and the models algorithms ask for: ``models/pool.py``), task, reward; and the preflight that
checks the input before anything is written. Components get their own config section, never the root.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

from itero.algorithms import ALGORITHMS
from itero.config import Config
from itero.errors import IteroError
from itero.generation.base import SamplingParams
from itero.models import lora
from itero.models.loading import check_model_path, load_tokenizer
from itero.models.pool import ModelPool, build_pool
from itero.models.tiny import build_char_tokenizer, build_tiny_model, save_tiny
from itero.rewards.math import MathReward, RewardFn
from itero.schema import ConfigError
from itero.tasks import Task, build_task
from itero.training.learner import OptimConfig
from itero.training.sharding import launcher_strategy


@dataclass
class Runtime:
    cfg: Config
    run: Path
    tokenizer: object
    models: ModelPool  # the policy, its learner and generator, the initial, frozen and critic models
    task: Task
    reward: RewardFn  # MathReward, a RewardModel, or RewardFunctions
    algo: ModuleType
    config_sha: str = ""  # of the run's config.yaml (tracking.rundir.config_sha): what each stage records

    # the models every stage uses, by their pool roles
    policy = property(lambda self: self.models.policy)
    learner = property(lambda self: self.models.learner)
    generator = property(lambda self: self.models.generator)
    base_path = property(lambda self: self.models.base_path)
    device = property(lambda self: self.models.device)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def sampling_params(self, seed: int) -> SamplingParams:
        g = self.cfg.generation
        return SamplingParams(
            n=g.n_samples_per_prompt,
            temperature=g.temperature,
            top_p=g.top_p,
            top_k=g.top_k,
            max_new_tokens=g.max_new_tokens,
            seed=seed,
        )


def build_base_model(cfg: Config, run: Path) -> str:
    """The model the run starts from: ``model.path``, or a tiny model built and saved in the run directory."""
    if cfg.model.path is not None:
        return cfg.model.path
    base = run / "base"
    if not (base / "config.json").exists():
        t = cfg.model.tiny
        tokenizer = build_char_tokenizer()
        model = build_tiny_model(
            len(tokenizer),
            arch=t.arch,
            hidden_size=t.hidden_size,
            num_layers=t.num_layers,
            num_heads=t.num_heads,
            num_kv_heads=t.num_kv_heads,
            intermediate_size=t.intermediate_size,
            max_position_embeddings=t.max_position_embeddings,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            seed=cfg.loop.seed,
        )
        tmp = run / "base.tmp"
        save_tiny(tmp, model, tokenizer)
        tmp.replace(base)
    return str(base)


def optim_config(t) -> OptimConfig:
    """The learner's view of the ``training`` section."""
    return OptimConfig(
        lr=t.lr,
        batch_size=t.batch_size,
        micro_batch_size=t.micro_batch_size,
        warmup_ratio=t.warmup_ratio,
        schedule=t.schedule,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        adam_betas=tuple(t.adam_betas),
        precision=t.precision,
        max_tokens_per_micro_batch=t.max_tokens_per_micro_batch,
    )


def build_reward(cfg: Config, device: torch.device | str = "cpu", task: Task | None = None):
    """MathReward, a RewardModel, or the weighted reward functions of ``reward.functions``; the
    correctness flags (for the logs) always come from the math grader. ``task`` gives the functions
    its dataset columns."""
    r = cfg.reward
    verifier = MathReward(r.correct, r.wrong, r.no_answer, extraction=r.extraction)
    if r.functions:
        return build_reward_functions(cfg, verifier, device, task)
    if r.name == "math":
        return verifier
    return build_reward_model(cfg, verifier, device)


def build_reward_functions(cfg: Config, verifier: MathReward, device, task: Task | None):
    from itero.rewards.functions import MathFunction, ModelFunction, RewardFunctions, format_reward, load_terms

    grader = MathFunction(verifier)
    builtins = {"math": grader, "format": format_reward}
    if any(f.name == "model" and not f.path for f in cfg.reward.functions):
        builtins["model"] = ModelFunction(build_reward_model(cfg, None, device))
    columns_of = task.columns_index() if task is not None else None
    return RewardFunctions(load_terms(cfg.reward.functions, builtins), grader, columns_of)


def build_reward_model(cfg: Config, verifier: MathReward | None, device):
    from itero.rewards.reward_model import RewardModel

    r = cfg.reward
    return RewardModel.from_pretrained(
        r.model_path,
        normalize=r.normalize,
        clip=r.clip,
        batch_size=r.batch_size,
        template=r.template,
        verifier=verifier,
        device=str(device),
    )


def preflight(cfg: Config) -> Task:
    """Everything that can fail on bad input, checked before the run directory is touched."""
    from itero.input_checks import check_models, check_prompts, warn_suspicious_task
    from itero.tracking.rundir import check_writable

    strategy = launcher_strategy(cfg.distributed.strategy)  # an itero strategy contradicting the accelerate config
    if cfg.model.lora is not None:
        lora.check_supported(strategy, cfg.generation.backend)
    check_writable(cfg.run_path)
    tokenizer, context = check_models(cfg)
    task = checked_task(cfg)
    where = cfg.task.jsonl.train_path if cfg.task.name == "jsonl" else "the task"
    check_prompts(task, tokenizer, context, cfg.generation.max_new_tokens, where)
    warn_suspicious_task(task, where)
    return task


def checked_task(cfg: Config) -> Task:
    """The task, with what only its data can show checked before anything is written."""
    try:
        task = build_task(cfg.task)
    except IteroError:
        raise
    except ValueError as err:  # the task's own checks (operators, problem counts) are input errors
        raise ConfigError(f"task: {err}") from None
    where = cfg.task.jsonl.train_path if cfg.task.name == "jsonl" else "the task"
    if not task.train:
        raise ConfigError(
            f"{where} has no training problems (after task.jsonl.num_test={cfg.task.jsonl.num_test} "
            "are held out as the test split)"
            if cfg.task.name == "jsonl"
            else f"{where} has no training problems"
        )
    if cfg.sft.enabled and not any(p.solution for p in task.train):
        raise ConfigError(
            f"sft.enabled is true but {where} has no worked solutions (task.jsonl.solution_field); "
            "give solutions or set sft.enabled=false"
        )
    if task.chat_template:  # prompts render through the policy's tokenizer; one without a template stops here
        task.bind(load_tokenizer(cfg.model.path) if cfg.model.path is not None else build_char_tokenizer())
    if cfg.reward.functions:  # the user's files import and hold their functions, before anything is written
        from itero.rewards.functions import BUILTIN_NAMES, load_terms

        load_terms(cfg.reward.functions, dict.fromkeys(BUILTIN_NAMES))
        if any(f.name == "model" and not f.path for f in cfg.reward.functions):
            check_model_path(cfg.reward.model_path)
    return task


def build_runtime(cfg: Config, run: Path, task: Task) -> Runtime:
    base_path = build_base_model(cfg, run)
    tokenizer = load_tokenizer(base_path)
    task.bind(tokenizer)  # a chat-template task renders its prompts with it
    models = build_pool(cfg, run, base_path, tokenizer, optim_config(cfg.training))
    reward_device = "cpu" if cfg.distributed.reference_device == "cpu" else models.device
    return Runtime(
        cfg=cfg,
        run=run,
        tokenizer=tokenizer,
        models=models,
        task=task,
        reward=build_reward(cfg, reward_device, task),
        algo=ALGORITHMS[cfg.algorithm.name],
    )
