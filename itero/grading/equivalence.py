"""Is an extracted answer equivalent to the gold answer?

Steps: normalised string equality -> multiple choice / word answers -> typed comparison of the
two structures (sets order-free, tuples and intervals ordered with their brackets, matrices by
shape, equations, \\pm) where each pair of expressions goes exact rational -> gold-rounding
tolerance -> float rejection -> (only if still undecided) sympy in the killable worker.
The same ``Comparer`` runs in-process (``symbolic=False``: may answer None, "don't know") and in
the worker (``symbolic=True``: always decides).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from .normalize import MAX_ANSWER_CHARS, compact, normalize
from .numeric import TooBig, exact_value
from .screen import floats_differ, floats_within
from .structure import parse_answer

_ACCEPT_STRENGTH = ["structural", "rational", "tolerance", "symbolic", "numeric"]
_CHOICE_GOLD_RE = re.compile(r"^\(?([A-E])\)?(?:\s+(.+))?$")
_CHOICE_LETTER_RE = re.compile(r"(?<![A-Za-z\\])\(?([A-E])\)?(?![A-Za-z])")


@dataclass(frozen=True)
class Analysed:
    normalized: str
    key: str
    structure: tuple | None  # None when the answer is too long to parse safely


@lru_cache(maxsize=8192)
def analyse(answer: str) -> Analysed:
    if len(answer) > MAX_ANSWER_CHARS * 4:
        return Analysed(answer, compact(answer), None)
    normalized = normalize(answer)
    if len(normalized) > MAX_ANSWER_CHARS:
        return Analysed(normalized, compact(normalized), None)
    return Analysed(normalized, compact(normalized), parse_answer(normalized))


def gold_tolerance(node: tuple):
    """Half a unit in the last written digit when the gold is a rounded decimal or e-notation."""
    if node[0] == "neg":
        return gold_tolerance(node[1])
    if node[0] == "n":
        return node[2]
    if node[0] == "*" and len(node[1]) == 2 and node[1][0][0] == "n" and node[1][0][2] is not None:
        power = node[1][1]
        if power[0] == "^" and power[1] == ("n", Fraction(10), None):
            try:
                exponent = exact_value(power[2])
            except TooBig:
                return None
            if exponent is not None and exponent[1] == 0 and exponent[0].denominator == 1 and abs(exponent[0]) < 400:
                return node[1][0][2] * Fraction(10) ** int(exponent[0])
    return None


@lru_cache(maxsize=8192)
def canonical(node: tuple) -> tuple:
    """Flattened, sorted sums and products, so 1+x and x+1 (or 2x and x*2) are the same tree."""
    kind = node[0]
    if kind in ("+", "*"):
        items = []
        for child in map(canonical, node[1]):
            items.extend(child[1] if child[0] == kind else (child,))
        return (kind, tuple(sorted(items, key=repr)))
    if kind in ("/", "^", "neg"):
        return (kind,) + tuple(canonical(child) for child in node[1:])
    if kind == "f":
        return (kind, node[1], tuple(canonical(child) for child in node[2]))
    if kind == "n":
        return ("n", node[1], None)
    return node


def has_symbols(node: tuple) -> bool:
    if node[0] == "s":
        return True
    children = (
        node[1]
        if node[0] in ("+", "*")
        else node[2]
        if node[0] == "f"
        else node[1:]
        if node[0] in ("/", "^", "neg")
        else ()
    )
    return any(has_symbols(child) for child in children)


def _is_symbol(node: tuple) -> bool:
    return node[0] == "s"


class Comparer:
    def __init__(self, symbolic: bool):
        self.symbolic = symbolic
        self.methods: list[str] = []

    def method(self, result: bool, shape: str) -> str:
        if not self.methods:
            return shape
        if result:
            used = [m for m in _ACCEPT_STRENGTH if m in self.methods]
            return f"{shape}:{used[-1] if used else self.methods[-1]}"
        return f"{shape}:{self.methods[-1]}"

    def expr(self, pred: tuple, gold: tuple):
        if pred == gold or canonical(pred) == canonical(gold):
            return self._note(True, "structural")
        tolerance = gold_tolerance(gold)
        try:
            exact_pred, exact_gold = exact_value(pred), exact_value(gold)
        except TooBig:
            exact_pred = exact_gold = None
        if exact_pred is not None and exact_gold is not None:
            if tolerance is not None and exact_pred[1] == 0 == exact_gold[1] and exact_pred != exact_gold:
                return self._note(abs(exact_pred[0] - exact_gold[0]) <= tolerance, "tolerance")
            return self._note(exact_pred == exact_gold, "rational")
        if tolerance is not None and has_symbols(pred):
            tolerance = None  # a rounding tolerance is for numbers, never for a formula in variables
        if tolerance is not None and floats_within(pred, gold, tolerance):
            return self._note(True, "tolerance")
        if floats_differ(pred, gold, tolerance):
            return self._note(False, "float")
        if not self.symbolic:
            return None
        from .symbolic import expr_equal

        result, method = expr_equal(pred, gold, tolerance)
        return self._note(result, method)

    def _note(self, result: bool, method: str) -> bool:
        self.methods.append(method)
        return result

    def answers(self, pred: tuple, gold: tuple):
        pk, gk = pred[0], gold[0]
        if pk == "set" and len(pred[1]) == 1 and gk != "set":
            return self.answers(pred[1][0], gold)
        if gk == "set" and len(gold[1]) == 1 and pk != "set":
            return self.answers(pred, gold[1][0])
        if gk == "text" or pk == "text":
            return self._note(pk == gk and pred[1] == gold[1], "text")
        if gk == "expr":
            if pk == "eq" and _is_symbol(pred[1]):
                return self.expr(pred[2], gold[1])
            return self.expr(pred[1], gold[1]) if pk == "expr" else self._note(False, "shape")
        if gk == "eq":
            if pk == "expr" and _is_symbol(gold[1]):
                return self.expr(pred[1], gold[2])
            return self._equation(pred, gold) if pk == "eq" else self._note(False, "shape")
        if gk == "set":
            if pk == "set" or (pk == "seq" and gold[2] and pred[1] == "("):
                return self._match(_distinct(pred[1] if pk == "set" else pred[3]), _distinct(gold[1]))
            return self._note(False, "shape")
        if gk == "seq":
            if pk == "seq" and pred[1:3] == gold[1:3] and len(pred[3]) == len(gold[3]):
                return self._all(zip(pred[3], gold[3]))
            if pk == "set" and pred[2] and gold[1:3] == ("(", ")") and len(pred[1]) == len(gold[3]):
                return self._all(zip(pred[1], gold[3]))
            return self._note(False, "shape")
        if gk == "union":
            return self._match(pred[1], gold[1]) if pk == "union" else self._note(False, "shape")
        if gk == "matrix" and pk == "matrix":
            shape_ok = len(pred[1]) == len(gold[1]) and all(len(a) == len(b) for a, b in zip(pred[1], gold[1]))
            if shape_ok:
                return self._all((a, b) for row_a, row_b in zip(pred[1], gold[1]) for a, b in zip(row_a, row_b))
        return self._note(False, "shape")

    def _all(self, pairs):
        result = True
        for pred, gold in pairs:
            outcome = self.answers(pred, gold)
            if outcome is False:
                return False
            if outcome is None:
                result = None
        return result

    def _match(self, preds: tuple, golds: tuple):
        """Order-free matching of two collections of equal size (each element used once)."""
        if len(preds) != len(golds):
            return self._note(False, "count")
        table = [[self.answers(p, g) for g in golds] for p in preds]
        if any(all(cell is False for cell in row) for row in table):
            return False
        if any(all(row[j] is False for row in table) for j in range(len(golds))):
            return False
        if _perfect_matching(table):
            return True
        return None if any(cell is None for row in table for cell in row) else False

    def _equation(self, pred: tuple, gold: tuple):
        same = self._all([(("expr", pred[1]), ("expr", gold[1])), (("expr", pred[2]), ("expr", gold[2]))])
        if same:
            return True
        swapped = self._all([(("expr", pred[1]), ("expr", gold[2])), (("expr", pred[2]), ("expr", gold[1]))])
        if swapped:
            return True
        if not self.symbolic:
            return None
        from .symbolic import equations_proportional

        return self._note(equations_proportional(pred, gold), "symbolic")


def _distinct(items: tuple) -> tuple:
    """Set semantics: {-1, 1, 1} is {-1, 1} (only literal repeats are merged here)."""
    seen, out = set(), []
    for item in items:
        key = repr(item)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return tuple(out)


def _perfect_matching(table: list[list]) -> bool:
    size = len(table)
    owner = [-1] * size

    def augment(row: int, seen: list[bool]) -> bool:
        for col in range(size):
            if table[row][col] is True and not seen[col]:
                seen[col] = True
                if owner[col] < 0 or augment(owner[col], seen):
                    owner[col] = row
                    return True
        return False

    return all(augment(row, [False] * size) for row in range(size))


def structure_asts(structure: tuple):
    """Every expression AST inside an answer structure (for the guards)."""
    kind = structure[0]
    if kind == "expr":
        yield structure[1]
    elif kind == "eq":
        yield structure[1]
        yield structure[2]
    elif kind in ("set", "union"):
        for item in structure[1]:
            yield from structure_asts(item)
    elif kind == "seq":
        for item in structure[3]:
            yield from structure_asts(item)
    elif kind == "matrix":
        for row in structure[1]:
            for item in row:
                yield from structure_asts(item)


def choice_letters(normalized: str) -> set[str]:
    return set(_CHOICE_LETTER_RE.findall(normalized))


def choice_gold(normalized: str):
    match = _CHOICE_GOLD_RE.match(normalized)
    return (match.group(1), match.group(2)) if match else None
