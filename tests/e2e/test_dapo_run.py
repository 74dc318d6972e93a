"""DAPO end to end on CPU: dynamic sampling refills the batch with groups of mixed correctness, the overlong
penalty reaches prepare, and a generate stage run again (a resume after kill -9) yields the same batch."""

import json
from collections import defaultdict

import pytest
import torch

from itero.config import load_config
from itero.loop import run

# tests/e2e/test_grpo_learning.py's model and SFT (sample accuracy near 20 %, so many groups of 4 are all
# wrong); 6 groups to fill from rounds of 4 prompts: at least 2 rounds, more as groups are dropped
DAPO = [
    "model.tiny.hidden_size=128",
    "model.tiny.num_layers=2",
    "model.tiny.intermediate_size=384",
    "task.arithmetic.digits=1",
    "task.arithmetic.num_train=500",
    "task.arithmetic.num_test=8",
    "sft.num_examples=300",
    "sft.steps=200",
    "sft.batch_size=32",
    "sft.lr=3e-3",
    "generation.n_samples_per_prompt=4",
    "generation.temperature=1.0",
    "generation.max_new_tokens=32",
    "algorithm=dapo",
    "algorithm.prompts_per_round=4",
    "algorithm.max_generation_rounds=0",
    "algorithm.max_response_length=32",
    "algorithm.overlong_buffer=4",
    "loop.iterations=2",
    "loop.prompts_per_iteration=6",
    "training.epochs=1",
    "training.batch_size=24",
    "training.micro_batch_size=24",
    "eval.every=10",
    "eval.k=1",
    "logging.progress=false",
]


def groups_of(run_dir, k):
    correct = defaultdict(list)
    batch = torch.load(run_dir / f"iter_{k}" / "scored.pt", weights_only=False)
    rows = [json.loads(line) for line in (run_dir / f"iter_{k}" / "rollouts.jsonl").read_text().splitlines()]
    for g, row in zip(batch.group_ids.tolist(), rows):
        correct[g].append(row["correct"])
    return correct


@pytest.mark.slow
def test_dapo_refills_the_batch_with_mixed_groups_and_regenerates_it_identically(tmp_path):
    run_dir = run(load_config(None, [*DAPO, f"logging.run_dir={tmp_path}", "logging.name=dapo"]))
    gen = [json.loads((run_dir / f"iter_{k}" / "generate.json").read_text()) for k in (1, 2)]
    for k, g in enumerate(gen, start=1):
        groups = groups_of(run_dir, k)
        assert len(groups) == 6 and g["groups"] == 6  # the batch is full
        assert all(0 < sum(c) < len(c) for c in groups.values())  # every kept group has mixed correctness
        assert g["generation_rounds"] >= 2 and g["prompts_sampled"] == 4 * g["generation_rounds"]
        # no round past the one that filled the batch: before it at most 5 groups, then at most 4 more
        kept = g["kept_group_fraction"] * g["prompts_sampled"]
        assert 6 <= round(kept) <= 5 + 4
    assert gen[1]["pool_offset"] == gen[0]["prompts_sampled"]  # iteration 2 continues in the pool
    prepare = json.loads((run_dir / "iter_1" / "prepare.json").read_text())
    assert "overlong_penalty_mean" in prepare and prepare["overlong_penalty_mean"] <= 0

    # resume: the generate stage's output gone (killed before it was written), the same command again
    first = torch.load(run_dir / "iter_2" / "rollouts.pt", weights_only=False)
    (run_dir / "iter_2" / "rollouts.pt").unlink()
    run(load_config(None, [*DAPO, f"logging.run_dir={tmp_path}", "logging.name=dapo"]))
    again = torch.load(run_dir / "iter_2" / "rollouts.pt", weights_only=False)
    assert again.response_texts == first.response_texts and again.prompt_texts == first.prompt_texts
    assert torch.equal(again.response_ids, first.response_ids) and torch.equal(again.group_ids, first.group_ids)
    assert json.loads((run_dir / "iter_2" / "generate.json").read_text())["pool_offset"] == gen[1]["pool_offset"]
