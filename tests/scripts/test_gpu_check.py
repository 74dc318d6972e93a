"""scripts/gpu_check.py on the tiny shape on CPU: the code a GPU run takes, minus CUDA.

The tiny shape (scripts/gpu_check_parts/setup.py SHAPES["tiny"]) is a Qwen2 model with hidden 64,
2 layers, 4 heads of 16, 2 KV heads, intermediate 128, vocabulary 256, tied embeddings; the CPU
workload (WORKLOADS["cpu"]) has prompts of 8 tokens, 8 new tokens, learner steps of 4 rows in
micro-batches of 2, LoRA rank 4. The expected counts below are worked out by hand from those.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu_check.py"
CHECKS = ["build", "generation", "learner", "memory", "lora", "fsdp"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(SCRIPT), "--device", "cpu", "--shapes", "tiny", "--out", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / "gpu_check.json").read_text()), (out / "gpu_check.md").read_text(), done.stdout


def test_every_check_is_present_and_passed(report):
    result, _, stdout = report
    checks = result["shapes"]["tiny"]
    assert list(checks) == CHECKS
    assert {name: c["status"] for name, c in checks.items()} == dict.fromkeys(CHECKS, "passed")
    for name in CHECKS:  # one progress line per check, with its timing
        assert any(f"tiny {name}" in line and " s" in line for line in stdout.splitlines()), name


def test_versions_are_recorded_in_the_json_and_the_table_header(report):
    result, md, _ = report
    env = result["env"]
    assert env["torch"] and env["transformers"] and env["device"] == "cpu"
    assert env["cuda"] is None
    assert f"torch {env['torch']}" in md.splitlines()[2]
    assert "| tiny |" in md


def test_the_model_goes_through_itero_loading_and_the_fast_decode_path(report):
    build = report[0]["shapes"]["tiny"]["build"]
    # per layer: q 64·64 + k 64·32 + v 64·32 + o 64·64 + q/k/v biases (64+32+32) + 3·64·128 + 2 norms of 64
    layer = 4096 + 2048 + 2048 + 4096 + 128 + 3 * 64 * 128 + 2 * 64
    assert build["params"] == 2 * layer + 64 + 256 * 64  # + final norm + tied embedding
    assert build["dtype"] == "float32"
    assert build["fast_decode"] == "used"  # a plain Qwen2 in fp32 on CPU: unsupported_reason is None


def test_generation_and_learner_speeds_are_positive(report):
    checks = report[0]["shapes"]["tiny"]
    for rows in (2, 4):
        for name in ("itero", "generate"):
            assert checks["generation"][f"{name}_b{rows}_tokens_per_s"] > 0
        # model.generate has EOS suppressed: exactly 8 new tokens per row
        assert checks["generation"][f"generate_b{rows}_tokens"] == rows * 8
        assert 0 < checks["generation"][f"itero_b{rows}_tokens"] <= rows * 8
    learner = checks["learner"]
    assert learner["tokens_per_step"] == 4 * 16
    assert learner["tokens_per_s"] > 0 and learner["mfu"] > 0
    assert learner["grad_norm"] > 0  # the timed step trains: no group ties, the ratio is not clipped
    # fp32 weights keep an update of lr = 1e-6 (bf16 ones of magnitude above ~3e-4 would not)
    assert learner["down_proj_fraction_changed"] > 0.5
    assert learner["down_proj_master_fraction_changed"] is None  # fp32 weights need no master copies
    # 6·(linear weights but the head)·4 rows·16 tokens + 6·(head 256·64)·4 rows·8 response tokens
    # + 12·layers·hidden·(16 / 2) per token for attention
    body = 2 * (4096 + 2048 + 2048 + 4096 + 3 * 64 * 128)
    assert learner["model_flops_per_step"] == pytest.approx(
        4 * 16 * (6 * body + 12 * 2 * 64 * 8) + 4 * 8 * 6 * 256 * 64
    )


def test_the_memory_plan_is_the_dry_run_arithmetic_for_the_same_shapes(report):
    memory = report[0]["shapes"]["tiny"]["memory"]
    params = report[0]["shapes"]["tiny"]["build"]["params"]
    assert memory["planned_params"] == params
    # fp32 trained policy: 4 (weights) + 4 (grads) + 8 (AdamW moments) bytes per parameter
    assert memory["planned_states_bytes"] == 16 * params
    # micro-batch of 2 rows × 16 tokens: 34·s·b·h per layer + s·b·V·8 for the logits
    assert memory["planned_activations_bytes"] == 34 * 16 * 2 * 64 * 2 + 16 * 2 * 256 * 8
    assert memory["measured_peak_bytes"] is None  # not measured on CPU


def test_the_fsdp_checkpoint_reloads_equal(report):
    fsdp = report[0]["shapes"]["tiny"]["fsdp"]
    assert fsdp["backend"] == "gloo" and fsdp["strategy"] == "zero3"
    assert fsdp["reload_equal"] is True
    assert fsdp["weights_max_abs_diff"] == 0.0
    assert fsdp["logprobs_max_abs_diff"] <= 1e-6
    assert fsdp["tokens_per_s"] > 0 and fsdp["grad_norm"] > 0


def test_the_lora_step_changes_only_adapter_weights(report):
    lora = report[0]["shapes"]["tiny"]["lora"]
    assert lora["base_tensors_changed"] == 0
    assert lora["adapter_tensors_changed"] > 0
    # rank 4 on q (64→64), k, v (64→32), o (64→64), gate, up (64→128), down (128→64): r·(in + out) each
    per_layer = 4 * ((64 + 64) + 2 * (64 + 32) + (64 + 64) + 2 * (64 + 128) + (128 + 64))
    assert lora["trainable_params"] == 2 * per_layer
    assert lora["planned_adapter_params"] == lora["trainable_params"]
    # the plan for a LoRA policy: frozen fp32 base (4 bytes) + fp32 adapters, gradients and AdamW (16 bytes)
    params = report[0]["shapes"]["tiny"]["build"]["params"]
    assert lora["planned_states_bytes"] == 4 * params + 16 * 2 * per_layer
    assert lora["tokens_per_s"] > 0


@pytest.fixture
def gpu_check_module(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import gpu_check

    return gpu_check


def test_a_spent_budget_skips_the_check_without_running_it(gpu_check_module, tmp_path):
    import torch
    from gpu_check_parts.checks import ShapeRun
    from gpu_check_parts.setup import WORKLOADS

    run = ShapeRun("tiny", tmp_path / "tiny", WORKLOADS["cpu"], torch.device("cpu"))
    record = gpu_check_module.run_check("build", run, started=time.perf_counter() - 10, budget_s=5)
    assert record["status"] == "skipped" and "budget" in record["reason"]
    assert not (tmp_path / "tiny").exists()  # the build did not start


def test_a_failing_check_records_its_error_and_checks_after_a_failed_build_are_skipped(gpu_check_module, tmp_path):
    import torch
    from gpu_check_parts.checks import ShapeRun
    from gpu_check_parts.setup import WORKLOADS

    run = ShapeRun("tiny", tmp_path / "tiny", WORKLOADS["cpu"], torch.device("cpu"))
    run.results["build"] = {"status": "passed"}  # but no model was loaded: the learner check raises
    failed = gpu_check_module.run_check("learner", run, started=time.perf_counter(), budget_s=60)
    assert failed["status"] == "failed" and failed["error"].startswith("AttributeError")
    run.results["build"] = {"status": "failed"}
    assert gpu_check_module.run_check("memory", run, time.perf_counter(), 60)["status"] == "skipped"
