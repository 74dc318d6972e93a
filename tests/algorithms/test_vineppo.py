"""VinePPO (§11) on hand numbers: step plan of a response, MC values from a deterministic toy rollout,
step advantages, de-duplicated states, the step cap, whitening, config validation."""

import re
import statistics

import pytest
import torch
from helpers import text_batch, tiny

from itero.algorithms import vineppo
from itero.config import load_config
from itero.schema import ConfigError

# "18*3=54 " (8 chars) | "47+54=101 " (10) | "\boxed{101}" (11): cuts after each space, 29 chars + EOS
A = "18*3=54 47+54=101 \\boxed{101}"
B = "18*3=55 55+47=102 \\boxed{102}"  # same step lengths as A; differs from A at its 7th token
CFG = dict(step_cut_after=" ", min_step_chars=4)


def test_plan_steps_char_tokenizer():
    _, tok = tiny()
    # row 1: "1+1=2 " (6) | "\boxed{2}" (9) → states (0, 6), 15 chars + EOS
    # row 2: "1+1=2 " | "3 " (1 char stripped < 4: merged into the step before) | "\boxed{2}" → (0, 8)
    batch = text_batch(tok, ["12+3=", "q", "q"], [A, "1+1=2 \\boxed{2}", "1+1=2 3 \\boxed{2}"])
    plan = vineppo.plan_steps(batch, vineppo.Config(**CFG), tok)
    assert plan.state_lens == [[0, 8, 18], [0, 6], [0, 8]]
    assert plan.token_steps[0].tolist() == [0] * 8 + [1] * 10 + [2] * 11 + [2]  # the EOS (30th token) → last step
    n1 = int(batch.response_mask[1].sum())
    assert n1 == 16 and plan.token_steps[1, :n1].tolist() == [0] * 6 + [1] * 9 + [1]
    n2 = int(batch.response_mask[2].sum())
    assert n2 == 18 and plan.token_steps[2, :n2].tolist() == [0] * 8 + [1] * 10


def test_plan_steps_default_splitter_keeps_one_line_in_one_step():
    # without " " as a cut character the one-line solution is a single step: one state, the prompt
    _, tok = tiny()
    plan = vineppo.plan_steps(text_batch(tok, ["12+3="], [A]), vineppo.Config(), tok)
    assert plan.state_lens == [[0]] and plan.token_steps[0].tolist() == [0] * 30


# ---- MC advantages with a deterministic toy rollout ---------------------------------------------
# Rows 0 and 1 answer the same prompt (they share s_0); row 2 gives A's text to another prompt, so none
# of its states may be merged with row 0's. V̂ of each state is a table entry: every one of the K
# continuations scores it, so the mean is exact. (1, 0) is missing: it is row 0's s_0 and must be deduplicated.
V = {
    (0, 0): 0.5,
    (0, 8): 0.75,
    (0, 18): 0.9,
    (1, 8): 0.25,
    (1, 18): 0.1,
    (2, 0): 0.4,
    (2, 8): 0.6,
    (2, 18): 0.8,
}
SCORES = [1.0, 0.0, 1.0]


class TableRollout:
    def __init__(self, table, k):
        self.table, self.k, self.calls = table, k, []

    def __call__(self, states):
        self.calls.append(list(states))
        return torch.tensor([[self.table[s]] * self.k for s in states])


def three_rows():
    _, tok = tiny()
    return tok, text_batch(tok, ["18*3+47=", "18*3+47=", "47+18*3="], [A, B, A], scores=SCORES, group_ids=[0, 0, 1])


def test_estimate_advantages_from_exact_values():
    tok, batch = three_rows()
    rollout = TableRollout(V, k=3)
    out, stats = vineppo.estimate_advantages(batch, vineppo.Config(num_rollouts=3, **CFG), tok, rollout)
    # one call, the 8 unique states in first-occurrence order; row 1's s_0 = row 0's s_0
    assert rollout.calls == [[(0, 0), (0, 8), (0, 18), (1, 8), (1, 18), (2, 0), (2, 8), (2, 18)]]
    assert stats["mc_states"] == 9 and stats["mc_unique_states"] == 8
    assert stats["mc_steps_per_response"] == 3.0 and stats["mc_value_variance"] == 0.0
    # A_i = r_i + V̂(s_{i+1}) − V̂(s_i), V̂(s_3) = 0, r = score on the last step only:
    #   row 0: 0.75 − 0.5 = 0.25, 0.9 − 0.75 = 0.15, 1 − 0.9 = 0.1
    #   row 1 (s_0 = row 0's, V̂ 0.5): 0.25 − 0.5 = −0.25, 0.1 − 0.25 = −0.15, 0 − 0.1 = −0.1
    #   row 2: 0.6 − 0.4 = 0.2, 0.8 − 0.6 = 0.2, 1 − 0.8 = 0.2
    # steps cover 8, 10 and 11 + EOS = 12 tokens in all three rows
    for row, (a0, a1, a2) in enumerate([(0.25, 0.15, 0.1), (-0.25, -0.15, -0.1), (0.2, 0.2, 0.2)]):
        assert out.advantages[row].tolist() == pytest.approx([a0] * 8 + [a1] * 10 + [a2] * 12, abs=1e-6)


