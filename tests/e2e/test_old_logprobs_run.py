"""In a real GRPO run the sampler's log-probs stand in for π_old, and equal the learner's recomputation."""

import json

import pytest
import torch
from helpers import TINY_RUN as TINY

from itero.config import load_config
from itero.loop import run
from itero.models.loading import load_model
from itero.old_logprobs import TOLERANCE
from itero.training.forward import compute_logprobs


@pytest.mark.slow
def test_grpo_takes_old_logprobs_from_the_sampler_and_they_equal_the_learners(tmp_path):
    overrides = [*TINY, "generation.top_p=0.9", f"logging.run_dir={tmp_path}", "logging.name=g"]
    run_dir = run(load_config(None, overrides))
    stats = json.loads((run_dir / "iter_1" / "prepare.json").read_text())
    assert stats["old_logprobs_from_sampler"] == 1.0 and stats["old_logprobs_sampler_gap"] <= TOLERANCE
    batch = torch.load(run_dir / "iter_1" / "prepared.pt", weights_only=False)
    policy = load_model(str(run_dir / "sft" / "checkpoint"))
    recomputed = compute_logprobs(policy, batch, micro_batch_size=16)  # T = 1, the TINY run's temperature
    assert batch.response_mask.sum() > 500
    torch.testing.assert_close(batch.old_logprobs, recomputed, atol=TOLERANCE, rtol=0)
