"""Find the final answer in a model response.

Two modes. ``strict`` (the default for rewards): the last \\boxed{}/\\fbox{} (real brace matching,
also ``\\boxed 5``), unless a final-answer marker ("The final answer is", "Final Answer:") comes
after it; without a box, the last marker ("The answer is", "Answer:", GSM8K "#### n" too). A truncated or
answer-less response earns nothing. ``lenient`` (evaluation, as peers' graders do) also reads an
unmarked response: its last math segment, else its last plain number (see ``lenient.py``).
Text inside <think>...</think> is ignored when an answer follows it; a <think> left open means the
response was cut off while thinking, so it has no answer. Every step is a linear scan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .lenient import last_expression

MODES = ("strict", "lenient")
_TRUNCATED = object()
_MARKER_RE = re.compile(
    r"the\s+final\s+answer\s+is\s*:?|the\s+answer\s+is\s*:?|final\s+answer\s*:|answer\s*:|####",
    re.IGNORECASE,
)
_MATH_SEGMENT_RE = re.compile(r"\$\$(.+?)\$\$|(?<!\\)\$(.+?)(?<!\\)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.S)
_SENTENCE_END_RE = re.compile(r"\.(?:\s|$)|\s+(?:I hope|which|because|since)\b")
# "The largest $n$ is 34": the answer is what the sentence says the thing *is*
_COPULA_RE = re.compile(r"\s(?:is|are|equals|was|will be)\s+(?:equal to\s+|about\s+)?", re.IGNORECASE)
_NUMBER_RE = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?(?![\w])")
_BOX_GAP_RE = re.compile(
    r"^[\s$,;&]*(?:\\\)|\\\(|\\quad|\\qquad|\\text\{[^{}]{0,40}\}|\\[,;]|and|or|[a-zA-Z_{}0-9]{1,6}\s*=|[\s,;$])*$"
)
MAX_SEGMENT_CHARS = 600
MAX_BOXES = 64


@dataclass(frozen=True)
class Extraction:
    answer: str | None  # the final answer; None when the response gives none
    group: str | None = None  # several adjacent final boxes joined with ", " (used when the gold is a list)


def extract_answer(text: str | None, mode: str = "strict") -> str | None:
    """The final answer of ``text`` as a string, or None when the response gives no final answer."""
    return extract(text, mode).answer


def extract(text: str | None, mode: str = "strict") -> Extraction:
    if mode not in MODES:
        raise ValueError(f"unknown extraction mode {mode!r} (use one of {MODES})")
    if not text:
        return Extraction(None)
    close = text.rfind("</think>")
    if text.rfind("<think>") > close:
        return Extraction(None)
    if close >= 0:
        after = _extract_from(text[close + len("</think>") :], mode)
        if after.answer is not None:
            return after
    return _extract_from(text, mode)


def _extract_from(text: str, mode: str) -> Extraction:
    boxed = last_boxed(text)
    if boxed is _TRUNCATED:
        return Extraction(None)
    marker = _after_last_marker(text)
    if boxed is not None:
        content, start, _ = boxed
        # an explicit final answer written after the last box overrides an earlier intermediate box
        # ("Final Answer:", "The final answer is"; a mid-text "our answer: ..." check does not count)
        if marker is not None and marker[1] > start and marker[0] and marker[2]:
            return Extraction(marker[0])
        return Extraction(_clean(content) or None, _box_group(text, content, start))
    if marker is not None:
        return Extraction(marker[0])
    if mode == "lenient":
        return Extraction(last_expression(text))
    return Extraction(None)


def last_boxed(text: str, end: int | None = None):
    """(content, start, end) of the last \\boxed / \\fbox before ``end``; _TRUNCATED if unclosed; None if none."""
    limit = len(text) if end is None else end
    start = max(text.rfind("\\boxed", 0, limit), text.rfind("\\fbox", 0, limit))
    if start < 0:
        return None
    position = start + (len("\\boxed") if text.startswith("\\boxed", start) else len("\\fbox"))
    while position < len(text) and text[position] in " \t":
        position += 1
    if position >= len(text):
        return _TRUNCATED
    if text[position] != "{":
        match = re.match(r"[^\s$]+", text[position : position + MAX_SEGMENT_CHARS])
        return (match.group().rstrip(".,;"), start, position + match.end()) if match else _TRUNCATED
    close = matching_brace(text, position)
    return _TRUNCATED if close is None else (text[position + 1 : close], start, close + 1)


def _box_group(text: str, content: str, start: int) -> str | None:
    """The last box and the boxes just before it, joined, when only connectives separate them."""
    contents = [content]
    while len(contents) < MAX_BOXES:
        previous = last_boxed(text, start)
        if previous is None or previous is _TRUNCATED:
            break
        content, previous_start, previous_end = previous
        if start - previous_end > 80 or not _BOX_GAP_RE.match(text[previous_end:start]):
            break
        contents.append(content)
        start = previous_start
    if len(contents) < 2:
        return None
    return ", ".join(_clean(content) for content in reversed(contents))


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


def _after_last_marker(text: str) -> tuple[str | None, int, bool] | None:
    """(answer after the last marker, marker position, is a *final* answer marker), or None without one."""
    last = None
    for last in _MARKER_RE.finditer(text):  # noqa: B007 - the last match is the one we want
        pass
    if last is None:
        return None
    segment = text[last.end() : last.end() + MAX_SEGMENT_CHARS]
    paragraph = segment.lstrip().split("\n\n", 1)[0]
    return _clean(_marker_span(paragraph)) or None, last.start(), "final" in last.group().lower()


def _marker_span(paragraph: str) -> str:
    math = _MATH_SEGMENT_RE.search(paragraph)
    sentence = _sentence(paragraph) if math is None or math.start() > 0 else ""
    if sentence:
        # "The largest $n$ is 34." -> "34"; "Jane started growing Sphere 3 hours ago." -> "3"
        copulas = list(_COPULA_RE.finditer(sentence)) if re.match(r"[A-Za-z]", sentence) else []
        tail = sentence[copulas[-1].end() :] if copulas else ""
        if tail.strip():
            return _first_math(tail) or _sentence(tail)
        numbers = _NUMBER_RE.findall(sentence) if _MATH_SEGMENT_RE.search(sentence) is None else []
        if len(numbers) == 1 and re.search(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}", sentence):
            return numbers[0]
    return _first_math(paragraph) or _sentence(paragraph)


def _first_math(text: str) -> str | None:
    math = _MATH_SEGMENT_RE.search(text)
    return None if math is None else next(group for group in math.groups() if group is not None)


def _sentence(paragraph: str) -> str:
    line = paragraph.split("\n", 1)[0]
    return _SENTENCE_END_RE.split(line, 1)[0]


def _clean(answer: str) -> str:
    answer = re.sub(r"(?<!\\)\$", "", answer.replace("**", "")).strip()
    for opener, closer in (("\\(", "\\)"), ("\\[", "\\]")):
        if answer.startswith(opener) and answer.endswith(closer):
            answer = answer[2:-2].strip()
    return answer.rstrip(".").strip()