def test_step_cap_back_fills_later_steps_with_zero():
    tok, batch = three_rows()
    batch = batch.select([0, 1])
    rollout = TableRollout(V, k=2)
    out, stats = vineppo.estimate_advantages(batch, vineppo.Config(num_rollouts=2, max_steps=0, **CFG), tok, rollout)
    assert rollout.calls == [[(0, 0)]]  # only s_0, shared by both rows
    assert stats["mc_states"] == 2 and stats["mc_unique_states"] == 1
    # not estimated: V̂(s_2) = R + 0, V̂(s_1) = 0 + V̂(s_2) = R → A_1 = A_2 = 0, A_0 = R − V̂(s_0)
    #   row 0: 1 − 0.5 = 0.5; row 1: 0 − 0.5 = −0.5
    assert out.advantages[0].tolist() == pytest.approx([0.5] * 8 + [0.0] * 22, abs=1e-6)
    assert out.advantages[1].tolist() == pytest.approx([-0.5] * 8 + [0.0] * 22, abs=1e-6)


def vineppo_value_indices(num_steps: int, cap: int | None) -> list[int]:
    """The value indices VinePPO estimates for a response of ``num_steps`` steps, written out from
    McGill-NLP/VinePPO ``math_episode_generator_with_mc_advantages.py::_create_value_estimation_requests``:
    the query (value_idx 0), then step_idx 0 … max_step_idx as value_idx step_idx + 1, where
    max_step_idx = min(S − 2, max_step_for_value_estimation − 1)."""
    max_step_idx = num_steps - 2
    if cap is not None:
        max_step_idx = min(max_step_idx, cap - 1)
    return [0] + [step_idx + 1 for step_idx in range(num_steps) if step_idx <= max_step_idx]


@pytest.mark.parametrize("cap", [0, 1, 2, 3, None])
def test_step_cap_counts_the_query_state_and_n_step_states_as_vineppo(cap):
    tok, batch = three_rows()
    rollout = TableRollout(V, k=1)
    out, _ = vineppo.estimate_advantages(
        batch.select([0]), vineppo.Config(num_rollouts=1, max_steps=cap, **CFG), tok, rollout
    )
    # row 0 has three steps with state prefixes 0, 8, 18 tokens
    estimated = vineppo_value_indices(3, cap)
    assert rollout.calls == [[(0, (0, 8, 18)[i]) for i in estimated]]
    # VinePPO's _compute_step_advantages: V̂(terminal) = 0, trailing missing values back-filled
    # V̂_i = r_i + V̂_{i+1}, then A_i = r_i + V̂_{i+1} − V̂_i
    values = [V[(0, (0, 8, 18)[i])] if i in estimated else None for i in range(3)] + [0.0]
    rewards = [0.0, 0.0, SCORES[0]]
    for i in range(2, -1, -1):
        if values[i] is not None:
            break
        values[i] = rewards[i] + values[i + 1]
    expected = [rewards[i] + values[i + 1] - values[i] for i in range(3)]
    # cap 2 on this 3-step response: VinePPO [0.25, 0.15, 0.1] (every state); an N-in-all cap gave [0.25, 0.25, 0]
    if cap == 2:
        assert expected == pytest.approx([0.25, 0.15, 0.1])
    a0, a1, a2 = expected
    assert out.advantages[0].tolist() == pytest.approx([a0] * 8 + [a1] * 10 + [a2] * 12, abs=1e-6)


def test_mc_value_variance():
    # one response, one step ("abc" has no cut), K = 2 continuations scoring 1 and 0:
    # V̂ = 0.5, sample variance ((1 − 0.5)² + (0 − 0.5)²) / (2 − 1) = 0.5, variance of the mean 0.5 / 2 = 0.25
    _, tok = tiny()
    batch = text_batch(tok, ["p"], ["abc"], scores=[1.0])
    out, stats = vineppo.estimate_advantages(
        batch, vineppo.Config(num_rollouts=2), tok, lambda s: torch.tensor([[1.0, 0.0]])
    )
    assert stats["mc_value_variance"] == pytest.approx(0.25)
    assert stats["mc_states"] == 1 and stats["mc_unique_states"] == 1
    assert out.advantages[0].tolist() == pytest.approx([0.5] * 4)  # A_0 = 1 + 0 − 0.5 on 3 chars + EOS


def test_prepare_whitens_and_weights():
    _, tok = tiny()
    batch = text_batch(tok, ["p", "p"], ["ab", "c"], scores=[1.0, 0.0])
    raw = torch.tensor([[0.5, 0.5, 0.1], [-0.3, -0.3, 0.0]])
    out = vineppo.prepare(batch.replace(advantages=raw), vineppo.Config())
    flat = [0.5, 0.5, 0.1, -0.3, -0.3]  # mean 0.5 / 5 = 0.1
    mean, std = statistics.mean(flat), statistics.stdev(flat)
    assert mean == pytest.approx(0.1)
    mask = out.response_mask
    assert out.advantages[mask].tolist() == pytest.approx([(a - mean) / std for a in flat], abs=1e-5)
    assert out.advantages[mask].mean().item() == pytest.approx(0.0, abs=1e-6)
    assert out.advantages[mask].std().item() == pytest.approx(1.0, abs=1e-5)
    assert out.advantages[1, 2] == 0
    assert out.token_weights[mask].tolist() == pytest.approx([0.2] * 5)
    kept = vineppo.prepare(batch.replace(advantages=raw), vineppo.Config(whiten_advantages=False))
    assert torch.equal(kept.advantages, raw)


def test_config_rejects_no_rollouts():
    with pytest.raises(ConfigError, match=re.escape("algorithm.num_rollouts")):
        load_config(None, ["algorithm=vineppo", "algorithm.num_rollouts=0"])
    cfg = load_config(None, ["algorithm=vineppo", "algorithm.num_rollouts=1"]).algorithm
    assert cfg.num_rollouts == 1 and cfg.kl_loss_coef == 1e-4 and cfg.ratio_threshold == 10.0
