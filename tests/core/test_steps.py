"""VinePPO step splitting, step→token ranges and intermediate states (algorithms.md §11)."""

import itertools
import random

import pytest
import torch

from itero.core.advantages import (
    broadcast_step_advantages,
    step_advantages_from_mc_values,
)
from itero.core.steps import (
    dedup_states,
    intermediate_states,
    split_steps,
    step_token_ranges,
    token_char_offsets,
    token_step_index,
)

# --- splitting: hand examples ---------------------------------------------------------------


def test_arithmetic_steps():
    assert split_steps("12*3=36. 5+36=41. \\boxed{41}") == [
        "12*3=36. ",
        "5+36=41. ",
        "\\boxed{41}",
    ]


def test_latex_sentence_and_decimal_not_split():
    text = "We get $x = 3.5$. Then y is 2x which is 7. So the answer is 7."
    assert split_steps(text) == [
        "We get $x = 3.5$. ",
        "Then y is 2x which is 7. ",
        "So the answer is 7.",
    ]


def test_decimal_outside_math_not_split():
    assert split_steps("The price is 3.5 dollars. Then we add 1.25 more.") == [
        "The price is 3.5 dollars. ",
        "Then we add 1.25 more.",
    ]


def test_newline_steps_keep_separators():
    text = "First compute a = 2\nThen compute b = 3\n\nFinally a + b = 5\n"
    assert split_steps(text) == [
        "First compute a = 2\n",
        "Then compute b = 3\n\n",
        "Finally a + b = 5\n",
    ]


def test_no_split_inside_math_spans_and_braces():
    text = "Consider $$a. b\nc$$ and \\(p. q\\) and \\[r! s\\] and \\boxed{u. v\nw} done here."
    assert split_steps(text) == [text]


def test_short_fragment_merged_into_previous():
    assert split_steps("Compute the sum. Ok. Then add one.") == [
        "Compute the sum. Ok. ",
        "Then add one.",
    ]


def test_short_first_fragment_merged_into_next():
    assert split_steps("So. We compute 2+2=4.") == ["So. We compute 2+2=4."]


def test_min_chars_controls_merging():
    text = "Ab. Cd. Ef."
    assert split_steps(text, min_chars=1) == ["Ab. ", "Cd. ", "Ef."]
    assert split_steps(text, min_chars=8) == [text]


def test_unclosed_dollar_is_literal():
    # a lone "$" (e.g. currency) must not swallow the rest of the text
    assert split_steps("It costs $5 in total. Then we buy two more.") == [
        "It costs $5 in total. ",
        "Then we buy two more.",
    ]


def test_empty_and_whitespace():
    assert split_steps("") == []
    assert split_steps("\n\n  ") == ["\n\n  "]


# --- splitting: concatenation invariant on random strings -----------------------------------


_ALPHABET = list("ab3.5 .\n$${}?!\\()[]x=") + [
    "$$",
    "\\(",
    "\\)",
    "\\[",
    "\\]",
    "\\boxed{",
    ". ",
    "\n\n",
    "3.5",
    "Then ",
]


def test_concatenation_invariant_random():
    rng = random.Random(1234)
    n_multi = 0
    for _ in range(500):
        text = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 60)))
        min_chars = rng.choice([0, 1, 4, 8, 20])
        steps = split_steps(text, min_chars=min_chars)
        assert "".join(steps) == text
        assert all(steps), "no empty steps"
        if text:
            assert len(steps) >= 1
        n_multi += len(steps) > 1
    assert n_multi > 50  # the generator actually exercises splitting


# --- token ranges on the char tokenizer -----------------------------------------------------


@pytest.fixture(scope="module")
def char_tok():
    from itero.models.tiny import build_char_tokenizer

    return build_char_tokenizer()


@pytest.mark.parametrize(
    "text",
    [
        "12*3=36. 5+36=41. \\boxed{41}",
        "We get $x = 3.5$. Then y = 7.\nSo the answer is 7.",
        "one line only",
    ],
)
def test_token_ranges_char_tokenizer(char_tok, text):
    ids = char_tok(text, add_special_tokens=False)["input_ids"]
    offsets = token_char_offsets(char_tok, ids)
    assert offsets == [(i, i + 1) for i in range(len(text))]  # one char per token
    steps = split_steps(text)
    ranges = step_token_ranges(steps, offsets)
    assert len(ranges) == len(steps)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(ids)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    for (a, b), step in zip(ranges, steps):
        assert char_tok.decode(ids[a:b]) == step


def test_eos_token_goes_to_last_step(char_tok):
    text = "Ab. Cd."
    ids = char_tok(text, add_special_tokens=False)["input_ids"] + [char_tok.eos_token_id]
    offsets = token_char_offsets(char_tok, ids)
    assert offsets[-1] == (len(text), len(text))
    steps = split_steps(text, min_chars=1)
    assert step_token_ranges(steps, offsets) == [(0, 4), (4, 8)]


def test_multichar_tokens_belong_to_step_of_first_char():
    steps = ["ab. ", "cd. ", "e"]  # chars 0-3, 4-7, 8
    offsets = [
        (0, 3),
        (3, 5),
        (5, 8),
        (8, 9),
    ]  # token 1 starts in step 0; step 1 has no own token start
    assert token_step_index(steps, offsets) == [0, 0, 1, 2]
    assert step_token_ranges(steps, offsets) == [(0, 2), (2, 3), (3, 4)]
    offsets2 = [(0, 2), (2, 9)]  # token 1 swallows steps 1 and 2 → they are empty
    assert step_token_ranges(steps, offsets2) == [(0, 2), (2, 2), (2, 2)]


def test_token_step_index_feeds_broadcast(char_tok):
    text = "12*3=36. 5+36=41. \\boxed{41}"
    ids = char_tok(text, add_special_tokens=False)["input_ids"]
    steps = split_steps(text)
    idx = torch.tensor([token_step_index(steps, token_char_offsets(char_tok, ids))])
    values = torch.tensor([[0.5, 0.75, 1.0]])
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    step_adv = step_advantages_from_mc_values(rewards, values)
    tok_adv = broadcast_step_advantages(step_adv, idx, torch.ones_like(idx, dtype=torch.bool))
    assert torch.allclose(step_adv, torch.tensor([[0.25, 0.25, 0.0]]))
    assert tok_adv[0, :9].eq(0.25).all() and tok_adv[0, 18:].eq(0.0).all()


def test_ranges_need_steps():
    assert step_token_ranges([], []) == []
    with pytest.raises(ValueError):
        step_token_ranges([], [(0, 0)])


# --- states ---------------------------------------------------------------------------------


def test_intermediate_states():
    steps = ["12*3=36. ", "5+36=41. ", "\\boxed{41}"]
    assert intermediate_states(steps) == ["", "12*3=36. ", "12*3=36. 5+36=41. "]
    assert intermediate_states([]) == []


def test_dedup_states():
    states = [
        ("Q1", ""),
        ("Q1", "a. "),
        ("Q2", ""),
        ("Q1", ""),
        ("Q1", "a. "),
        ("Q1", "a. b. "),
    ]
    unique, index_map = dedup_states(states)
    assert unique == [("Q1", ""), ("Q1", "a. "), ("Q2", ""), ("Q1", "a. b. ")]
    assert index_map == [0, 1, 2, 0, 1, 3]
    assert [unique[k] for k in index_map] == states
