"""Everything a run needs, built once from the config: tokenizer, policy, generator, learner, task, reward.

Components get their own config section, never the root. The in-memory policy remembers which
checkpoint its weights came from, so a resumed run loads weights only where a stage needs them.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import torch

from itero.algorithms import ALGORITHMS
from itero.config import Config
from itero.distributed import current
from itero.errors import IteroError
from itero.generation.base import SamplingParams
from itero.generation.hf import HFGenerator
from itero.models import lora
from itero.models.loading import check_model_path, load_model, load_tokenizer, load_weights_into
from itero.models.tiny import build_char_tokenizer, build_tiny_model, save_tiny
from itero.rewards.math import MathReward
from itero.schema import ConfigError
from itero.tasks import Task, build_task
from itero.training.learner import Learner, OptimConfig
from itero.training.sharding import SHARDED_STRATEGIES, launcher_strategy, local_fraction, shard_model


@dataclass
class Runtime:
    cfg: Config
    run: Path
    base_path: str  # the model the run starts from (hub name or folder)
    tokenizer: object
    policy: torch.nn.Module
    generator: HFGenerator
    learner: Learner
    task: Task
    reward: MathReward  # or a RewardModel, or RewardFunctions (same grade signature)
    algo: ModuleType
    policy_source: Path | None = None  # checkpoint the in-memory weights equal; None = base
    device: torch.device = torch.device("cpu")
    generator_source: object = "base"  # checkpoint a separate engine's weights equal (hf shares the policy)
    critic: Learner | None = None  # PPO / RTO value model and its optimizer, built by ensure_critic
    critic_source: str | None = None
    replica: torch.nn.Module | None = None  # a sharded policy's plain copy that the hf generator runs
    strategy: str = "ddp"  # distributed.strategy after the accelerate launch config (sharding.launcher_strategy)
    config_sha: str = ""  # of the run's config.yaml (tracking.rundir.config_sha): what each stage records
    _initial: torch.nn.Module | None = field(default=None, repr=False)
    _frozen: dict = field(default_factory=dict, repr=False)

    @property
    def initial_checkpoint(self) -> Path | None:
        """The policy RL starts from: the SFT checkpoint, or None (the base model) without warm-up."""
        return self.run / "sft" / "checkpoint" if self.cfg.sft.enabled else None

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def ensure_policy(self, checkpoint: Path | None) -> None:
        """Make the in-memory policy hold the weights of ``checkpoint`` (None = the base model), and a
        separate generation engine (vLLM) serve them too."""
        if checkpoint is not None and lora.is_adapter_folder(checkpoint):
            self.adapt_policy()  # e.g. `itero retest` of a LoRA run: its runtime starts from plain weights
        if checkpoint != self.policy_source:
            load_weights_into(self.policy, checkpoint if checkpoint is not None else self.base_path)
            self.policy_source = checkpoint
        if self.replica is not None and self.generator_source != self.policy_source:
            # from the checkpoint on disk, not gathered from the shards: rank 0 alone evaluates
            load_weights_into(self.replica, self.policy_source if self.policy_source is not None else self.base_path)
            self.generator_source = self.policy_source
        elif hasattr(self.generator, "update_weights") and self.generator_source != self.policy_source:
            if lora.is_lora(self.policy) and hasattr(self.generator, "load_adapter"):
                # vLLM keeps the adapters' base and serves each adapter checkpoint as a LoRA request
                source = self.policy_source
                adapters = source if source is not None and lora.is_adapter_folder(source) else None
                self.generator.load_adapter(adapters, self.policy)
            else:
                self.generator.update_weights(self.policy)  # checks that the engine serves the new weights
            self.generator_source = self.policy_source

    @property
    def frozen_device(self) -> torch.device:
        """Where the reference, DPO and reward models live: beside the policy, or offloaded to CPU."""
        return torch.device("cpu") if self.cfg.distributed.reference_device == "cpu" else self.device

    def adapt_policy(self) -> None:
        """LoRA adapters (``model.lora``) on the policy as it holds its weights now (the initial policy,
        as RL starts): those weights are the adapters' base. The hf generator holds the same modules."""
        if self.cfg.model.lora is None or lora.is_lora(self.policy):
            return
        self.policy = lora.apply_lora(self.policy, self.cfg.model.lora, seed=self.cfg.loop.seed)
        self.policy.itero_base = lora.base_name(self.policy_source or self.base_path)
        self.learner.model = self.policy
        self.learner.end_phase()
        self._initial = None

    def initial_policy(self) -> torch.nn.Module:
        """The initial policy as a frozen model (reference for ``reference: initial``), loaded once; for a
        LoRA policy, whose adapters' base it is, the policy itself with its adapters disabled."""
        if self._initial is None and lora.is_lora(self.policy):
            self._initial = lora.AdaptersDisabled(self.policy)
        if self._initial is None:
            checkpoint = self.initial_checkpoint
            self._initial = load_model(
                str(checkpoint) if checkpoint else self.base_path, dtype=self.cfg.model.dtype, device=self.frozen_device
            )
            self._initial.requires_grad_(False).eval()
        return self._initial

    def ensure_critic(self, checkpoint: Path | None, init: str, lr: float) -> Learner:
        """The critic as saved with ``checkpoint`` (``value_model/``), else freshly initialised from
        ``init``: the initial policy (zero head), or a reward model folder."""
        from itero.models.value import ValueModel, forward_values

        saved = checkpoint / "value_model" if checkpoint is not None else None
        source = str(saved) if saved is not None and saved.exists() else f"init:{init}"
        if self.critic is None or self.critic_source != source:
            if saved is not None and saved.exists():
                model = ValueModel.from_policy(saved)
            elif init != "initial":
                model = ValueModel.from_reward_model(init, score_norm=self.critic_score_norm(init))
            else:
                initial = self.initial_checkpoint
                model = ValueModel.from_policy(initial if initial is not None else self.base_path)
            model = model.to(self.device)
            if self.learner.sharded:
                shard_model(model, self.strategy, self.device)
            self.critic = Learner(model, dataclasses.replace(self.learner.cfg, lr=lr), forward=forward_values)
            self.critic_source = source
        return self.critic

    def critic_score_norm(self, critic_path: str) -> tuple[float, float] | None:
        """(mean, std) that turn the critic's reward model's scores into this run's rewards: the running
        normaliser's state after the first scored batch (the critic is built at iteration 1), when the
        reward is that same reward model with ``normalize``; None where rewards are its raw scores."""
        import json

        from itero.rewards.reward_model import RunningNorm

        r = self.cfg.reward
        state = self.run / "iter_1" / "reward_norm.json"
        same_model = r.name == "model" and Path(r.model_path).resolve() == Path(critic_path).resolve()
        if not (same_model and r.normalize and state.exists()):
            return None
        norm = RunningNorm()
        norm.load_state_dict(json.loads(state.read_text()))
        return norm.mean, norm.std + norm.eps  # the normaliser divides by std + eps

    def frozen_model(self, path: str) -> torch.nn.Module:
        """A frozen causal LM loaded once (RTO's DPO policy)."""
        if path not in self._frozen:
            self._frozen[path] = (
                load_model(path, dtype=self.cfg.model.dtype, device=self.frozen_device).requires_grad_(False).eval()
            )
        return self._frozen[path]

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


