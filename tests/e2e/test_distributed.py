"""2 processes = 1 process: the same run under ``torchrun --nproc_per_node 2`` (gloo, CPU) ends with the
same parameters as in one process, for an SFT warm-up plus one iterative-DPO iteration and plus one
GRPO iteration. Generation is sharded by prompt chunk (4 chunks of 4 prompts: 2 per rank), training
by the units of each mini-batch, gradients summed by an all-reduce (itero/distributed.py).
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

TINY = [  # a+b with one digit: enough SFT that sampled answers differ, so DPO has pairs and GRPO signal
    "model.tiny.hidden_size=64",
    "model.tiny.num_layers=2",
    "model.tiny.num_heads=4",
    "model.tiny.num_kv_heads=2",
    "model.tiny.intermediate_size=128",
    "task.arithmetic.digits=1",
    "task.arithmetic.num_ops=1",
    "task.arithmetic.ops=+",
    "task.arithmetic.num_train=60",
    "task.arithmetic.num_test=8",
    "sft.num_examples=60",
    "sft.steps=150",
    "sft.batch_size=16",
    "sft.micro_batch_size=4",
    "sft.lr=3e-3",
    "generation.max_new_tokens=16",
    "generation.n_samples_per_prompt=4",
    "generation.prompts_per_call=4",
    "loop.prompts_per_iteration=16",
    "loop.iterations=1",
    "eval.k=1",
    "logging.progress=false",
    "training.batch_size=8",
    "training.micro_batch_size=2",
    "training.epochs=2",
    "training.lr=1e-3",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(nproc: int, config, overrides: list[str]) -> str:
    """``torchrun --nproc_per_node N -m itero.cli train`` with one thread per process (the 1-process run too,
    so both sample with the same float arithmetic)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(nproc),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        "-m",
        "itero.cli",
        "train",
        str(config),
        *overrides,
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def weights(checkpoint):
    return load_file(str(checkpoint / "model.safetensors"))


def assert_same_weights(a, b, rtol, atol):
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=rtol, atol=atol, msg=name)


@pytest.mark.slow
@pytest.mark.parametrize(
    "algorithm",
    [
        ["algorithm=dpo", "algorithm.nll_weight=1.0"],
        ["algorithm=grpo"],
        ["algorithm=vineppo", "algorithm.num_rollouts=2", "algorithm.step_cut_after=' '", "algorithm.min_step_chars=4"],
        ["algorithm=grpo", "training.max_tokens_per_micro_batch=64"],  # uneven bins of rows sorted by length
    ],
    ids=["dpo", "grpo", "vineppo", "grpo-token-budget"],
)
def test_two_processes_train_the_same_parameters_as_one(tmp_path, algorithm):
    config = tmp_path / "c.yaml"
    config.write_text("{}\n")
    common = TINY + algorithm + [f"logging.run_dir={tmp_path}"]
    launch(1, config, common + ["logging.name=one"])
    one, two = tmp_path / "one", tmp_path / "two"
    # RL from the same start: the SFT checkpoint is shared (the warm-up's own equivalence is checked below)
    two.mkdir()
    shutil.copytree(one / "base", two / "base")
    shutil.copytree(one / "sft", two / "sft")
    launch(2, config, common + ["logging.name=two"])

    # the gathered rollouts are the one-process rollouts, row for row
    a, b = (torch.load(d / "iter_1" / "rollouts.pt", weights_only=False) for d in (one, two))
    assert torch.equal(a.response_ids, b.response_ids) and a.response_texts == b.response_texts
    if algorithm[0] == "algorithm=vineppo":  # Monte-Carlo rollouts sharded by state chunk: the same advantages
        p1, p2 = (torch.load(d / "iter_1" / "prepared.pt", weights_only=False) for d in (one, two))
        torch.testing.assert_close(p2.advantages, p1.advantages)
        s1, s2 = (json.loads((d / "iter_1" / "prepare.json").read_text()) for d in (one, two))
        assert s1["mc_tokens"] == s2["mc_tokens"] > 0 and s1["mc_unique_states"] == s2["mc_unique_states"]
    train_one, train_two = (json.loads((d / "iter_1" / "train.json").read_text()) for d in (one, two))
    assert train_one["steps"] == train_two["steps"] > 0
    # the iteration moved the weights, identically up to the order of float sums
    start, w1, w2 = (
        weights(d) for d in (one / "sft" / "checkpoint", one / "iter_1" / "checkpoint", two / "iter_1" / "checkpoint")
    )
    assert max(float((w1[n] - start[n]).abs().max()) for n in w1) > 1e-3
    # atol 1e-5 against moves of ~2.5e-3: Adam turns the float noise of the k_proj bias (whose gradient is
    # 0 analytically: softmax ignores a constant shift of the keys) into steps of up to ~2e-6
    assert_same_weights(w1, w2, rtol=1e-4, atol=1e-5)
    assert train_two["loss"] == pytest.approx(train_one["loss"], rel=1e-4, abs=1e-6)

    if algorithm[0] == "algorithm=grpo":  # the 2-process run resumes in 1 process for a second iteration
        launch(1, config, common + ["logging.name=two", "loop.iterations=2", "--force"])
        assert (two / "iter_2" / "checkpoint" / "model.safetensors").exists()
        assert json.loads((two / "iter_2" / "train.json").read_text())["steps"] > 0


