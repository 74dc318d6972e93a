"""The typed config tree: one pydantic model per component, and ``load_config`` (YAML + dotted overrides,
errors as messages: ``itero/config_loading.py``).

``load_config("configs/quickstart.yaml", ["algorithm.beta=0.2", "loop.iterations=5"])``.
Every error names the key, the value given and what is allowed, before any work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from itero.algorithms import ALGORITHMS
from itero.config_loading import apply_override, explain, migrate, read_yaml
from itero.model_config import LoraSettings
from itero.reward_config import RewardConfig, RewardFunctionConfig  # noqa: F401
from itero.schema import ConfigError, Section
from itero.task_config import ArithmeticConfig, DatasetTaskConfig, JsonlTaskConfig, TaskConfig  # noqa: F401

__all__ = ["Config", "ConfigError", "load_config", "dump_config"]


class TinyModelConfig(Section):
    arch: Literal["qwen2", "llama"] = "qwen2"
    hidden_size: int = Field(256, gt=0)
    num_layers: int = Field(4, gt=0)
    num_heads: int = Field(4, gt=0)
    num_kv_heads: int = Field(2, gt=0)
    intermediate_size: int = Field(768, gt=0)
    max_position_embeddings: int = Field(256, gt=0)

    @model_validator(mode="after")
    def _heads_divide(self):
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"hidden_size={self.hidden_size} must be divisible by num_heads={self.num_heads}, "
                f"and num_heads by num_kv_heads={self.num_kv_heads}"
            )
        return self


class ModelConfig(Section):
    path: str | None = None  # hub name or local folder; None builds the tiny model into the run directory
    tiny: TinyModelConfig = TinyModelConfig()
    dtype: Literal["float32", "bfloat16"] = "float32"
    # LoRA adapters on the policy for RL (itero/models/lora.py, needs peft); None = full fine-tuning
    lora: LoraSettings | None = None


class GenerationConfig(Section):
    backend: Literal["hf", "vllm"] = "hf"
    n_samples_per_prompt: int = Field(8, ge=1)
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)
    max_new_tokens: int = Field(48, gt=0)
    batch_size: int = Field(512, gt=0)  # rows per forward pass
    # prompts per generate call, each call seeded by its offset; the unit of data-parallel sharding
    prompts_per_call: int = Field(64, gt=0)
    # Which model generates each prompt's samples (itero/samplers/sources.py): online | ref | gshf | mixp.
    sampler: Literal["online", "ref", "gshf", "mixp"] = "online"
    sampler_from_iteration: int = Field(1, ge=1)  # earlier iterations sample online (the samplers paper: 2)
    mixp_on_policy_samples: int = Field(0, ge=0)  # mixp: the first m samples of a prompt plain on-policy
    # backend=vllm (itero/generation/vllm.py, needs a CUDA GPU): the engine shares each GPU with the learner.
    vllm_gpu_memory_utilization: float = Field(0.5, gt=0.0, le=1.0)  # fraction of GPU memory vLLM may take
    vllm_sleep_mode: bool = False  # release the engine's GPU memory while the learner trains
    vllm_prefix_caching: bool = True  # n samples of a prompt (and VinePPO rollouts of a prefix) share its KV
    # π_old from the hf sampler's own log-probs when they equal the learner's (itero/old_logprobs.py):
    # checked on a first micro-batch each iteration, recomputed otherwise; false always recomputes
    reuse_sampler_logprobs: bool = True

    @model_validator(mode="after")
    def _sampler_fits_n(self):
        from itero.samplers.sources import plan  # validates the split of n among the sources

        plan(self.sampler, self.n_samples_per_prompt, self.mixp_on_policy_samples)
        if self.backend == "vllm" and self.sampler == "mixp":
            raise ValueError(
                "generation.sampler=mixp mixes two models' logits token by token, which only generation.backend=hf "
                "does; use backend=hf, or another sampler (online, ref, gshf) with vllm"
            )
        return self


# The quickstart's algorithm: iterative DPO with the DPO-Positive loss (see configs/quickstart.yaml). An
# `algorithm:` section without a name fills in from it, so `itero quickstart algorithm.beta=0.2` keeps DPOP.
DEFAULT_ALGORITHM = {"name": "dpo", "loss": "dpop"}
_ALGORITHM_CONFIGS = {name: module.Config for name, module in ALGORITHMS.items()}
AlgorithmConfig = Annotated[Union[tuple(_ALGORITHM_CONFIGS.values())], Field(discriminator="name")]  # noqa: UP007 (a union built from a tuple)


class TrainingConfig(Section):
    lr: float = Field(1e-4, gt=0.0)
    epochs: int = Field(6, ge=1)
    batch_size: int = Field(32, ge=1)  # examples (pairs for DPO, sequences otherwise) per optimizer step
    micro_batch_size: int = Field(32, ge=1)  # examples per forward/backward; gradients accumulate
    # set: micro-batches are bins of examples sorted by length, each at most this many padded tokens
    # (rows × (prompt + response) as the forward sees them), instead of micro_batch_size examples
    max_tokens_per_micro_batch: int | None = Field(None, ge=1)
    warmup_ratio: float = Field(0.1, ge=0.0, le=1.0)
    schedule: Literal["cosine", "constant"] = "cosine"
    weight_decay: float = Field(0.0, ge=0.0)
    max_grad_norm: float = Field(1.0, gt=0.0)
    adam_betas: tuple[float, float] = (0.9, 0.95)
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16 autocasts the forward; master weights stay fp32
    reset_optimizer_each_iteration: bool = True  # iterative DPO starts each iteration as a fresh run

    @model_validator(mode="after")
    def _micro_divides(self):
        if self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"training.batch_size={self.batch_size} must be a multiple of "
                f"training.micro_batch_size={self.micro_batch_size}"
            )
        return self


class SFTConfig(Section):
    enabled: bool = True
    num_examples: int = Field(4000, ge=1)  # worked solutions available to the warm-up
    steps: int = Field(400, ge=1)  # no warm-up at all: sft.enabled=false
    batch_size: int = Field(64, ge=1)
    micro_batch_size: int = Field(32, ge=1)  # its own, so RL batch settings never change the warm-up
    lr: float = Field(1e-3, gt=0.0)
    warmup_ratio: float = Field(0.05, ge=0.0, le=1.0)


class LoopConfig(Section):
    iterations: int = Field(7, ge=0)
    prompts_per_iteration: int = Field(1024, ge=1)
    same_prompts_every_iteration: bool = False  # the samplers paper reuses one prompt set
    seed: int = 0


class EvalConfig(Section):
    every: int = Field(1, ge=1)  # evaluate after every N iterations (and always after the last)
    num_problems: int | None = Field(None, ge=1)  # None = the whole test split
    # Besides the test split, greedy accuracy on N fresh problems (arithmetic task: the ones after the
    # training problems, as `itero retest`), logged as eval/fresh_greedy_accuracy; 0 = off.
    fresh_problems: int = Field(0, ge=0)
    k: int = Field(4, ge=1)  # samples per problem for pass@k and mean accuracy
    temperature: float = Field(1.0, ge=0.0)
    max_new_tokens: int | None = Field(None, gt=0)  # None = generation.max_new_tokens
    # Math benchmarks (itero.evaluation), with k samples at the temperature above besides the greedy one; [] = off.
    # names (math500, gsm8k, aime24, amc23, minerva_math, olympiadbench) or NAME=FILE.jsonl[:PROBLEM:ANSWER]
    benchmarks: list[str] = []
    benchmarks_every: int = Field(1, ge=1)  # after every N iterations (and after the last)
    template: str = (
        "plain"  # a named template (qwen25-math-cot, online-dpo-r1, ...), a file, or a string with {problem}
    )
    data_dir: str | None = (
        None  # folder of <name>/test.jsonl files; None = $ITERO_DATA_DIR, else the public datasets (docs/data.md)
    )
    benchmark_limit: int | None = Field(None, ge=1)  # first N problems of each benchmark

    @model_validator(mode="after")
    def _benchmarks_resolve(self):
        # Names and template are checked here so that a typo stops the run before training, not at its first evaluation.
        from itero.evaluation.benchmarks import parse_spec
        from itero.evaluation.templates import load_template

        for spec in self.benchmarks:
            parse_spec(spec)
        if self.benchmarks:
            load_template(self.template)
            if self.temperature <= 0:
                raise ValueError("eval.benchmarks samples eval.k responses per problem: give eval.temperature > 0")
        return self


class LoggingConfig(Section):
    run_dir: str = "runs"
    name: str = "quickstart"  # the run's folder under run_dir: a plain name, so a run never writes outside it
    progress: bool = True
    # where the metrics also go (docs/trackers.md); each needs its extra: pip install 'itero[wandb]'
    trackers: list[Literal["tensorboard", "wandb", "mlflow"]] = []
    project: str = "itero"  # the W&B project and MLflow experiment; the run is named after the run directory
    mlflow_uri: str | None = None  # MLflow's tracking URI; None: $MLFLOW_TRACKING_URI, else MLflow's default
    tracker_samples: int = Field(8, ge=0)  # rollouts per iteration shown as a sample table

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        if not name.strip() or name in (".", "..") or "/" in name or "\\" in name:
            raise ValueError(f"give a plain folder name (no '/', not empty, not '.' or '..'), got {name!r}")
        return name


class DistributedConfig(Section):
    """The GPUs a run is planned for (the dry run's memory estimate) and how the learner is sharded."""

    num_processes: int = Field(1, ge=1)  # GPUs in total (one process per GPU), over all nodes
    num_nodes: int = Field(1, ge=1)
    # what each rank keeps: ddp a whole replica; zero3 / fsdp parameters, gradients and optimizer state
    # sharded (FSDP2 FULL_SHARD); zero2 the same with parameters kept gathered from forward to backward
    strategy: Literal["ddp", "fsdp", "zero2", "zero3"] = "ddp"
    gpu_memory_gb: float = Field(80.0, gt=0.0)  # per GPU, in GiB (an "80 GB" A100/H100 has 80 GiB)
    reference_device: Literal["same", "cpu"] = "same"  # frozen models (reference, reward model) on the GPUs or CPU
    gradient_checkpointing: bool = False
    offload_optimizer: bool = False  # AdamW state in CPU RAM (DeepSpeed CPU Adam; VinePPO and RTO run ZeRO-2 so)
    # Longest prompt in tokens: itero does not truncate prompts, so the KV-cache and activation
    # estimates need it (the sources cut prompts at 1000 tokens for Online-DPO-R1, 128 for Safe-RLHF).
    # None: what the policy's context leaves after generation.max_new_tokens (1024 if unknown).
    max_prompt_tokens: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _same_gpus_per_node(self):
        if self.num_processes % self.num_nodes:
            raise ValueError(
                f"distributed.num_processes={self.num_processes} must be divisible by "
                f"distributed.num_nodes={self.num_nodes}: every node runs the same number of GPUs"
            )
        return self


class Config(Section):
    model: ModelConfig = ModelConfig()
    task: TaskConfig = TaskConfig()
    generation: GenerationConfig = GenerationConfig()
    reward: RewardConfig = RewardConfig()
    algorithm: AlgorithmConfig = ALGORITHMS[DEFAULT_ALGORITHM["name"]].Config.model_validate(DEFAULT_ALGORITHM)
    training: TrainingConfig = TrainingConfig()
    sft: SFTConfig = SFTConfig()
    loop: LoopConfig = LoopConfig()
    eval: EvalConfig = EvalConfig()
    logging: LoggingConfig = LoggingConfig()
    distributed: DistributedConfig = DistributedConfig()

    @model_validator(mode="before")
    @classmethod
    def _default_algorithm(cls, data: Any):
        if isinstance(data, dict) and isinstance(data.get("algorithm"), dict) and "name" not in data["algorithm"]:
            data = {**data, "algorithm": {**DEFAULT_ALGORITHM, **data["algorithm"]}}
        return data

    @model_validator(mode="after")
    def _combinations(self):
        n, needed = self.generation.n_samples_per_prompt, self.algorithm.min_samples_per_prompt
        if n < needed:
            raise ValueError(
                f"generation.n_samples_per_prompt={n}: algorithm {self.algorithm.name!r} needs at least "
                f"{needed} samples per prompt"
            )
        warmup = ALGORITHMS[self.algorithm.name].schedule(self.algorithm).actor_frozen_iterations
        if warmup and warmup >= self.loop.iterations:
            raise ValueError(
                f"algorithm.critic_warmup={warmup} >= loop.iterations={self.loop.iterations}: the actor would "
                "never train; the first critic_warmup iterations train the critic only"
            )
        if self.eval.fresh_problems:
            if self.task.name != "arithmetic":
                raise ValueError(
                    f"eval.fresh_problems={self.eval.fresh_problems}: fresh problems exist only for the arithmetic "
                    f"task (task.name={self.task.name!r}); use eval.num_problems / task.jsonl.num_test instead"
                )
            from itero.tasks import fresh_problems

            fresh_problems(
                self.task, self.eval.fresh_problems
            )  # more than the task has: an error now, not after training
        batch, gpus = self.training.batch_size, self.distributed.num_processes
        if batch % gpus:
            raise ValueError(
                f"training.batch_size={batch} must be divisible by distributed.num_processes={gpus}, so that "
                f"every GPU trains the same number of examples per optimizer step"
            )
        return self

    @property
    def run_path(self) -> Path:
        return Path(self.logging.run_dir) / self.logging.name


# ----------------------------------------------------------------------------- loading


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    data: dict = {}
    if path is not None:
        data = read_yaml(Path(path))
    for item in overrides:
        apply_override(data, item)
    migrate(data)
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(explain(err, Config, _ALGORITHM_CONFIGS, DEFAULT_ALGORITHM["name"])) from None


def dump_config(config: Config) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def upgraded_config_text(text: str) -> str:
    """A run's ``config.yaml`` as this version dumps it: moved keys at their new place, options added
    since filled with their defaults. So a run an older itero started resumes without ``--force`` when
    nothing it computes differs; the text as it is where it no longer loads."""
    try:
        data = yaml.safe_load(text) or {}
        migrate(data)
        return dump_config(Config.model_validate(data))
    except (yaml.YAMLError, ValidationError, AttributeError, TypeError):
        return text
