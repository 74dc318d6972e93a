"""benchmarks/vs_trl.py: both sides get the same settings, the same reward and the same evaluation problems.

The smoke run trains itero and TRL for a few seconds each on the tiny model and reads back every
checkpoint; the other tests check the translation of the shared settings into each side's config.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

pytest.importorskip("trl")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from vs_trl.settings import GRPO, itero_overrides, trl_kwargs  # noqa: E402
from vs_trl.trl_side import math_reward_01  # noqa: E402


def test_reward_is_itero_grader_at_0_1():
    completions = ["28*5=140. 86+140=226. \\boxed{226}", "86+28*5=570. \\boxed{570}", "86+28*5 is a lot"]
    # correct → 1, wrong answer → 0, no answer → 0 (itero's 1 / -0.5 / -1 becomes 1 / 0 / 0 on both sides)
    assert math_reward_01(completions, ["226"] * 3) == [1.0, 0.0, 0.0]


def test_grpo_settings_are_the_same_job_on_both_sides(tmp_path):
    from trl import GRPOConfig

    from itero.config import load_config

    cfg = load_config(GRPO.config, itero_overrides(GRPO, "sft-checkpoint", str(tmp_path)))
    trl = GRPOConfig(**trl_kwargs(GRPO, str(tmp_path / "trl"), max_rounds=2))
    # issue #21: 512 prompts × 8 samples = 4096 per round; μ = 4 passes in batches of 64 → 4 · 4096 / 64 = 256 steps
    assert GRPO.steps_per_round == 256
    assert trl.generation_batch_size == cfg.loop.prompts_per_iteration * cfg.generation.n_samples_per_prompt == 4096
    assert trl.per_device_train_batch_size * trl.gradient_accumulation_steps == cfg.training.batch_size == 64
    assert trl.num_iterations == cfg.training.epochs == 4
    assert trl.save_steps == 256 and trl.max_steps == 2 * 256
    assert (trl.temperature, trl.top_p, trl.max_completion_length) == (0.6, 0.9, 48)
    assert (cfg.generation.temperature, cfg.generation.top_p, cfg.generation.max_new_tokens) == (0.6, 0.9, 48)
    assert trl.learning_rate == cfg.training.lr == 1e-5
    assert (trl.beta, trl.epsilon) == (cfg.algorithm.beta, cfg.algorithm.epsilon) == (0.0, 0.2)
    assert (trl.loss_type, cfg.algorithm.loss_agg) == ("dapo", "token-mean")
    assert trl.scale_rewards == cfg.algorithm.scale_rewards == "group"
    assert (trl.adam_beta1, trl.adam_beta2) == tuple(cfg.training.adam_betas) == (0.9, 0.95)
    assert cfg.training.schedule == "constant" and trl.lr_scheduler_type == "constant"
    assert (cfg.reward.correct, cfg.reward.wrong, cfg.reward.no_answer) == (1.0, 0.0, 0.0)


def test_smoke_run_trains_both_and_evaluates_them_on_the_same_problems(tmp_path):
    out = tmp_path / "vs_trl"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "vs_trl.py"), "--smoke", "--seconds", "4", "--eval-threads", "1"]
    done = subprocess.run([*cmd, "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "vs_trl.json").read_text())
    acc = result["accuracy"]
    problems = acc["problems"]
    assert len(problems) == len(set(problems)) == 12
    digest = hashlib.sha1("\n".join(problems).encode()).hexdigest()
    trained = {json.loads(line)["prompt"] for line in (out / "prompts.jsonl").read_text().splitlines()}
    assert not trained & set(problems)  # fresh: none of the evaluation problems is a training prompt
    assert acc["start"]["problems_sha1"] == digest and acc["start"]["difference"] == 0.0
    for side in ("itero", "trl"):
        s = result["sides"][side]
        assert result["threads"][side] == 1
        assert s["rounds"] >= 1 and s["tokens_per_second"] > 0 and s["optimizer_steps_per_second"] > 0
        assert s["optimizer_steps"] == s["rounds"] * 2 * 8 * 4 // 16  # smoke: μ 2 × 8 prompts × 4 samples / 16
        assert len(acc[side]) == s["rounds"]
        for round_log, row in zip(s["round_log"], acc[side]):
            assert (Path(round_log["checkpoint"]) / "model.safetensors").exists()
            assert row["problems"] == 12 and row["problems_sha1"] == digest
            assert row["seconds"] <= result["seconds"]  # a round counts only if it ended within the budget
        # it trained: the last round's weights moved away from the SFT checkpoint both started from
        last = load_file(Path(s["round_log"][-1]["checkpoint"]) / "model.safetensors")
        start = load_file(Path(result["sft_checkpoint"]) / "model.safetensors")
        assert max(float((last[k] - start[k]).abs().max()) for k in start) > 0
    assert [r["round"] for r in acc["trl"]] == list(range(1, result["sides"]["trl"]["rounds"] + 1))
    assert (out / "vs_trl.md").read_text().count("| itero |") >= 2 and (out / "vs_trl.png").stat().st_size > 0
