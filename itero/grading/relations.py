"""Relations and labels in answers: "x < 3", "-2 \\le x \\le 7", "(p,q)=(3,2)", "AB=4".

A bound on one quantity is an interval (``('bound', quantity_ast, interval)``), so ``x \\le 5``,
``5 \\ge x`` and ``(-\\infty, 5]`` are one answer, and ``-793 < a < 10`` is ``(-793, 10)``.
Any other inequality is ``('ineq', op, lhs - rhs)`` with op ``<`` or ``\\le`` (``a > b`` is
``b - a < 0``). A label is a name on the left of "=" (letters, subscripts, primes, brackets,
ratios, ``|AB|``, ``\\frac{NO}{BO}``): the value on the right is the answer.
"""

from __future__ import annotations

import re

from .latex import ParseError, parse_expression

_RELATION_SPLIT_RE = re.compile(r"(<|>|\\le(?![A-Za-z])|\\ge(?![A-Za-z]))")
_FLIP = {"<": ">", ">": "<", "\\le": "\\ge", "\\ge": "\\le"}
_LABEL_RE = re.compile(
    r"^(?:[A-Za-z](?:_\{?\w+\}?)?'*|\\(?:angle|triangle|overline|widehat)\s*|\\frac\{[A-Za-z\s]+\}\{[A-Za-z\s]+\}"
    r"|[A-Za-z]\([A-Za-z,\s]+\)|[(),:|\s])+$"
)
NEG_INFINITY = ("expr", ("neg", ("c", "oo")))
POS_INFINITY = ("expr", ("c", "oo"))


def is_label(text: str) -> bool:
    text = text.strip()
    return bool(text) and bool(_LABEL_RE.match(text)) and bool(re.search(r"[A-Za-z]", text))


def has_symbols(node: tuple) -> bool:
    kind = node[0]
    if kind == "s":
        return True
    if kind in ("+", "*"):
        return any(has_symbols(child) for child in node[1])
    if kind == "f":
        return any(has_symbols(child) for child in node[2])
    if kind in ("/", "^", "neg"):
        return any(has_symbols(child) for child in node[1:])
    return False


def parse_relation(text: str):
    """('bound', ...) / ('ineq', ...) for a relation, None if ``text`` holds no < > \\le \\ge."""
    pieces = _RELATION_SPLIT_RE.split(text)
    if len(pieces) not in (3, 5):
        return None
    try:
        sides = [parse_expression(piece) for piece in pieces[0::2]]
    except (ParseError, ValueError, ZeroDivisionError, RecursionError):
        return None
    ops = pieces[1::2]
    if len(sides) == 3:
        return _chain(sides, ops)
    lhs, op, rhs = sides[0], ops[0], sides[1]
    if not has_symbols(rhs) and has_symbols(lhs):
        return _one_sided(lhs, op, rhs)
    if not has_symbols(lhs) and has_symbols(rhs):
        return _one_sided(rhs, _FLIP[op], lhs)
    if op in (">", "\\ge"):
        lhs, op, rhs = rhs, _FLIP[op], lhs
    return ("ineq", op, ("+", (lhs, ("neg", rhs))))


def _one_sided(quantity: tuple, op: str, value: tuple) -> tuple:
    if op in ("<", "\\le"):
        interval = ("seq", "(", ")" if op == "<" else "]", (NEG_INFINITY, ("expr", value)))
    else:
        interval = ("seq", "(" if op == ">" else "[", ")", (("expr", value), POS_INFINITY))
    return ("bound", quantity, interval)


def _chain(sides: list, ops: list):
    if ops[0] in (">", "\\ge") and ops[1] in (">", "\\ge"):
        sides, ops = sides[::-1], [_FLIP[ops[1]], _FLIP[ops[0]]]
    if not (ops[0] in ("<", "\\le") and ops[1] in ("<", "\\le")):
        return None
    low, quantity, high = sides
    if has_symbols(low) or has_symbols(high) or not has_symbols(quantity):
        return None
    opener, closer = ("(" if ops[0] == "<" else "["), (")" if ops[1] == "<" else "]")
    return ("bound", quantity, ("seq", opener, closer, (("expr", low), ("expr", high))))


def bound_as_inequality(bound: tuple):
    """x < 3 as ('ineq', '<', x - 3); None for a two-sided bound."""
    _, quantity, (_, opener, closer, (low, high)) = bound
    if low == NEG_INFINITY:
        return ("ineq", "<" if closer == ")" else "\\le", ("+", (quantity, ("neg", high[1]))))
    if high == POS_INFINITY:
        return ("ineq", "<" if opener == "(" else "\\le", ("+", (low[1], ("neg", quantity))))
    return None


def is_label_ast(node: tuple) -> bool:
    """A name rather than a value: x, AB, |AB|, NO/BO, f(x) (no numbers, no sums)."""
    kind = node[0]
    if kind == "s":
        return True
    if kind == "*":
        return all(is_label_ast(child) or child in (("c", "e"), ("c", "i")) for child in node[1])
    if kind == "/":
        return is_label_ast(node[1]) and is_label_ast(node[2])
    return kind == "f" and node[1] == "abs" and is_label_ast(node[2][0])
