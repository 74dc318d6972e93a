"""Which model the loop uses where: the DPO reference and RestEM's restart point."""

import torch

from itero.config import load_config
from itero.loop import run
from itero.models.loading import load_model
from itero.training.forward import compute_logprobs

TINY = [
    "model.tiny.hidden_size=32",
    "model.tiny.num_layers=2",
    "model.tiny.intermediate_size=64",
    "sft.steps=150",
    "sft.batch_size=16",
    "sft.lr=3e-3",
    "sft.num_examples=200",
    "loop.iterations=2",
    "loop.prompts_per_iteration=16",
    "generation.n_samples_per_prompt=4",
    "generation.max_new_tokens=24",
    "generation.temperature=1.0",
    "task.arithmetic.num_train=400",
    "task.arithmetic.num_test=8",
    "eval.k=1",
    "training.batch_size=4",
    "training.micro_batch_size=4",
    "logging.progress=false",
]


def prepared(run_dir, k):
    return torch.load(run_dir / f"iter_{k}" / "prepared.pt", weights_only=False)


def test_dpo_reference_previous_vs_initial(tmp_path):
    for reference in ("previous", "initial"):
        cfg = load_config(
            None,
            TINY
            + [
                "algorithm=dpo",
                f"algorithm.reference={reference}",
                f"logging.run_dir={tmp_path}",
                f"logging.name={reference}",
            ],
        )
        run_dir = run(cfg)
        batch = prepared(run_dir, 2)
        assert batch.batch_size > 0
        expected_model = run_dir / ("iter_1/checkpoint" if reference == "previous" else "sft/checkpoint")
        expected = compute_logprobs(load_model(str(expected_model)), batch, micro_batch_size=8)
        torch.testing.assert_close(batch.ref_logprobs, expected, rtol=1e-5, atol=1e-5)
        other_model = run_dir / ("sft/checkpoint" if reference == "previous" else "iter_1/checkpoint")
        other = compute_logprobs(load_model(str(other_model)), batch, micro_batch_size=8)
        assert not torch.allclose(batch.ref_logprobs, other, atol=1e-4)
