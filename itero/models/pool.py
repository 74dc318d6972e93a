"""The run's models by role, and which weights each one holds.

Roles: the **policy** (trained by the learner; its weights come from a checkpoint the pool remembers,
so a resumed run loads weights only where a stage needs them), the **generator** that samples it (the
hf backend shares the policy's modules; a vLLM engine or a sharded policy's plain replica holds a copy
the pool keeps in step), the **initial** policy RL starts from (reference for ``reference: initial``;
for a LoRA policy the policy itself with its adapters disabled), **frozen** models loaded once by path
(RTO's DPO model, a teacher, TDPO's previous iterate), and the **critic** with its own optimizer.

Algorithms name the models they need as sources (``algorithms/base.py``): ``"previous"``,
``"initial"``, ``"run:<folder>"`` or a model folder; :meth:`ModelPool.model` resolves them.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from itero.distributed import current
from itero.generation.base import Generator
from itero.generation.hf import HFGenerator
from itero.models import lora
from itero.models.loading import load_model, load_weights_into
from itero.training.learner import Learner
from itero.training.sharding import SHARDED_STRATEGIES, launcher_strategy, local_fraction, shard_model


@dataclass
class ModelPool:
    cfg: object  # the run's Config: its model, generation, distributed, sft, reward and loop sections
    run: Path  # the run directory (a pre-run's models resolve against the outer run)
    base_path: str  # the model the run starts from (hub name or folder)
    policy: torch.nn.Module
    learner: Learner
    generator: Generator
    device: torch.device = torch.device("cpu")
    strategy: str = "ddp"  # distributed.strategy after the accelerate launch config (sharding.launcher_strategy)
    replica: torch.nn.Module | None = None  # a sharded policy's plain copy that the hf generator runs
    policy_source: Path | None = None  # checkpoint the in-memory weights equal; None = base
    generator_source: object = "base"  # checkpoint a separate engine's weights equal (hf shares the policy)
    critic: Learner | None = None  # PPO / RTO value model and its optimizer, built by ensure_critic
    critic_source: str | None = None
    _initial: torch.nn.Module | None = field(default=None, repr=False)
    _frozen: dict = field(default_factory=dict, repr=False)

    @property
    def initial_checkpoint(self) -> Path | None:
        """The policy RL starts from: the SFT checkpoint, or None (the base model) without warm-up."""
        return self.run / "sft" / "checkpoint" if self.cfg.sft.enabled else None

    @property
    def frozen_device(self) -> torch.device:
        """Where the reference, DPO and reward models live: beside the policy, or offloaded to CPU."""
        return torch.device("cpu") if self.cfg.distributed.reference_device == "cpu" else self.device

    def model(self, source: str, start: Path | None) -> torch.nn.Module:
        """The model a source names, ``start`` being the checkpoint this iteration began from."""
        if source == "previous":
            self.ensure_policy(start)
            return self.policy
        if source == "initial":
            return self.initial_policy()
        return self.frozen_model(self.path_of(source))

    def path_of(self, source: str) -> str:
        """A model folder named in ``models_needed``: ``run:<folder>`` is inside this run's directory."""
        return str(self.run / source.removeprefix("run:")) if source.startswith("run:") else source

    def ensure_policy(self, checkpoint: Path | None) -> None:
        """Make the in-memory policy hold the weights of ``checkpoint`` (None = the base model), and a
        separate generation engine serve them too."""
        if checkpoint is not None and lora.is_adapter_folder(checkpoint):
            self.adapt_policy()  # e.g. `itero retest` of a LoRA run: its pool starts from plain weights
        if checkpoint != self.policy_source:
            load_weights_into(self.policy, checkpoint if checkpoint is not None else self.base_path)
            self.policy_source = checkpoint
        if self.generator_source == self.policy_source:
            return
        if self.replica is not None:  # from the checkpoint on disk, not gathered from the shards
            load_weights_into(self.replica, self.policy_source if self.policy_source is not None else self.base_path)
        elif lora.is_lora(self.policy):
            # vLLM keeps the adapters' base and serves each adapter checkpoint as a LoRA request; hf runs
            # the policy's own adapted modules
            source = self.policy_source
            self.generator.load_adapter(source if source and lora.is_adapter_folder(source) else None, self.policy)
        else:
            self.generator.update_weights(self.policy)  # an engine checks it serves the new weights
        self.generator_source = self.policy_source

    def release_generator(self) -> None:
        """Before the learner trains: an engine built with ``generation.vllm_sleep_mode`` gives its GPU
        memory back (the dry run's memory plan counts on it). It drops its weights (level 2), since a
        weight sync follows every update, except under a LoRA policy, whose adapters it serves over the
        base weights it keeps in CPU RAM (level 1). The next ``ensure_policy`` wakes and refills it."""
        g = self.cfg.generation
        if g.backend != "vllm" or not g.vllm_sleep_mode:
            return
        self.generator.sleep(level=1 if lora.is_lora(self.policy) else 2)
        self.generator_source = "asleep"  # whatever the policy holds next, the engine must be brought to it

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
        """The initial policy as a frozen model, loaded once; for a LoRA policy, whose adapters' base it
        is, the policy itself with its adapters disabled."""
        if self._initial is None and lora.is_lora(self.policy):
            self._initial = lora.AdaptersDisabled(self.policy)
        if self._initial is None:
            checkpoint = self.initial_checkpoint
            path = str(checkpoint) if checkpoint else self.base_path
            self._initial = load_model(path, dtype=self.cfg.model.dtype, device=self.frozen_device)
            self._initial.requires_grad_(False).eval()
        return self._initial

    def frozen_model(self, path: str) -> torch.nn.Module:
        """A frozen causal LM loaded once (RTO's DPO policy, a distillation teacher)."""
        if path not in self._frozen:
            model = load_model(path, dtype=self.cfg.model.dtype, device=self.frozen_device)
            self._frozen[path] = model.requires_grad_(False).eval()
        return self._frozen[path]

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
        from itero.rewards.reward_model import RunningNorm

        r = self.cfg.reward
        state = self.run / "iter_1" / "reward_norm.json"
        same_model = r.name == "model" and Path(r.model_path).resolve() == Path(critic_path).resolve()
        if not (same_model and r.normalize and state.exists()):
            return None
        norm = RunningNorm()
        norm.load_state_dict(json.loads(state.read_text()))
        return norm.mean, norm.std + norm.eps  # the normaliser divides by std + eps


def local_device() -> torch.device:
    """This process's GPU (LOCAL_RANK under torchrun / accelerate launch), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def build_pool(cfg, run: Path, base_path: str, tokenizer, optim) -> ModelPool:
    """The policy (sharded where the strategy says), its learner, and the generator that samples it."""
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
    generator = build_generator(cfg, base_path, tokenizer, replica if replica is not None else policy)
    return ModelPool(
        cfg=cfg,
        run=run,
        base_path=base_path,
        policy=policy,
        learner=Learner(policy, optim),
        generator=generator,
        device=device,
        strategy=strategy,
        replica=replica,
    )


def build_generator(cfg, base_path: str, tokenizer, policy):
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