@pytest.mark.slow
def test_two_processes_warm_up_like_one(tmp_path):
    # a few SFT steps only: over 150 Adam steps float-order noise grows chaotically (~1 % of the move)
    config = tmp_path / "c.yaml"
    config.write_text("{}\n")
    common = TINY + ["sft.steps=4", "loop.iterations=0", f"logging.run_dir={tmp_path}"]
    launch(1, config, common + ["logging.name=one"])
    launch(2, config, common + ["logging.name=two"])
    w1, w2 = (weights(tmp_path / d / "sft" / "checkpoint") for d in ("one", "two"))
    base = weights(tmp_path / "one" / "base")
    assert max(float((w1[n] - base[n]).abs().max()) for n in w1) > 1e-3
    assert_same_weights(w1, w2, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize(
    "algorithm,strategies",
    [
        (["algorithm=ppo"], ("zero3", "zero2")),
        (["algorithm=dpo", "algorithm.nll_weight=1.0"], ("zero2", "fsdp")),
        # token-budget bins of one ~40-token pair in mini-batches of 3 pairs: rank 0 packs 2 bins, rank 1 packs 1
        # and adds an empty one, so FSDP's collectives line up
        (
            ["algorithm=dpo", "algorithm.nll_weight=1.0", "training.batch_size=3", "training.micro_batch_size=1"]
            + ["training.max_tokens_per_micro_batch=48"],
            ("fsdp", "zero2"),
        ),
    ],
    ids=["ppo-critic", "dpo", "dpo-token-budget"],
)
def test_sharded_learner_trains_like_one_process_and_resumes_across_strategies(tmp_path, algorithm, strategies):
    """FSDP2-sharded policy (and PPO's critic) on 2 ranks = the unsharded 1-process run; then each run's
    checkpoint, optimizer state included, resumes under the other layout for a second iteration."""
    config = tmp_path / "c.yaml"
    config.write_text("{}\n")
    common = TINY + algorithm + [f"logging.run_dir={tmp_path}", "training.reset_optimizer_each_iteration=false"]
    launch(1, config, common + ["logging.name=one"])
    one, two = tmp_path / "one", tmp_path / "two"
    two.mkdir()
    shutil.copytree(one / "base", two / "base")
    shutil.copytree(one / "sft", two / "sft")
    out = launch(2, config, common + ["logging.name=two", f"distributed.strategy={strategies[0]}"])
    local, total = (
        int(n.replace(",", "")) for n in re.search(r"holds ([\d,]+) of its ([\d,]+) parameters", out).groups()
    )
    assert local < 0.55 * total  # each of the 2 ranks stores about half (blocks split by rows, rounded up)

    start, w1, w2 = (
        weights(d) for d in (one / "sft" / "checkpoint", one / "iter_1" / "checkpoint", two / "iter_1" / "checkpoint")
    )
    assert sorted(w1) == sorted(w2)  # the gathered save has the unsharded file's tensors (tied lm_head once)
    assert max(float((w1[n] - start[n]).abs().max()) for n in w1) > 1e-3
    assert_same_weights(w1, w2, rtol=1e-4, atol=1e-5)
    if algorithm[0] == "algorithm=ppo":  # the critic was sharded, trained and gathered too
        v1, v2 = (weights(d / "iter_1" / "checkpoint" / "value_model") for d in (one, two))
        assert_same_weights(v1, v2, rtol=1e-4, atol=1e-5)
        h1, h2 = (torch.load(d / "iter_1" / "checkpoint" / "value_model" / "value_head.pt") for d in (one, two))
        assert float(h1["weight"].abs().max()) > 0
        torch.testing.assert_close(h2["weight"], h1["weight"], rtol=1e-4, atol=1e-6)

    # iteration 2 with the kept optimizer: the unsharded run continues sharded, the sharded one in 1 process
    launch(
        2,
        config,
        common + ["logging.name=one", "loop.iterations=2", f"distributed.strategy={strategies[1]}", "--force"],
    )
    launch(1, config, common + ["logging.name=two", "loop.iterations=2", "--force"])
    u1, u2 = (weights(d / "iter_2" / "checkpoint") for d in (one, two))
    assert max(float((u1[n] - w1[n]).abs().max()) for n in u1) > 2e-4  # the cosine schedule is near its end
    assert_same_weights(u1, u2, rtol=1e-4, atol=2e-5)
