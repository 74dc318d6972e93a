"""TRL's side of the race, in its own process: GRPOTrainer (or the experimental OnlineDPOTrainer) on
the same SFT model, prompts and 0/1 reward, one line per saved round in ``rounds.jsonl``.

TRL logs no split of a round's time, so the trainer's own methods are wrapped with timers: its
``generate`` call, its scoring (reward + old log-probs for GRPO, the reward for online DPO), and
the rest of the round is training (forward, backward, optimizer, the checkpoint's save).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

from .itero_side import stop_at
from .settings import Job, trl_kwargs

# Which trainer methods hold which stage: (generate, generate + scoring) for GRPO, (generate, reward) for DPO.
STAGE_METHODS = {
    "grpo": {"generate": "_generate_single_turn", "scored": "_generate_and_score_completions"},
    "dpo": {"generate": "_generate", "reward": "_calculate_rewards_from_functions"},
}


def math_reward_01(completions, answer, **_):
    """itero's grader (``itero.rewards.math.MathReward``) as a TRL reward function: 1 if correct, else 0."""
    from itero.rewards.math import MathReward

    return MathReward(correct=1.0, wrong=0.0, no_answer=0.0)(list(completions), list(answer))


def count_tokens(result) -> int:
    """Generated tokens (EOS included, as itero counts them) in a wrapped generate call's result."""
    if len(result) == 5:  # online DPO: (prompt_ids, prompt_mask, completion_ids, completion_mask, vision)
        return int(result[3].sum())
    return sum(len(c) for c in result[0])  # GRPO: (completion_ids as lists, logprobs)


def timed(trainer, job: Job, seconds: dict, tokens: list) -> None:
    """Wrap the trainer's stage methods so each call adds its wall-clock seconds (and generated tokens)."""
    for stage, name in STAGE_METHODS[job.name].items():
        method = getattr(trainer, name)

        def wrapper(*args, _method=method, _stage=stage, **kwargs):
            t0 = time.perf_counter()
            result = _method(*args, **kwargs)
            seconds[_stage] += time.perf_counter() - t0
            if _stage == "generate":
                tokens[0] += count_tokens(result)
            return result

        setattr(trainer, name, wrapper)


def make_callback(job: Job, out: Path, budget: float, seconds: dict, tokens: list):
    import torch
    from transformers import TrainerCallback

    class RoundClock(TrainerCallback):
        """Starts the clock at on_train_begin and writes a round line at each round-end checkpoint."""

        def on_train_begin(self, args, state, control, **kwargs):
            self.log = open(out / "rounds.jsonl", "a")
            self.t0 = self.last = time.perf_counter()
            self.done = {"generate": 0.0, "score": 0.0, "tokens": 0}
            self.write({"start": time.time(), "torch_threads": torch.get_num_threads()})
            stop_at(budget)

        def write(self, record: dict) -> None:
            self.log.write(json.dumps(record) + "\n")
            self.log.flush()

        def on_save(self, args, state, control, **kwargs):
            now = time.perf_counter()
            gen = seconds["generate"]
            score = seconds["scored"] - gen if job.name == "grpo" else seconds["reward"]
            stages = {
                "generate": gen - self.done["generate"],
                "score_and_old_logprobs": score - self.done["score"],
            }
            stages["train"] = now - self.last - sum(stages.values())
            self.write(
                {
                    "round": state.global_step // job.steps_per_round,
                    "seconds": now - self.t0,
                    "checkpoint": str(Path(args.output_dir) / f"checkpoint-{state.global_step}"),
                    "tokens": tokens[0] - self.done["tokens"],
                    "optimizer_steps": job.steps_per_round,
                    "stages": stages,
                }
            )
            self.done = {"generate": gen, "score": score, "tokens": tokens[0]}
            self.last = now

    return RoundClock()


def run(job: Job, sft: str, prompts: Path, out: Path, seconds_budget: float, threads: int, max_rounds: int) -> None:
    import torch
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(sft)
    model = AutoModelForCausalLM.from_pretrained(sft, dtype=torch.float32)
    dataset = load_dataset("json", data_files=str(prompts), split="train")
    kwargs = trl_kwargs(job, str(out / "trl"), max_rounds)
    if job.name == "grpo":
        from trl import GRPOConfig as ConfigClass
        from trl import GRPOTrainer as TrainerClass
    else:
        from trl.experimental.online_dpo import OnlineDPOConfig as ConfigClass
        from trl.experimental.online_dpo import OnlineDPOTrainer as TrainerClass
    seconds, tokens = defaultdict(float), [0]
    trainer = TrainerClass(
        model=model,
        reward_funcs=[math_reward_01],
        args=ConfigClass(**kwargs),
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[make_callback(job, out, seconds_budget, seconds, tokens)],
    )
    timed(trainer, job, seconds, tokens)
    trainer.train()
