"""Typed reading of a normalised answer: the shape decides how two answers are compared.

Answer values (tuples, so they pickle cheaply to the worker and can be cached):
    ('expr', ast)                      a single value or expression
    ('eq', lhs_ast, rhs_ast)           an equation, "x = 3", "y = 2x + 3"
    ('set', (answers...), bare)        {a, b} or a bare "a, b" list (order-free); \\pm gives a set of two
    ('seq', open, close, (answers...)) tuples and intervals: brackets are part of the value
    ('union', (answers...))            intervals joined by \\cup (order-free)
    ('matrix', ((answers...), ...))    pmatrix / bmatrix / array rows (also inside brackets)
    ('labelled', key, answer)          "(p,q)=(3,2)": a name and the answer it names
    ('bound', ast, interval)           "x < 3", "-2 \\le x \\le 7" (see relations.py)
    ('ineq', op, ast)                  any other inequality, as "ast op 0"
    ('text', key)                      a word answer, or anything that does not parse
Lists: "a, b", "a; b" and "{a, b}" are sets; a ";"-separated group of labelled values
("p=5,q=2;p=7,q=2") is a list of tuples.
"""

from __future__ import annotations

import re

from .latex import ParseError, parse_expression
from .normalize import is_word_answer, text_key
from .relations import is_label, parse_relation

MAX_ELEMENTS = 64
_MATRIX_RE = re.compile(
    r"^[(\[]?\s*\\begin\{([pbvBV]?matrix|smallmatrix|array)\}(?:\{[^{}]*\})?(.*)\\end\{\1\}\s*[)\]]?$", re.S
)
_RELATION_RE = re.compile(r"\\(?:le|ge|ne|lt|gt|approx|sim|equiv|neq)(?![A-Za-z])|[<>]|\\dots")
_OPENERS = {"(": ")", "[": "]"}


def parse_answer(text: str) -> tuple:
    return _parse(text.strip(), 0)


def _parse(text: str, level: int) -> tuple:
    if level > 6 or not text:
        return ("text", text_key(text))
    if text == "\\varnothing":
        return ("set", (), False)
    parts = split_top(text, "\\cup")
    if len(parts) > 1:
        return ("union", tuple(_parse(part.strip(), level + 1) for part in parts))
    matrix = _MATRIX_RE.match(text)
    if matrix and "\\end" not in matrix.group(2):
        return _matrix(matrix.group(2), level)
    bracketed = _bracketed(text, level)
    if bracketed is not None:
        return bracketed
    groups = split_top(text, ";")
    if len(groups) > 1:
        return ("set", tuple(_group(_parse(group.strip(), level + 1)) for group in groups[:MAX_ELEMENTS]), True)
    elements = split_top(text, ",")
    if len(elements) > 1:
        return ("set", _elements(elements, level), True)
    if "\\pm" in text or "\\mp" in text:
        return ("set", _elements([text], level), True)
    return _single(text, level)


def _group(structure: tuple) -> tuple:
    """'p=5, q=2' inside a ';' list is the tuple (5, 2)."""
    if structure[0] == "set" and structure[2] and all(item[0] in ("eq", "labelled") for item in structure[1]):
        values = tuple(("expr", item[2]) if item[0] == "eq" else item[2] for item in structure[1])
        return ("seq", "(", ")", values)
    return structure


def _single(text: str, level: int = 0) -> tuple:
    sides = split_top(text, "=")
    if len(sides) > 1 and is_label(sides[0]):
        value = _parse(sides[-1].strip(), level + 1)
        if value[0] != "expr":
            return ("labelled", text_key(sides[0]).replace(" ", ""), value)
    if len(sides) == 1:
        relation = parse_relation(text)
        if relation is not None:
            return relation
    if _RELATION_RE.search(text) or is_word_answer(text):
        return ("text", text_key(text))
    try:
        if len(sides) > 1:
            return ("eq", parse_expression(sides[0]), parse_expression(sides[-1]))
        return ("expr", parse_expression(text))
    except (ParseError, ValueError, ZeroDivisionError, RecursionError):
        return ("text", text_key(text))


def _bracketed(text: str, level: int):
    if text.startswith("\\{") and text.endswith("\\}") and closing_index(text, 0) == len(text) - 2:
        inner = text[2:-2].strip()
        return ("set", _elements(split_top(inner, ","), level) if inner else (), False)
    if text[0] == "{" and text[-1] == "}" and closing_index(text, 0) == len(text) - 1:
        elements = split_top(text[1:-1], ",")  # "{1, 2, 3}" written without the backslashes
        if len(elements) > 1:
            return ("set", _elements(elements, level), False)
    if text[0] in _OPENERS and text[-1] in ")]" and closing_index(text, 0) == len(text) - 1:
        elements = split_top(text[1:-1], ",")
        if len(elements) == 1:
            elements = split_top(text[1:-1], ";")  # (0;-2;6)
        if len(elements) > 1:
            return ("seq", text[0], text[-1], tuple(_parse(e.strip(), level + 1) for e in elements[:MAX_ELEMENTS]))
    return None


def _elements(parts: list[str], level: int) -> tuple:
    """Set elements; an element with a single \\pm stands for its two values."""
    out = []
    for part in parts[:MAX_ELEMENTS]:
        part = part.strip()
        if part.count("\\pm") + part.count("\\mp") == 1:
            plus = part.replace("\\pm", "+").replace("\\mp", "-")
            minus = part.replace("\\pm", "-").replace("\\mp", "+")
            out.extend((_parse(_tidy_sign(plus), level + 1), _parse(_tidy_sign(minus), level + 1)))
        else:
            out.append(_parse(part, level + 1))
    return tuple(out)


def _tidy_sign(text: str) -> str:
    # "\pm 3" at the start becomes "+ 3" / "- 3", which parse fine; "x = \pm 3" needs no help either
    return text.strip()


def _matrix(body: str, level: int) -> tuple:
    rows = [row for row in re.split(r"\\\\|\\cr(?![A-Za-z])", body) if row.strip()]
    cells = tuple(tuple(_parse(cell.strip(), level + 1) for cell in row.split("&")) for row in rows[:MAX_ELEMENTS])
    return ("matrix", cells)


def _bracket_delta(text: str, index: int) -> tuple[int, int]:
    """(depth change, characters consumed) at text[index]; \\{ and \\} count as brackets."""
    char = text[index]
    if char == "\\":
        nxt = text[index + 1 : index + 2]
        if nxt in ("{", "}"):
            return (1 if nxt == "{" else -1), 2
        match = re.match(r"\\[A-Za-z]+", text[index : index + 40])
        return 0, len(match.group()) if match else 2
    if char in "([{":
        return 1, 1
    if char in ")]}":
        return -1, 1
    return 0, 1


def closing_index(text: str, start: int) -> int | None:
    """Index where the bracket opened at ``start`` closes (start of '\\}' for an escaped brace)."""
    depth, index = 0, start
    while index < len(text):
        delta, width = _bracket_delta(text, index)
        depth += delta
        if depth == 0:
            return index
        index += width
    return None


def split_top(text: str, separator: str) -> list[str]:
    """Split on ``separator`` where it is outside every bracket."""
    parts, depth, index, last = [], 0, 0, 0
    is_command = separator.startswith("\\")
    while index < len(text):
        if depth == 0 and text.startswith(separator, index):
            after = text[index + len(separator) : index + len(separator) + 1]
            if not (is_command and after.isalpha()):
                parts.append(text[last:index])
                index += len(separator)
                last = index
                continue
        delta, width = _bracket_delta(text, index)
        depth += delta
        index += width
    parts.append(text[last:])
    return parts
