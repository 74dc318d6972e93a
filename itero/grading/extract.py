"""Find the final answer in a model response.

Order: the last \\boxed{}/\\fbox{} (real brace matching, also ``\\boxed 5``); otherwise the last
"The final answer is" / "The answer is" / "Final Answer:" / "Answer:" / GSM8K "#### n" marker,
whichever comes last in the text (a worked GSM8K solution may say "answer:" mid-way and end in
"#### 18"). There is deliberately no "last number anywhere" fallback: a truncated or answer-less
response earns nothing, and so does a last box cut off by truncation. Text inside <think>...</think>
is ignored when an answer follows it; a <think> left open means the response was cut off while
thinking, so it has no answer. Every step is a linear scan.
"""

from __future__ import annotations

import re

_TRUNCATED = object()
_MARKER_RE = re.compile(
    r"the\s+final\s+answer\s+is\s*:?|the\s+answer\s+is\s*:?|final\s+answer\s*:|answer\s*:|####",
    re.IGNORECASE,
)
_MATH_SEGMENT_RE = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.S)
_SENTENCE_END_RE = re.compile(r"\.(?:\s|$)|\s+(?:I hope|which|because|since)\b")
MAX_SEGMENT_CHARS = 600


def extract_answer(text: str | None) -> str | None:
    """The final answer of ``text`` as a string, or None when the response gives no final answer."""
    if not text:
        return None
    close = text.rfind("</think>")
    if text.rfind("<think>") > close:
        return None
    if close >= 0:
        after = _extract_from(text[close + len("</think>") :])
        if after is not None:
            return after
    return _extract_from(text)


def _extract_from(text: str) -> str | None:
    boxed = last_boxed(text)
    if boxed is _TRUNCATED:
        return None
    if boxed is not None:
        return _clean(boxed) or None
    return _after_last_marker(text)


def last_boxed(text: str):
    """Content of the last \\boxed / \\fbox; _TRUNCATED if that box never closes; None if there is none."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    position = start + (len("\\boxed") if text.startswith("\\boxed", start) else len("\\fbox"))
    while position < len(text) and text[position] in " \t":
        position += 1
    if position >= len(text):
        return _TRUNCATED
    if text[position] != "{":
        match = re.match(r"[^\s$]+", text[position : position + MAX_SEGMENT_CHARS])
        return match.group().rstrip(".,;") if match else _TRUNCATED
    end = matching_brace(text, position)
    return _TRUNCATED if end is None else text[position + 1 : end]


def matching_brace(text: str, open_index: int) -> int | None:
    """Index of the brace closing text[open_index]; escaped braces (\\{) don't count."""
    depth = 0
    index = open_index
    length = len(text)
    while index < length:
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return None


def _after_last_marker(text: str) -> str | None:
    matches = list(_MARKER_RE.finditer(text))
    if not matches:
        return None
    last = matches[-1]
    segment = text[last.end() : last.end() + MAX_SEGMENT_CHARS]
    paragraph = segment.lstrip().split("\n\n", 1)[0]
    math = _MATH_SEGMENT_RE.search(paragraph)
    if math is not None:
        candidate = next(group for group in math.groups() if group is not None)
    else:
        line = paragraph.split("\n", 1)[0]
        candidate = _SENTENCE_END_RE.split(line, 1)[0]
    return _clean(candidate) or None


def _clean(answer: str) -> str:
    answer = re.sub(r"(?<!\\)\$", "", answer.replace("**", "")).strip()
    for opener, closer in (("\\(", "\\)"), ("\\[", "\\]")):
        if answer.startswith(opener) and answer.endswith(closer):
            answer = answer[2:-2].strip()
    return answer.rstrip(".").strip()
