"""End to end on CPU: SFT warm-up, then RL iterations in which held-out greedy accuracy really rises."""

import json

import pytest

from itero.config import load_config
from itero.loop import run

SMALL = [
    "model.tiny.hidden_size=128",
    "model.tiny.num_layers=2",
    "model.tiny.intermediate_size=384",
    "task.arithmetic.digits=1",
    "task.arithmetic.num_train=500",
    "task.arithmetic.num_test=100",
    "sft.num_examples=300",
    "sft.steps=SFT_STEPS",
    "sft.batch_size=32",
    "sft.lr=3e-3",
    "generation.temperature=0.7",
    "generation.max_new_tokens=32",
    "loop.prompts_per_iteration=400",
    "eval.k=2",
    "logging.progress=false",
]


def metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_raft_raises_greedy_accuracy(tmp_path):
    overrides = [o.replace("SFT_STEPS", "300") for o in SMALL] + [
        "algorithm=raft",
        "training.lr=3e-4",
        "training.epochs=8",
        "loop.iterations=3",
        f"logging.run_dir={tmp_path}",
        "logging.name=raft",
    ]
    rows = metrics(run(load_config(None, overrides)))
    start, end = rows[0]["eval/greedy_accuracy"], rows[-1]["eval/greedy_accuracy"]
    assert rows[0]["iteration"] == 0 and rows[-1]["iteration"] == 3
    assert end >= start + 0.06, (start, end)
    assert rows[-1]["score/sample_accuracy"] > rows[1]["score/sample_accuracy"]
