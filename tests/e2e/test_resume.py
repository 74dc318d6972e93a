"""Kill -9 a run mid-stage, run the same command again: it resumes and ends with the same metrics."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TINY = [
    "model.tiny.hidden_size=32",
    "model.tiny.num_layers=2",
    "model.tiny.intermediate_size=64",
    "sft.steps=150",
    "sft.batch_size=16",
    "sft.lr=3e-3",
    "sft.num_examples=200",
    "loop.iterations=2",
    "loop.prompts_per_iteration=12",
    "generation.n_samples_per_prompt=4",
    "generation.max_new_tokens=24",
    "generation.temperature=1.0",
    "task.arithmetic.num_train=400",
    "task.arithmetic.num_test=12",
    "eval.k=2",
    "training.batch_size=4",
    "training.micro_batch_size=2",
    "logging.progress=false",
]


def itero(run_dir: Path, name: str, *extra: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "itero.cli",
        "quickstart",
        *TINY,
        f"logging.run_dir={run_dir}",
        f"logging.name={name}",
        *extra,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)


def metrics_without_timings(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [
        {k: v for k, v in r.items() if "seconds" not in k and "per_second" not in k and not k.startswith("time/")}
        for r in rows
    ]


def kill_when(proc: subprocess.Popen, path: Path, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, f"run ended before {path} appeared:\n{proc.stdout.read()}"
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"


@pytest.mark.slow
def test_kill_and_resume_gives_the_same_metrics(tmp_path):
    # DPO: the path with the most stages (pairs, reference log-probs) to resume through
    straight = itero(tmp_path, "straight", "algorithm=dpo")
    out, _ = straight.communicate(timeout=300)
    assert straight.returncode == 0, out

    # killed right after generation finished (inside score/prepare), then during iteration 2's training
    killed = itero(tmp_path, "killed", "algorithm=dpo")
    kill_when(killed, tmp_path / "killed" / "iter_1" / "rollouts.pt")
    killed = itero(tmp_path, "killed", "algorithm=dpo")
    kill_when(killed, tmp_path / "killed" / "iter_2" / "prepared.pt")
    rollouts_before = (tmp_path / "killed" / "iter_1" / "rollouts.pt").stat().st_mtime_ns
    resumed = itero(tmp_path, "killed", "algorithm=dpo")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert all(
        json.loads(line).get("prepare/pairs", 1) > 0
        for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    )

    # finished stages were not recomputed
    assert (tmp_path / "killed" / "iter_1" / "rollouts.pt").stat().st_mtime_ns == rollouts_before
    assert "[iter_1] evaluate" not in out and "[iter 1] generate" not in out
    assert metrics_without_timings(tmp_path / "killed") == metrics_without_timings(tmp_path / "straight")
    assert not list((tmp_path / "killed").rglob("*.tmp"))


def test_changed_config_on_existing_run_is_refused(tmp_path):
    first = itero(tmp_path, "r", "loop.iterations=0", "eval.num_problems=2")
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out
    config = (tmp_path / "r" / "config.yaml").read_text()
    second = itero(tmp_path, "r", "loop.iterations=0", "eval.num_problems=2", "algorithm.beta=0.3")
    out, _ = second.communicate(timeout=300)
    assert second.returncode == 2 and "different config" in out and "--force" in out
    assert (tmp_path / "r" / "config.yaml").read_text() == config
