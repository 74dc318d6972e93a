"""The shared settings of one comparison, and how each side spells them (itero overrides, TRL config kwargs).

One ``Job`` holds what both sides must agree on; ``itero_overrides`` and ``trl_kwargs`` translate it, so
a setting cannot be changed on one side only. The full jobs follow issue #21's measurement (GRPO: 512
prompts × 8 samples per round, 4 passes, batches of 64); ``--smoke`` shrinks model, prompts and lengths.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

# The tiny model and task of tests/helpers.TINY_RUN: SFT in a few seconds on one thread.
SMOKE_SFT = [
    "model.tiny.hidden_size=32",
    "model.tiny.num_layers=1",
    "model.tiny.intermediate_size=64",
    "sft.steps=150",
    "sft.batch_size=16",
    "sft.lr=3e-3",
    "sft.num_examples=60",
    "task.arithmetic.digits=1",
    "task.arithmetic.num_ops=1",
    "task.arithmetic.ops=+",
    "task.arithmetic.num_train=60",
    "task.arithmetic.num_test=8",
]


@dataclass(frozen=True)
class Job:
    name: str  # grpo | dpo
    config: str  # itero's preset the job starts from
    prompts_per_round: int
    samples_per_prompt: int
    temperature: float
    top_p: float
    max_new_tokens: int
    lr: float
    epochs: int  # μ: passes over each round's samples (GRPO); DPO: 1, as TRL's online DPO
    batch_size: int  # optimizer batch: samples (GRPO) or pairs = prompts (DPO)
    micro_batch_size: int
    beta: float
    epsilon: float = 0.2
    sft_overrides: list[str] = field(default_factory=list)
    seed: int = 0

    @property
    def steps_per_round(self) -> int:
        units = self.prompts_per_round * (self.samples_per_prompt if self.name == "grpo" else 1)
        return self.epochs * units // self.batch_size


GRPO = Job(
    name="grpo",
    config=str(CONFIGS / "grpo.yaml"),
    prompts_per_round=512,
    samples_per_prompt=8,
    temperature=0.6,
    top_p=0.9,
    max_new_tokens=48,
    lr=1e-5,
    epochs=4,
    batch_size=64,
    micro_batch_size=32,
    beta=0.0,
)
# Iterative DPO made as close to TRL's OnlineDPOTrainer as it goes: 2 samples per prompt form the pair,
# the plain sigmoid loss, the initial policy as the fixed reference, one pass over each round's pairs.
DPO = Job(
    name="dpo",
    config=str(CONFIGS / "quickstart.yaml"),
    prompts_per_round=1024,
    samples_per_prompt=2,
    temperature=0.7,
    top_p=1.0,
    max_new_tokens=48,
    lr=1e-5,
    epochs=1,
    batch_size=32,
    micro_batch_size=32,
    beta=0.1,
)
JOBS = {"grpo": GRPO, "dpo": DPO}


def smoke(job: Job) -> Job:
    """The same job on the tiny model: a few prompts, short responses, rounds of a second or two."""
    return dataclasses.replace(
        job,
        prompts_per_round=8,
        samples_per_prompt=4 if job.name == "grpo" else 2,
        temperature=1.0,  # as TINY_RUN: the tiny model's samples differ, so rewards (and gradients) do
        max_new_tokens=20,
        epochs=2 if job.name == "grpo" else 1,
        batch_size=16 if job.name == "grpo" else 4,
        micro_batch_size=8 if job.name == "grpo" else 4,
        lr=1e-4,
        sft_overrides=SMOKE_SFT,
    )


def itero_overrides(job: Job, sft_checkpoint: str, run_dir: str) -> list[str]:
    """itero's run from the shared SFT checkpoint, matched to TRL: 0/1 reward, constant learning rate
    without warm-up, AdamW (0.9, 0.95) kept across rounds (TRL never resets it), no evaluation in the loop."""
    common = [
        f"model.path={sft_checkpoint}",
        "sft.enabled=false",
        "loop.iterations=100000",  # the wall-clock budget ends the run
        f"loop.prompts_per_iteration={job.prompts_per_round}",
        f"loop.seed={job.seed}",
        f"generation.n_samples_per_prompt={job.samples_per_prompt}",
        f"generation.temperature={job.temperature}",
        f"generation.top_p={job.top_p}",
        f"generation.max_new_tokens={job.max_new_tokens}",
        "reward.correct=1.0",
        "reward.wrong=0.0",
        "reward.no_answer=0.0",
        f"training.lr={job.lr}",
        f"training.epochs={job.epochs}",
        f"training.batch_size={job.batch_size}",
        f"training.micro_batch_size={job.micro_batch_size}",
        "training.schedule=constant",
        "training.warmup_ratio=0.0",
        "training.reset_optimizer_each_iteration=false",
        "eval.every=100000",
        f"logging.run_dir={run_dir}",
        "logging.name=itero",
        "logging.progress=false",
    ]
    if job.name == "grpo":
        algo = ["algorithm.loss_agg=token-mean", "algorithm.scale_rewards=group", f"algorithm.epsilon={job.epsilon}"]
        return [*common, *algo, f"algorithm.beta={job.beta}"]
    algo = ["algorithm.loss=sigmoid", f"algorithm.beta={job.beta}", "algorithm.reference=initial"]
    return [*common, *algo, "algorithm.pairing=max_min"]


def trl_kwargs(job: Job, output_dir: str, max_rounds: int) -> dict:
    """TRL's config for the same job: GRPOConfig (grpo) or OnlineDPOConfig (dpo) keyword arguments."""
    common = dict(
        output_dir=output_dir,
        learning_rate=job.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        adam_beta1=0.9,
        adam_beta2=0.95,
        weight_decay=0.0,
        max_grad_norm=1.0,
        temperature=job.temperature,
        top_p=job.top_p,
        top_k=0,
        per_device_train_batch_size=job.micro_batch_size,
        gradient_accumulation_steps=job.batch_size // job.micro_batch_size,
        max_steps=max_rounds * job.steps_per_round,
        save_strategy="steps",
        save_steps=job.steps_per_round,  # a checkpoint at every round's end, as itero's iterations
        save_only_model=True,
        logging_steps=job.steps_per_round,
        report_to="none",
        use_cpu=True,
        seed=job.seed,
        disable_dropout=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    if job.name == "dpo":
        return {**common, "max_new_tokens": job.max_new_tokens, "beta": [job.beta], "loss_type": "sigmoid"}
    samples = job.prompts_per_round * job.samples_per_prompt
    return {
        **common,
        "num_generations": job.samples_per_prompt,
        "max_completion_length": job.max_new_tokens,
        "steps_per_generation": samples // job.micro_batch_size,  # one generation batch = one itero round
        "num_iterations": job.epochs,
        "epsilon": job.epsilon,
        "beta": job.beta,
        "loss_type": "dapo",  # token-mean over the optimizer batch, itero's loss_agg=token-mean
        "scale_rewards": "group",
        "shuffle_dataset": False,  # the prompts in itero's order: the same prompts in the same rounds
        "log_completions": False,
    }
