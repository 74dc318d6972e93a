"""A diverging run stops at its first non-finite step, saves nothing of it, and resumes once fixed."""

import json
import math

import pytest
import torch
from helpers import TINY_RUN as TINY
from helpers import text_batch, tiny

from itero.cli import main
from itero.errors import DivergenceError, IteroError
from itero.tracking.rundir import config_sha
from itero.training.learner import Learner, OptimConfig


def learner_and_batch(lr: float):
    model, tok = tiny()
    batch = text_batch(tok, ["1+2=", "4+4="], ["3", "8"])
    return Learner(model, OptimConfig(lr=lr, batch_size=1, micro_batch_size=1)), batch


def nll(mb, logprobs):
    loss = -(logprobs * mb.response_mask).sum() / mb.response_mask.sum()
    return loss, {}


def test_a_nan_loss_is_refused_before_the_optimizer_step():
    learner, batch = learner_and_batch(1e-3)
    before = {n: p.detach().clone() for n, p in learner.model.named_parameters()}
    calls = []

    def nan_on_second_step(mb, logprobs):
        calls.append(1)
        loss, m = nll(mb, logprobs)
        return (loss * math.nan if len(calls) == 2 else loss), m

    with pytest.raises(DivergenceError, match=r"non-finite loss \(nan\) at optimizer step 2 of 2"):
        learner.fit(batch, nan_on_second_step)
    moved = [n for n, p in learner.model.named_parameters() if not torch.equal(p, before[n])]
    assert moved  # the first step was applied ...
    assert all(torch.isfinite(p).all() for p in learner.model.parameters())  # ... the NaN one was not
    assert all(p.grad is None for p in learner.model.parameters())  # and its gradients were dropped


def test_parameters_made_non_finite_by_a_step_are_refused():
    learner, batch = learner_and_batch(1e-3)
    learner.start_phase(2)
    step = learner.optimizer.step

    def overflowing_step():  # an update past float32's range, as a huge lr or an Adam without eps gives
        step()
        next(learner.model.parameters()).data[0] = math.inf

    learner.optimizer.step = overflowing_step
    with pytest.raises(DivergenceError, match="non-finite parameters after the optimizer step at optimizer step 1"):
        learner.fit(batch, nll)
    assert issubclass(DivergenceError, IteroError)


@pytest.mark.slow
def test_train_with_a_huge_learning_rate_stops_with_a_message_and_resumes_when_fixed(tmp_path, capsys):
    args = ["train", "configs/quickstart.yaml", *TINY, f"logging.run_dir={tmp_path}", "logging.name=r"]
    assert main([*args, "training.lr=1e10"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: iteration 1: training diverged: non-finite") and err.count("\n") == 1
    assert "training.lr=10000000000.0" in err and "--force" in err
    run_dir = tmp_path / "r"
    assert (run_dir / "sft" / "checkpoint").exists()  # the last good checkpoint
    assert (run_dir / "iter_1" / "prepared.pt").exists() and not (run_dir / "iter_1" / "checkpoint").exists()

    diverged = (run_dir / "config.yaml").read_text()
    assert main([*args, "training.lr=1e-4", "--force"]) == 0  # resumes at the train stage
    train = json.loads((run_dir / "iter_1" / "train.json").read_text())
    assert train["steps"] > 0 and math.isfinite(train["loss"])
    # provenance: the stages before the fix ran under the diverged config, kept in config.history/
    stages = json.loads((run_dir / "iter_1" / "provenance.json").read_text())
    fixed = config_sha((run_dir / "config.yaml").read_text())
    assert stages == {
        "generate": config_sha(diverged),
        "score": config_sha(diverged),
        "prepare": config_sha(diverged),
        "train": fixed,
    }
    assert (run_dir / "config.history" / f"{config_sha(diverged)}.yaml").read_text() == diverged


@pytest.mark.slow
def test_a_diverging_sft_warm_up_saves_no_checkpoint(tmp_path, capsys):
    args = ["train", "configs/quickstart.yaml", *TINY, f"logging.run_dir={tmp_path}", "logging.name=r"]
    assert main([*args, "sft.lr=1e10"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: SFT warm-up: training diverged: non-finite") and "sft.lr=10000000000.0" in err
    assert not (tmp_path / "r" / "sft" / "checkpoint").exists()
    assert main([*args, "--force"]) == 0
    assert (tmp_path / "r" / "iter_1" / "checkpoint").exists()
