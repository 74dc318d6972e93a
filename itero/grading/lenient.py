"""Lenient extraction: the last mathematical expression of a response with no box and no marker.

Used only in ``lenient`` mode (evaluation against peers' graders), never for rewards by default:
a reward that reads the last number anywhere pays for guessing. Rules, in order:
* a short response that is itself an answer ("25", "x = 4", "3+2") is read whole;
* otherwise the last math segment ($$..$$, \\[..\\], or single-line $..$ / \\(..\\)) or the last
  plain number, whichever ends later; of a segment "a = b = c" the last side is the answer.
"""

from __future__ import annotations

import re

_DISPLAY_RE = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]", re.S)
# inline math never spans a line break (a stray "$" in prose must not swallow a paragraph)
_INLINE_RE = re.compile(r"(?<![\\$])\$(?!\$)((?:\\.|[^\n$\\])*?[^\s\\$](?:\\.|[^\n$\\])*?)\$|\\\(([^\n]+?)\\\)")
# a trailing unit may touch the number ("1,000.99m"), a leading letter may not ("AZYUK2A" holds no answer)
_NUMBER_RE = re.compile(r"(?<![\w.,])-?\d+(?:(?:,\d{3})+|,\d{1,2}(?!\d))?(?:\.\d+)?(?:\s*/\s*\d+)?\s*%?(?!\d|\.\d)")
# numbers between math delimiters are not prose, even when the math itself is malformed
_ANY_MATH_RE = re.compile(r"\$[^$]*\$|\\\(.*?\\\)|\\\[.*?\\\]", re.S)
_DECIMAL_COMMA_RE = re.compile(r"^(-?\d+),(\d{1,2})$")
_CHAT_TAIL_RE = re.compile(r"(?:<\|[a-z_]+\|>\w*\s*)+$")
_WHOLE_RE = re.compile(r"^(?!.*\\[(\[])[-+*/^().,=%\s\w\\{}]{1,80}$", re.S)
_WORD_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")
TAIL_CHARS = 2000


def last_expression(text: str) -> str | None:
    text = _CHAT_TAIL_RE.sub("", text.strip()).strip()
    if not text:
        return None
    if _WHOLE_RE.match(text) and not _WORD_RE.search(text) and re.search(r"\d", text):
        return _last_side(text.rstrip("."))
    tail = text[-TAIL_CHARS:]
    candidates = []
    for pattern in (_DISPLAY_RE, _INLINE_RE):
        matches = list(pattern.finditer(tail))
        if matches:
            match = matches[-1]
            candidates.append((match.end(), next(group for group in match.groups() if group is not None)))
    numbers = list(_NUMBER_RE.finditer(_ANY_MATH_RE.sub(lambda m: " " * len(m.group()), tail)))
    if numbers:
        # plain prose may use a decimal comma ("2,74 $"): two digits after a comma are never a grouping
        number = _DECIMAL_COMMA_RE.sub(r"\1.\2", numbers[-1].group().strip())
        candidates.append((numbers[-1].end(), number))
    if not candidates:
        return None
    answer = _last_side(max(candidates, key=lambda item: item[0])[1])
    return answer or None


def _last_side(expression: str) -> str:
    """'\\sqrt{4} = 2' -> '2': of a chain of equalities the last side is the value stated."""
    depth, cut = 0, 0
    for index, char in enumerate(expression):
        if char in "({[":
            depth += 1
        elif char in ")}]":
            depth -= 1
        elif char == "=" and depth == 0:
            cut = index + 1
    return expression[cut:].strip().rstrip(".").strip()
