"""The score stage is a function over a batch: the reward and its running state in, a StageOutput out."""

import pytest
import torch
from helpers import text_batch, tiny

from itero.rewards.reward_model import RunningNorm
from itero.rewards.state import NormState
from itero.stages.rollouts import score


class LengthReward(NormState):
    """A stand-in RewardFn: the response's length, normalised with a running mean / std."""

    def __init__(self):
        self.norm, self.last_metrics = RunningNorm(), {"length_mean": 0.0}

    def grade(self, responses, answers, prompts=None):
        raw = torch.tensor([float(len(r)) for r in responses])
        self.last_metrics = {"length_mean": float(raw.mean())}
        return self.norm(raw).tolist(), [r == a for r, a in zip(responses, answers)]

    def correct(self, responses, answers):
        return [r == a for r, a in zip(responses, answers)]


def batch_of(tok, responses):
    return text_batch(tok, ["1+1="] * len(responses), responses, group_ids=[0] * len(responses)).replace(
        answers=["2"] * len(responses)
    )


def test_score_returns_scores_rows_metrics_and_the_normalisers_state():
    _, tok = tiny()
    out = score(LengthReward(), None, batch_of(tok, ["2", "22", "222", "2222"]))
    assert out.result.scores.tolist() == pytest.approx([-1.1619, -0.3873, 0.3873, 1.1619], abs=1e-4)
    assert out.metrics["sample_accuracy"] == 0.25 and out.metrics["length_mean"] == 2.5
    assert [r["correct"] for r in out.rows["rollouts"]] == [True, False, False, False]
    assert out.state == {"reward_norm": {"count": 4, "mean": 2.5, "m2": 5.0}}


def test_the_normaliser_continues_from_the_state_it_is_given():
    _, tok = tiny()
    first, second = batch_of(tok, ["2", "22"]), batch_of(tok, ["222", "2222"])
    reward = LengthReward()
    state = score(reward, None, first).state["reward_norm"]
    fresh = LengthReward()  # another process: a resumed run
    continued = score(fresh, state, second)
    assert continued.state["reward_norm"] == {"count": 4, "mean": 2.5, "m2": 5.0}  # as one batch of all four
    restarted = score(LengthReward(), None, second)  # without the state: statistics of this batch alone
    assert restarted.state["reward_norm"]["count"] == 2
    assert continued.result.scores.tolist() != restarted.result.scores.tolist()
