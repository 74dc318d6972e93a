"""What extract_answer returns, exactly (the case file only checks the final verdict)."""

from __future__ import annotations

import pytest

from itero.grading import extract_answer

EXTRACTIONS = [
    ("so $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
    ("$\\boxed{1}$ then $\\boxed{2}$", "2"),
    ("nested $\\boxed{\\sqrt{\\frac{1}{2}}}$", "\\sqrt{\\frac{1}{2}}"),
    ("escaped braces $\\boxed{\\{1, 2\\}}$", "\\{1, 2\\}"),
    ("\\boxed 5", "5"),
    ("\\fbox{7}", "7"),
    ("The final answer is $12$. I hope it is correct.", "12"),
    ("The answer is 3.5 meters.", "3.5 meters"),
    ("Answer: (C)", "(C)"),
    ("work\n#### 1,234", "1,234"),
    ("<think>\\boxed{1}</think> The answer is \\boxed{2}", "2"),
    ("<think>\\boxed{1}</think> no answer after thinking", "1"),
    ("The final answer is:\n\\[ x^2 \\]", "x^2"),
]
NO_ANSWER = [
    "",
    "We found 12 and then 15 so probably 15",
    "so the answer is $\\boxed{12",
    "\\boxed{}",
    "The answer is",
    "<think>\\boxed{3} still thinking",
    "\\boxed",
]


@pytest.mark.parametrize("text,expected", EXTRACTIONS)
def test_extracts(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize("text", NO_ANSWER)
def test_no_answer(text):
    assert extract_answer(text) is None