def build_generator(cfg: Config, base_path: str, tokenizer, policy):
    """The hf backend shares the policy module; vLLM runs its own engine, synced by ensure_policy."""
    g = cfg.generation
    if g.backend == "hf":
        return HFGenerator(policy, tokenizer, batch_size=g.batch_size)
    from itero.generation.vllm import VLLMGenerator

    return VLLMGenerator(
        base_path,
        tokenizer,
        gpu_memory_utilization=g.vllm_gpu_memory_utilization,
        enable_sleep_mode=g.vllm_sleep_mode,
        enable_prefix_caching=g.vllm_prefix_caching,
        dtype=cfg.model.dtype,
        seed=cfg.loop.seed,
        lora_rank=cfg.model.lora.r if cfg.model.lora is not None else None,
    )


def local_device() -> torch.device:
    """This process's GPU (LOCAL_RANK under torchrun / accelerate launch), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def build_runtime(cfg: Config, run: Path, task: Task) -> Runtime:
    base_path = build_base_model(cfg, run)
    tokenizer = load_tokenizer(base_path)
    task.bind(tokenizer)  # a chat-template task renders its prompts with it
    device = local_device()
    policy = load_model(base_path, dtype=cfg.model.dtype, device=device)
    replica, strategy = None, launcher_strategy(cfg.distributed.strategy)
    if strategy in SHARDED_STRATEGIES and current().world_size > 1:
        if cfg.generation.backend == "hf":  # sharded forwards are collectives: generation runs a plain copy
            replica = load_model(base_path, dtype=cfg.model.dtype, device=device)
        shard_model(policy, strategy, device)
        local, total = local_fraction(policy)
        if current().is_main:
            from itero.tracking import progress

            progress.info(
                f"[{strategy}] the policy is sharded over {current().world_size} processes: this one "
                f"holds {local:,} of its {total:,} parameters (and their gradients and optimizer state)"
            )
    t = cfg.training
    learner = Learner(policy, optim_config(t))
    return Runtime(
        cfg=cfg,
        run=run,
        base_path=base_path,
        tokenizer=tokenizer,
        policy=policy,
        device=device,
        generator=build_generator(cfg, base_path, tokenizer, replica if replica is not None else policy),
        learner=learner,
        task=task,
        replica=replica,
        strategy=strategy,
        reward=build_reward(cfg, "cpu" if cfg.distributed.reference_device == "cpu" else device, task),
        algo=ALGORITHMS[cfg.algorithm.name],
    )
