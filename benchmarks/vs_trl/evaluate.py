"""Every saved checkpoint of both sides, decoded greedily on the same fresh problems by one runtime
(``itero retest``'s code: ``greedy_verdicts`` and ``paired_difference``), after the timed part."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from itero.evaluation.retest import paired_difference
from itero.evaluation.task_eval import greedy_verdicts
from itero.tasks import build_task

from .prepare import base_config, eval_problems
from .settings import Job


def read_rounds(path: Path) -> tuple[dict, list[dict]]:
    """(the start line, the finished rounds) of a side's ``rounds.jsonl``; a missing file is no round."""
    if not path.exists():
        return {}, []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return (lines[0] if lines and "start" in lines[0] else {}), [r for r in lines if "round" in r]


def evaluate(job: Job, sft: Path, work: Path, sides: dict[str, list[dict]], problems: int, threads: int) -> dict:
    """Greedy accuracy of the start and of each side's rounds on the same ``problems`` fresh problems,
    each paired with the start. Returns {"problems": [texts], "start": row, side: [rows]}."""
    import torch

    from itero.runtime import build_runtime

    torch.set_num_threads(threads)
    cfg = base_config(job, [f"model.path={sft}", "sft.enabled=false", "logging.progress=false"])
    task = build_task(cfg.task)
    fresh = eval_problems(job, problems)
    rt = build_runtime(cfg, work / "eval", task)

    def decode(checkpoint: Path | None) -> list[bool]:
        rt.models.ensure_policy(checkpoint)
        return greedy_verdicts(rt.generator, rt.encode, task, fresh, rt.reward, job.max_new_tokens)

    start = decode(None)  # model.path is the SFT checkpoint: the policy both sides start from
    texts = [p.prompt for p in fresh]
    digest = hashlib.sha1("\n".join(texts).encode()).hexdigest()  # which problems each row was decoded on
    out: dict = {"problems": texts, "start": {**paired_difference(start, start), "problems_sha1": digest}}
    for side, rounds in sides.items():
        out[side] = []
        for r in rounds:
            row = paired_difference(start, decode(Path(r["checkpoint"])))
            out[side].append({"round": r["round"], "seconds": r["seconds"], **row, "problems_sha1": digest})
    return out
