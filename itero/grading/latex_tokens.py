"""Tokens of the LaTeX-math parser: a single linear regex pass, plus number literals."""

from __future__ import annotations

import re
from fractions import Fraction

FUNCTIONS = frozenset("sin cos tan sec csc cot arcsin arccos arctan sinh cosh tanh log ln lg exp".split())
_TOKEN_RE = re.compile(
    r"(?P<num>\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
    r"|(?P<cmd>\\[A-Za-z]+)"
    r"|(?P<word>[A-Za-z]+)"
    r"|(?P<op>[-+*/^_!|(){}\[\]'])"
    r"|(?P<space>\s+)"
    r"|(?P<bad>.)",
    re.S,
)


class ParseError(ValueError):
    pass


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens = []
    for match in _TOKEN_RE.finditer(text):
        kind = match.lastgroup
        value = match.group()
        if kind == "space":
            continue
        if kind == "bad":
            raise ParseError(f"unexpected character {value!r}")
        if kind == "word":
            tokens.extend(_split_word(value))
            continue
        tokens.append((kind, value))
    return tokens


def _split_word(word: str) -> list[tuple[str, str]]:
    """A run of letters is a function name, 'pi', or a product of one-letter symbols ('xy')."""
    if word in FUNCTIONS or word == "sqrt":
        return [("cmd", "\\" + word)]
    if word == "pi":
        return [("cmd", "\\pi")]
    return [("word", letter) for letter in word]


def number_node(text: str) -> tuple:
    value = Fraction(text.rstrip(".") if text.endswith(".") and "e" not in text.lower() else text)
    mantissa, _, exponent = text.lower().partition("e")
    if "." not in mantissa and not exponent:
        return ("n", value, None)
    decimals = len(mantissa.partition(".")[2])
    scale = int(exponent) if exponent else 0
    return ("n", value, Fraction(1, 2) * Fraction(10) ** (scale - decimals))
