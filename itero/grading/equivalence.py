"""Is an extracted answer equivalent to the gold answer?

Steps: normalised string equality -> multiple choice / word answers -> typed comparison of the
two structures (sets order-free, tuples and intervals ordered with their brackets, matrices by
shape, equations, \\pm) where each pair of expressions goes exact rational -> gold-rounding
tolerance -> float rejection -> (only if still undecided) sympy in the killable worker.
The same ``Comparer`` runs in-process (``symbolic=False``: may answer None, "don't know") and in
the worker (``symbolic=True``: always decides).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .normalize import MAX_ANSWER_CHARS, compact, normalize
from .numeric import TooBig, exact_value
from .relations import bound_as_inequality, has_symbols, is_label_ast
from .screen import float_value, floats_differ
from .structure import parse_answer

_ACCEPT_STRENGTH = ["structural", "rational", "decimal", "symbolic", "numeric"]
RELATIVE_TOLERANCE = 1e-6 * (1 + 1e-9)


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


def decimal_unit(node: tuple):
    """One unit in the last written digit of the least precise decimal literal in ``node`` (None if none)."""
    kind = node[0]
    if kind == "n":
        return None if node[2] is None else 2 * node[2]
    children = (
        node[1] if kind in ("+", "*") else node[2] if kind == "f" else node[1:] if kind in ("/", "^", "neg") else ()
    )
    units = [unit for unit in map(decimal_unit, children) if unit is not None]
    return max(units) if units else None


def numbers_agree(pred: float, gold: float, unit) -> bool:
    """The numeric policy for a written decimal: equal to a relative 1e-6, and closer than its last digit.

    ``\\frac{1}{12}`` and 0.0833333333333333 agree, so do 0.066666793 and 0.0666668; a decimal is never
    a window around itself (gold 2.23 rejects 2.232, gold 0.1 rejects 0.149, gold 1e5 rejects 140000).
    """
    gap = abs(pred - gold)
    return gap <= RELATIVE_TOLERANCE * max(abs(pred), abs(gold)) and gap < float(unit)


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


def _max_unit(a, b):
    return b if a is None else a if b is None else max(a, b)


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
        unit = _max_unit(decimal_unit(pred), decimal_unit(gold))
        if unit is not None and (has_symbols(pred) or has_symbols(gold)):
            unit = None  # the decimal policy is for numbers, never for a formula in variables
        try:
            exact_pred, exact_gold = exact_value(pred), exact_value(gold)
        except TooBig:
            exact_pred = exact_gold = None
        if exact_pred is not None and exact_gold is not None:
            if exact_pred == exact_gold or unit is None or exact_pred[1] != 0 or exact_gold[1] != 0:
                return self._note(exact_pred == exact_gold, "rational")
            return self._note(numbers_agree(float(exact_pred[0]), float(exact_gold[0]), unit), "decimal")
        if unit is not None:
            a, b = float_value(pred), float_value(gold)
            if a is not None and b is not None and not a[0].imag and not b[0].imag:
                return self._note(numbers_agree(a[0].real, b[0].real, unit), "decimal")
        if floats_differ(pred, gold):
            return self._note(False, "float")
        if not self.symbolic:
            return None
        from .symbolic import expr_equal

        result, method = expr_equal(pred, gold)
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
        unlabelled = self._unlabel(pred, gold)
        if unlabelled is not None:
            return self.answers(*unlabelled)
        if gk in ("bound", "ineq") or pk in ("bound", "ineq"):
            return self._relation(pred, gold)
        if gk == "text" or pk == "text":
            return self._note(pk == gk and pred[1] == gold[1], "text")
        if gk == "labelled":
            return self._note(False, "label")
        if gk == "expr":
            return self.expr(pred[1], gold[1]) if pk == "expr" else self._note(False, "shape")
        if gk == "eq":
            return self._equation(pred, gold) if pk == "eq" else self._note(False, "shape")
        return self._collection(pred, gold)

    def _unlabel(self, pred: tuple, gold: tuple):
        """Labels stripped: "(p,q)=(3,2)" vs "(3,2)"; two labelled answers keep their labels only if equal."""
        pk, gk = pred[0], gold[0]
        if pk == "labelled" and gk == "labelled":
            return (pred[2], gold[2]) if pred[1] == gold[1] else None
        if pk == "labelled" and gk != "eq":
            return pred[2], gold
        if gk == "labelled" and pk != "eq":
            return pred, gold[2]
        if pk == "eq" and gk != "eq" and is_label_ast(pred[1]):
            return ("expr", pred[2]), (gold[2] if gk == "labelled" else gold)
        if gk == "eq" and pk != "eq" and is_label_ast(gold[1]):
            return pred, ("expr", gold[2])
        return None

    def _relation(self, pred: tuple, gold: tuple):
        pk, gk = pred[0], gold[0]
        if pk == "bound" and gk == "bound" and canonical(pred[1]) == canonical(gold[1]):
            return self.answers(pred[2], gold[2])
        if pk == "bound" and gk == "seq":
            return self.answers(pred[2], gold)
        if gk == "bound" and pk == "seq":
            return self.answers(pred, gold[2])
        pred, gold = _as_inequality(pred), _as_inequality(gold)
        if pred is None or gold is None or pred[0] != "ineq" or gold[0] != "ineq" or pred[1] != gold[1]:
            return self._note(False, "relation")
        return self.expr(pred[2], gold[2])

    def _collection(self, pred: tuple, gold: tuple):
        pk, gk = pred[0], gold[0]
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


def _as_inequality(answer: tuple):
    return bound_as_inequality(answer) if answer[0] == "bound" else answer


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


# The sympy worker's entry points (itero/grading/worker.py): here, beside the comparer they run, so the
# worker imports no module that imports the worker.
def symbolic_compare(pred: tuple, gold: tuple) -> tuple[bool, str]:
    """Runs inside the worker: the full comparison with sympy allowed."""
    comparer = Comparer(symbolic=True)
    result = bool(comparer.answers(pred, gold))
    return result, comparer.method(result, gold[0])


def symbolic_compare_any(pairs: tuple) -> tuple[bool, str]:
    """Runs inside the worker: true as soon as one (pred, gold) reading pair is equal."""
    outcome = (False, "shape")
    for index, (pred, gold) in enumerate(pairs):
        result = symbolic_compare(pred, gold)
        if result[0]:
            return result
        if index == 0:
            outcome = result
    return outcome
