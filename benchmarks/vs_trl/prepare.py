"""What both sides start from: the quickstart task's SFT model, its training prompts in itero's order,
and the fresh problems both are evaluated on."""

from __future__ import annotations

import json
import random
from pathlib import Path

from itero.config import load_config
from itero.tasks import build_task, fresh_problems

from .settings import Job


def base_config(job: Job, overrides: list[str] = ()):
    return load_config(job.config, [*job.sft_overrides, *overrides])


def build_sft(job: Job, out: Path, threads: int) -> Path:
    """The quickstart's SFT warm-up (``itero train CONFIG loop.iterations=0``), reused when already there."""
    import torch

    from itero.loop import run

    checkpoint = out / "sft" / "sft" / "checkpoint"
    if not checkpoint.exists():
        torch.set_num_threads(threads)
        cfg = base_config(
            job, ["loop.iterations=0", f"logging.run_dir={out}", "logging.name=sft", "logging.progress=false"]
        )
        run(cfg)
    return checkpoint


def export_prompts(job: Job, path: Path) -> int:
    """The training prompts as TRL's dataset (JSONL: prompt, answer), in the order itero's rounds take
    them (``itero.stages.rollouts.prompts_for``: one seeded shuffle, consecutive slices), twice over so
    TRL never runs out before itero would wrap around. Returns the number of rows."""
    cfg = base_config(job)
    task = build_task(cfg.task)
    pool = list(task.train)
    random.Random(job.seed).shuffle(pool)
    rows = [{"prompt": task.render(p), "answer": p.answer} for p in pool + pool]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def eval_problems(job: Job, n: int) -> list:
    """``itero retest``'s fresh problems: after the training problems in the task's sequence, never trained on."""
    return fresh_problems(base_config(job).task, n)
