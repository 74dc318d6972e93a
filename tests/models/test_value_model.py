"""The PPO critic (itero/models/value.py) on a tiny Qwen2: initialisation from a policy or a reward model,
the V(s_t) alignment on left-padded batches, save / load, and micro-batching through the learner."""

import copy

import pytest
import torch
from helpers import text_batch, tiny
from transformers import Qwen2ForSequenceClassification

from itero.algorithms import ppo
from itero.models.tiny_rm import build_tiny_reward_model
from itero.models.value import HEAD_FILE, ValueModel, compute_values, forward_values
from itero.training.learner import Learner, OptimConfig

# different prompt lengths (left padding) and response lengths (right padding)
PROMPTS, RESPONSES = ["12+3=", "p"], ["15", "a longer response"]


def saved_policy(tmp_path):
    policy, tok = tiny()
    policy.save_pretrained(tmp_path / "policy")
    return policy, tok, tmp_path / "policy"


def random_head(critic, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        critic.head.weight.copy_(torch.randn(critic.head.weight.shape, generator=g))
    return critic


def unpadded(batch, row):
    """Prompt ids, response ids (EOS included) of one row without padding."""
    return (
        batch.prompt_ids[row][batch.prompt_mask[row]].tolist(),
        batch.response_ids[row][batch.response_mask[row]].tolist(),
    )


def test_from_policy_head_starts_at_zero(tmp_path):
    _, tok, path = saved_policy(tmp_path)
    critic = ValueModel.from_policy(path)
    assert (critic.head.weight == 0).all()
    with torch.no_grad():
        values = forward_values(critic, text_batch(tok, PROMPTS, RESPONSES))
    assert values.shape == (2, 18) and (values == 0).all()


def test_values_on_a_padded_batch_match_each_row_alone(tmp_path):
    policy, tok, path = saved_policy(tmp_path)
    critic = random_head(ValueModel.from_policy(path))
    batch = text_batch(tok, PROMPTS, RESPONSES)  # P = 5 (row 1 has 4 pad columns), R = 18 (row 0 has 15)
    with torch.no_grad():
        values = forward_values(critic, batch)
        w = critic.head.weight[0]
        for row in range(2):
            prompt, response = unpadded(batch, row)
            # V(s_t) = w · h(prompt + response)[len(prompt) − 1 + t], the hidden state before token t, from the
            # in-memory policy's own backbone (not the loaded copy), run on the row alone without padding
            hidden = policy.model(input_ids=torch.tensor([prompt + response])).last_hidden_state[0]
            expected = hidden[len(prompt) - 1 : len(prompt) - 1 + len(response)] @ w
            n = len(response)
            torch.testing.assert_close(values[row, :n], expected, rtol=1e-5, atol=1e-5)
            assert (values[row, n:] == 0).all()
    assert n == 18 and len(unpadded(batch, 0)[1]) == 3
    assert values[0, :3].abs().min() > 0  # a random head gives non-zero values: the comparison means something


def test_save_and_reload_keeps_the_head(tmp_path):
    _, tok, path = saved_policy(tmp_path)
    critic = random_head(ValueModel.from_policy(path))
    critic.save_pretrained(tmp_path / "critic")
    assert (tmp_path / "critic" / HEAD_FILE).exists()
    reloaded = ValueModel.from_policy(tmp_path / "critic")
    batch = text_batch(tok, PROMPTS, RESPONSES)
    with torch.no_grad():
        before, after = forward_values(critic, batch), forward_values(reloaded, batch)
    assert torch.equal(reloaded.head.weight, critic.head.weight)
    assert torch.equal(before, after) and before.abs().sum() > 0


def test_from_reward_model_values_are_the_rm_scores_of_each_prefix(tmp_path):
    _, tok = tiny()
    rm = build_tiny_reward_model(tok, hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, seed=3)
    rm.save_pretrained(tmp_path / "rm")
    critic = ValueModel.from_reward_model(tmp_path / "rm")
    assert torch.equal(critic.head.weight, rm.score.weight)
    batch = text_batch(tok, PROMPTS, RESPONSES)
    with torch.no_grad():
        values = forward_values(critic, batch)
        for row in range(2):
            prompt, response = unpadded(batch, row)
            # the RM pools at the last non-pad token, so its score of prompt + response[:t] is V(s_t);
            # t = len − 1 is the state before the last response token (EOS): prompt + the response text
            scores = [rm(input_ids=torch.tensor([prompt + response[:t]])).logits[0, 0] for t in range(len(response))]
            torch.testing.assert_close(values[row, : len(response)], torch.stack(scores), rtol=1e-5, atol=1e-5)
            text_ids = prompt + tok.encode(RESPONSES[row], add_special_tokens=False)
            assert values[row, len(response) - 1].item() == pytest.approx(
                rm(input_ids=torch.tensor([text_ids])).logits[0, 0].item(), abs=1e-5
            )


def test_from_reward_model_with_the_reward_normaliser_predicts_normalised_scores(tmp_path):
    _, tok = tiny()
    rm = build_tiny_reward_model(tok, hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, seed=3)
    rm.save_pretrained(tmp_path / "rm")
    raw = ValueModel.from_reward_model(tmp_path / "rm")
    critic = ValueModel.from_reward_model(tmp_path / "rm", score_norm=(0.7, 2.5))
    batch = text_batch(tok, PROMPTS, RESPONSES)
    with torch.no_grad():
        before, after = forward_values(raw, batch), forward_values(critic, batch)
    m = batch.response_mask
    torch.testing.assert_close(after[m], (before[m] - 0.7) / 2.5, rtol=1e-5, atol=1e-6)
    assert (after[~m] == 0).all()
    # saved and reloaded as a critic checkpoint, the offset survives
    critic.save_pretrained(tmp_path / "critic")
    reloaded = ValueModel.from_policy(tmp_path / "critic")
    with torch.no_grad():
        torch.testing.assert_close(forward_values(reloaded, batch), after)


def test_from_reward_model_refuses_several_labels(tmp_path):
    _, tok = tiny()
    rm = build_tiny_reward_model(tok, hidden_size=32, num_layers=1)
    two = Qwen2ForSequenceClassification(rm.config.__class__(**{**rm.config.to_dict(), "num_labels": 2}))
    two.save_pretrained(tmp_path / "rm2")
    with pytest.raises(ValueError, match="num_labels=1"):
        ValueModel.from_reward_model(tmp_path / "rm2")


# ---- micro-batching ------------------------------------------------------------------------------
LEARNER_RESPONSES = ["12+3=15.", "7", "x=1, y=22", "ab", "hello world", "0", "99-9=90. \\boxed{90}", "q"]


def value_batch(tok, critic):
    batch = text_batch(
        tok, ["p1", "prompt 2"] * 4, LEARNER_RESPONSES, scores=[1.0, 0.0, -1.0, 0.5, 1.0, 0.0, 1.0, -0.5]
    )
    v_now = compute_values(critic, batch, micro_batch_size=4)
    cfg = ppo.Config(beta=0.0, value_epsilon=0.2)
    # V_old = V_now + U(−0.4, 0.4): some tokens move past ε_v (clipped branch or not), some stay inside
    g = torch.Generator().manual_seed(0)
    v_old = (v_now + (torch.rand(v_now.shape, generator=g) * 0.8 - 0.4)) * batch.response_mask
    return ppo.prepare(batch.replace(values=v_old), cfg), cfg


def test_value_loss_gradient_1x8_equals_8x1(tmp_path):
    _, tok, path = saved_policy(tmp_path)
    critic = random_head(ValueModel.from_policy(path))
    batch, cfg = value_batch(tok, critic)
    loss_fn = lambda mb, v: ppo.value_loss(mb, v, cfg)

    def grads(micro):
        model = copy.deepcopy(critic)
        learner = Learner(model, OptimConfig(lr=1e-3, batch_size=8, micro_batch_size=micro), forward=forward_values)
        metrics = learner.accumulate(batch, list(range(8)), 8, loss_fn)
        return [p.grad.clone() for p in model.parameters()], metrics

    (whole, m8), (split, m1) = grads(8), grads(1)
    assert 0 < m8["value_clip_fraction"] < 1
    assert m8["loss"] == pytest.approx(m1["loss"], rel=1e-5)
    assert whole[0].abs().sum() > 0 and whole[-1].abs().sum() > 0  # embeddings and head both get a gradient
    for a, b in zip(whole, split):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)  # float32 summation order


def test_compute_values_equals_one_forward(tmp_path):
    _, tok, path = saved_policy(tmp_path)
    critic = random_head(ValueModel.from_policy(path))
    batch = text_batch(tok, ["p1", "prompt 2", "a", "mid prompt"] * 2, LEARNER_RESPONSES)
    with torch.no_grad():
        direct = forward_values(critic, batch)
    split = compute_values(critic, batch, micro_batch_size=3)  # micro-batches of 3, 3, 2 rows, each trimmed
    assert split.dtype == torch.float32 and split.shape == direct.shape
    torch.testing.assert_close(split, direct, rtol=1e-5, atol=1e-5)
    assert (split[~batch.response_mask] == 0).all() and split[batch.response_mask].abs().min() > 0
