"""Reward-model maths on hand numbers, and RewardModel scores against a direct forward of the classifier."""

import math

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from itero.models.loading import load_tokenizer
from itero.models.tiny import build_char_tokenizer
from itero.models.tiny_rm import build_tiny_reward_model
from itero.rewards.math import MathReward
from itero.rewards.reward_model import (
    RewardModel,
    RunningNorm,
    bradley_terry_loss,
    pairwise_accuracy,
)

PROMPTS = ["2+3=", "Q: 12*3?\nA: ", "", "say  hi\t"]
RESPONSES = ["5", "36, so \\boxed{36}", "only a response, longer than the others", " hi"]


def test_bradley_terry_loss_and_gradient_on_hand_numbers():
    chosen = torch.tensor([1.0, 0.0, 3.0], requires_grad=True)
    rejected = torch.tensor([0.0, 0.0, 5.0])
    loss = bradley_terry_loss(chosen, rejected)
    # -log σ(Δ) = log(1 + e^{-Δ}) for Δ = 1, 0, -2
    expected = (math.log1p(math.exp(-1)) + math.log(2) + math.log1p(math.exp(2))) / 3
    assert loss.item() == pytest.approx(expected, abs=1e-6)  # (0.313262 + 0.693147 + 2.126928) / 3
    loss.backward()
    # d/dr_c of -log σ(Δ) / N = -(1 - σ(Δ)) / N
    sig = lambda d: 1 / (1 + math.exp(-d))
    torch.testing.assert_close(chosen.grad, torch.tensor([-(1 - sig(1)) / 3, -0.5 / 3, -(1 - sig(-2)) / 3]))


def test_bradley_terry_loss_is_finite_for_huge_margins():
    assert bradley_terry_loss(torch.tensor([-200.0]), torch.tensor([200.0])).item() == pytest.approx(400.0)
    assert bradley_terry_loss(torch.tensor([200.0]), torch.tensor([-200.0])).item() == pytest.approx(0.0)


def test_pairwise_accuracy_counts_ties_as_wrong():
    assert pairwise_accuracy(torch.tensor([1.0, 0.0, 2.0, 4.0]), torch.tensor([0.0, 0.0, 3.0, 1.0])) == 0.5


def test_running_norm_welford_matches_direct_mean_and_std_on_hand_numbers():
    norm = RunningNorm()
    first = norm(torch.tensor([5.0]))
    assert first.tolist() == [0.0] and norm.std == 1.0  # one score: no spread yet, so no rescaling
    norm.update(torch.tensor([1.0, 2.0]))
    out = norm(torch.tensor([3.0, 4.0, 15.0]))
    # all six: 5 1 2 3 4 15 → mean 30/6 = 5, squared deviations 0 16 9 4 1 100 = 130, sample var 130/5 = 26
    assert norm.count == 6 and norm.mean == pytest.approx(5.0) and norm.std == pytest.approx(math.sqrt(26))
    torch.testing.assert_close(out, (torch.tensor([3.0, 4.0, 15.0]) - 5) / math.sqrt(26), atol=1e-5, rtol=0)


def test_running_norm_batches_equal_direct_statistics_and_clip():
    data = torch.randn(101, generator=torch.Generator().manual_seed(0)) * 7 + 3
    norm = RunningNorm(clip=0.5)
    for chunk in torch.split(data, [1, 30, 2, 68]):
        out = norm(chunk)
    assert norm.mean == pytest.approx(float(data.double().mean()), abs=1e-9)
    assert norm.std == pytest.approx(float(data.double().std()), abs=1e-9)  # torch.std is the n−1 std too
    assert out.abs().max() <= 0.5 and (out.abs() == 0.5).any()
    restored = RunningNorm()
    restored.load_state_dict(norm.state_dict())
    assert (restored.count, restored.mean, restored.std) == (norm.count, norm.mean, norm.std)


def direct_score(model, tok, text: str) -> float:
    """The score head on the last hidden state of the unpadded sequence: what HF's pooling must reproduce."""
    ids = torch.tensor([tok.encode(text)])
    with torch.no_grad():
        hidden = model.base_model(input_ids=ids).last_hidden_state  # (1, T, H)
        return model.score(hidden[:, -1]).item()


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_saved_tiny_reward_model_loads_back_and_batched_scores_equal_direct_forward(tmp_path, arch):
    tok = build_char_tokenizer()
    model = build_tiny_reward_model(tok, arch=arch, hidden_size=32, num_layers=2, seed=1)
    # A zero-initialised head would make every score equal and the comparison vacuous.
    torch.nn.init.normal_(model.score.weight, std=1.0)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)

    loaded_tok = load_tokenizer(str(tmp_path))
    for text in [p + r for p, r in zip(PROMPTS, RESPONSES)]:
        assert loaded_tok.decode(loaded_tok.encode(text)) == text  # spaces, tabs, newlines survive
    loaded = AutoModelForSequenceClassification.from_pretrained(str(tmp_path))
    assert loaded.config.num_labels == 1 and loaded.config.pad_token_id == tok.pad_token_id

    direct = torch.tensor([direct_score(model, tok, p + r) for p, r in zip(PROMPTS, RESPONSES)])
    assert direct.std() > 1e-3
    batched = RewardModel.from_pretrained(tmp_path, batch_size=4).raw_scores(
        PROMPTS, RESPONSES
    )  # lengths 5..43: padded
    single = RewardModel(loaded, loaded_tok, batch_size=1).raw_scores(PROMPTS, RESPONSES)
    torch.testing.assert_close(batched, direct, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(single, direct, atol=1e-5, rtol=1e-5)


def test_grade_has_math_reward_shape_and_normalizes():
    tok = build_char_tokenizer()
    model = build_tiny_reward_model(tok, hidden_size=32, num_layers=1, seed=2)
    torch.nn.init.normal_(model.score.weight, std=1.0)
    rm = RewardModel(model, tok, batch_size=3, normalize=True, clip=10.0, verifier=MathReward())
    responses, answers = ["\\boxed{5}", "\\boxed{6}", "no answer", "\\boxed{5}"], ["5", "5", "5", "5"]
    rewards, correct = rm.grade(responses, answers, prompts=["2+3="] * 4)
    assert len(rewards) == 4 and all(isinstance(r, float) for r in rewards)
    assert correct == [True, False, False, True]  # from the verifier, not from the RM
    assert sum(rewards) == pytest.approx(0.0, abs=1e-4)  # the first batch is normalised by its own mean
    raw = RewardModel(model, tok).raw_scores(["2+3="] * 4, responses)
    torch.testing.assert_close(torch.tensor(rewards), (raw - raw.mean()) / raw.std(), atol=1e-4, rtol=0)
    plain_rewards, plain_correct = RewardModel(model, tok).grade(responses, answers)
    assert plain_correct == [False] * 4 and len(plain_rewards) == 4  # no verifier: nothing claims correctness
