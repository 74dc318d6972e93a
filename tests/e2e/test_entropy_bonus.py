"""The entropy bonus reaches the loss through the loop: the learner hands the policy's logits over."""

import json

import pytest
from helpers import TINY_RUN as TINY

from itero.config import load_config
from itero.loop import run


@pytest.mark.slow
def test_grpo_with_an_entropy_bonus_trains_and_logs_the_entropy_term(tmp_path):
    overrides = [*TINY, "algorithm.entropy_coef=0.01", f"logging.run_dir={tmp_path}", "logging.name=h"]
    run_dir = run(load_config(None, overrides))
    steps = [json.loads(line) for line in (run_dir / "iter_1" / "train_steps.jsonl").read_text().splitlines()]
    assert steps and all(s["entropy_bonus_term"] > 0 for s in steps)
    # the same entropy as the learner's own log of it (both from the logits of one forward, at T = 1 here)
    assert all(abs(s["entropy_bonus_term"] - s["entropy"]) < 1e-4 for s in steps)
