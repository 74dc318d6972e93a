"""LoRA runs end to end on CPU: a kill -9 resumes to the same metrics, PPO (critic trained in full beside
a LoRA actor, reference = the adapters disabled) gives finite metrics, and 2 processes train the same
adapters as one."""

import json
import math
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_resume import kill_when, metrics_without_timings

TINY = [
    "model.tiny.hidden_size=32",
    "model.tiny.num_layers=1",
    "model.tiny.intermediate_size=64",
    "sft.steps=150",
    "sft.batch_size=16",
    "sft.lr=3e-3",
    "sft.num_examples=60",
    "loop.iterations=2",
    "loop.prompts_per_iteration=8",
    "generation.n_samples_per_prompt=4",
    "generation.max_new_tokens=16",
    "generation.temperature=1.0",
    "generation.prompts_per_call=4",
    "task.arithmetic.digits=1",
    "task.arithmetic.num_ops=1",
    "task.arithmetic.ops=+",
    "task.arithmetic.num_train=60",
    "task.arithmetic.num_test=8",
    "eval.k=1",
    "training.batch_size=4",
    "training.micro_batch_size=2",
    "training.epochs=2",
    "training.lr=1e-2",  # adapters need a larger step than full fine-tuning
    "model.lora.r=4",
    "model.lora.alpha=8",
    "logging.progress=false",
]


def itero(run_dir, name: str, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "itero.cli", "quickstart", *TINY, f"logging.run_dir={run_dir}", f"logging.name={name}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([*cmd, *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)


def finished(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    return out


def adapters(checkpoint) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint / "adapter_model.safetensors"))


@pytest.mark.slow
def test_kill_and_resume_with_adapters_gives_the_same_metrics(tmp_path):
    finished(itero(tmp_path, "straight", "algorithm=dpo"))
    killed = itero(tmp_path, "killed", "algorithm=dpo")
    kill_when(killed, tmp_path / "killed" / "iter_2" / "prepared.pt", timeout=600)  # inside iteration 2
    finished(itero(tmp_path, "killed", "algorithm=dpo"))
    assert metrics_without_timings(tmp_path / "killed") == metrics_without_timings(tmp_path / "straight")
    for k in (1, 2):
        checkpoint = tmp_path / "killed" / f"iter_{k}" / "checkpoint"
        assert not list(checkpoint.glob("model*.safetensors"))  # adapters only
        config = json.loads((checkpoint / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"] == "../../sft/checkpoint"  # the run can move
        a, b = adapters(checkpoint), adapters(tmp_path / "straight" / f"iter_{k}" / "checkpoint")
        assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
    start = adapters(tmp_path / "straight" / "iter_1" / "checkpoint")
    assert any(
        not torch.equal(v, adapters(tmp_path / "straight" / "iter_2" / "checkpoint")[n]) for n, v in start.items()
    )


@pytest.mark.slow
def test_ppo_with_adapters_and_a_full_critic(tmp_path):
    out = finished(itero(tmp_path, "ppo", "algorithm=ppo", "algorithm.beta=0.05", "loop.iterations=1"))
    rows = [json.loads(line) for line in (tmp_path / "ppo" / "metrics.jsonl").read_text().splitlines()]
    numbers = [v for r in rows for v in r.values() if isinstance(v, float)]
    assert numbers and all(math.isfinite(v) for v in numbers), out[-2000:]
    train = json.loads((tmp_path / "ppo" / "iter_1" / "train.json").read_text())
    assert train["steps"] > 0 and math.isfinite(train["value_loss"]) and "kl" in json.dumps(rows[-1])
    checkpoint = tmp_path / "ppo" / "iter_1" / "checkpoint"
    assert (checkpoint / "adapter_config.json").exists()  # the actor: adapters
    assert list((checkpoint / "value_model").glob("*.safetensors"))  # the critic: every weight


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(nproc: int, run_dir, name: str) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
    cmd += ["--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "itero.cli", "quickstart"]
    cmd += [*TINY, "algorithm=grpo", "loop.iterations=1", "loop.prompts_per_iteration=16"]
    cmd += [f"logging.run_dir={run_dir}", f"logging.name={name}"]
    done = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_two_processes_train_the_same_adapters_as_one(tmp_path):
    launch(1, tmp_path, "one")
    one, two = tmp_path / "one", tmp_path / "two"
    two.mkdir()
    shutil.copytree(one / "base", two / "base")  # RL from the same SFT start
    shutil.copytree(one / "sft", two / "sft")
    launch(2, tmp_path, "two")
    a, b = (torch.load(d / "iter_1" / "rollouts.pt", weights_only=False) for d in (one, two))
    assert torch.equal(a.response_ids, b.response_ids)
    w1, w2 = adapters(one / "iter_1" / "checkpoint"), adapters(two / "iter_1" / "checkpoint")
    assert max(float(v.abs().max()) for n, v in w1.items() if "lora_B" in n) > 1e-3  # the adapters moved
    # atol 5e-5 against adapter values of ~0.1: 32 Adam steps at lr 1e-2 turn the order of float sums
    # into differences of up to 1.2e-5 (down_proj's lora_A; 1e-7 elsewhere)
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], rtol=1e-4, atol=5e-5, msg=name)
    train_one, train_two = (json.loads((d / "iter_1" / "train.json").read_text()) for d in (one, two))
    assert train_one["steps"] == train_two["steps"] > 0
    assert train_two["loss"] == pytest.approx(train_one["loss"], rel=1e-4, abs=1e-6)


@pytest.mark.slow
def test_rto_with_lora_trains_its_dpo_model_as_adapters_over_the_sft_checkpoint(tmp_path):
    # RTO's in-run DPO model runs in <run>/dpo_model/ on the same model pool: its adapters name the
    # SFT checkpoint relatively (the run can move), and RTO's PPO then reads that folder as π_dpo
    finished(itero(tmp_path, "rto", "algorithm=rto", "algorithm.dpo_iterations=1", "loop.iterations=1"))
    from itero.models import lora

    run = tmp_path / "rto"
    dpo_checkpoint = run / "dpo_model" / "iter_1" / "checkpoint"
    base = json.loads((dpo_checkpoint / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert not os.path.isabs(base)
    assert Path(lora.adapter_base(dpo_checkpoint)) == (run / "sft" / "checkpoint").resolve()
    metrics = json.loads((run / "iter_1" / "train.json").read_text())
    assert math.isfinite(metrics["loss"]) and metrics["steps"] > 0
