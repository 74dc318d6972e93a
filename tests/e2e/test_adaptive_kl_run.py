"""The adaptive KL coefficient through the loop: β follows the measured KL from iteration to iteration,
stays put when fixed, and a run killed after iteration 1's training resumes with the same β sequence."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import TINY_RUN

from itero.config import load_config
from itero.loop import run

BETA, TARGET, HORIZON = 0.05, 1e-4, 32.0  # 8 prompts × 4 samples = 32 rows: β moves by up to ±20 % an iteration
ADAPTIVE = [
    *(o for o in TINY_RUN if not o.startswith("loop.iterations")),
    "loop.iterations=2",
    f"algorithm.beta={BETA}",
    "algorithm.kl_ctrl=adaptive",
    f"algorithm.kl_target={TARGET}",
    f"algorithm.kl_horizon={HORIZON}",
]


def prepare_stats(run_dir: Path) -> list[dict]:
    return [json.loads((d / "prepare.json").read_text()) for d in sorted(run_dir.glob("iter_*"))]


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("adaptive")
    return run(load_config(None, [*ADAPTIVE, f"logging.run_dir={root}", "logging.name=straight"]))


@pytest.mark.slow
def test_beta_follows_the_measured_kl(straight):
    stats = prepare_stats(straight)
    assert [s["kl_coef"] for s in stats][0] == BETA
    for k, s in enumerate(stats):
        # Ziegler's update on the KL iteration k measured: β_{k+1} = β_k·(1 + clip(KL/target − 1, ±0.2)·n/horizon)
        error = min(max(s["kl_ctrl_kl"] / TARGET - 1, -0.2), 0.2)
        assert s["kl_coef_next"] == pytest.approx(s["kl_coef"] * (1 + error * 32 / HORIZON), rel=1e-9)
        if k + 1 < len(stats):
            assert stats[k + 1]["kl_coef"] == s["kl_coef_next"]  # the next iteration runs with it
    # iteration 1: π_old is π_ref (KL ≈ 0 < target) → β falls 20 %; once trained, KL ≫ 1e-4 → β rises 20 %
    assert stats[0]["kl_ctrl_kl"] < TARGET / 10 and stats[0]["kl_coef_next"] == pytest.approx(0.8 * BETA)
    assert all(s["kl_ctrl_kl"] > 10 * TARGET for s in stats[1:])
    assert [s["kl_coef"] for s in stats] == pytest.approx([BETA, 0.8 * BETA])
    assert stats[1]["kl_coef_next"] == pytest.approx(0.96 * BETA)
    metrics = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [m["prepare/kl_coef"] for m in metrics if m["iteration"] > 0] == [
        s["kl_coef"] for s in stats
    ]  # what `itero compare` plots


@pytest.mark.slow
def test_fixed_beta_stays(tmp_path):
    overrides = [*ADAPTIVE, "algorithm.kl_ctrl=fixed", f"logging.run_dir={tmp_path}"]
    run_dir = run(load_config(None, overrides))
    assert [s["kl_coef"] for s in prepare_stats(run_dir)] == [BETA, BETA]
    assert not list(run_dir.rglob("kl_ctrl.json"))


@pytest.mark.slow
def test_killed_after_iteration_1_training_resumes_with_the_same_betas(straight, tmp_path):
    overrides = [*ADAPTIVE, f"logging.run_dir={tmp_path}", "logging.name=killed"]
    code = "import sys; from itero.config import load_config; from itero.loop import run; run(load_config(None, sys.argv[1:]))"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = tmp_path / "killed.log"  # a file, not a pipe: a full pipe would stall the run
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-c", code, *overrides], stdout=out, stderr=subprocess.STDOUT, env=env)
    trained = tmp_path / "killed" / "iter_1" / "checkpoint"
    deadline = time.time() + 600
    while not trained.exists():
        assert proc.poll() is None, log.read_text()[-2000:]
        assert time.time() < deadline, f"{trained} never appeared"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (tmp_path / "killed" / "iter_2" / "checkpoint").exists()
    resumed = run(load_config(None, overrides))
    betas = lambda d: [(s["kl_coef"], s["kl_coef_next"]) for s in prepare_stats(d)]
    assert betas(resumed) == betas(straight)
    for k in (1, 2):
        name = f"iter_{k}/kl_ctrl.json"
        assert json.loads((resumed / name).read_text()) == json.loads((straight / name).read_text())
