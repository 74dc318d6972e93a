"""The sympy side of the comparison. Runs only inside the killable worker (see worker.py).

Order for two expressions without a tolerance: equal after sympy's automatic evaluation
(``\\sqrt8`` becomes ``2\\sqrt2``) -> for closed forms, agreement to 45 digits at 60-digit
precision -> for expressions in variables, a fast rejection at rational sample points, then
``simplify(a - b) == 0``, then agreement at all sample points.
"""

from __future__ import annotations

from fractions import Fraction

import sympy as sp

from .screen import symbol_value

PRECISION = 60
CLOSED_FORM_RELATIVE = sp.Float("1e-45", PRECISION)
POINT_RELATIVE = sp.Float("1e-25", PRECISION)
_CONSTANTS = {"pi": sp.pi, "e": sp.E, "i": sp.I, "oo": sp.oo}
_FUNCTIONS = {
    "sin": sp.sin,
    "cos": sp.cos,
    "tan": sp.tan,
    "sec": sp.sec,
    "csc": sp.csc,
    "cot": sp.cot,
    "arcsin": sp.asin,
    "arccos": sp.acos,
    "arctan": sp.atan,
    "sinh": sp.sinh,
    "cosh": sp.cosh,
    "tanh": sp.tanh,
    "exp": sp.exp,
    "ln": sp.log,
    "log10": lambda x: sp.log(x, 10),
    "abs": sp.Abs,
    "fact": sp.factorial,
}


def to_sympy(node: tuple):
    kind = node[0]
    if kind == "n":
        value: Fraction = node[1]
        return sp.Rational(value.numerator, value.denominator)
    if kind == "s":
        return sp.Symbol(node[1])
    if kind == "c":
        return _CONSTANTS[node[1]]
    if kind == "neg":
        return -to_sympy(node[1])
    if kind == "+":
        return sp.Add(*[to_sympy(item) for item in node[1]])
    if kind == "*":
        return sp.Mul(*[to_sympy(item) for item in node[1]])
    if kind == "/":
        return to_sympy(node[1]) / to_sympy(node[2])
    if kind == "^":
        return sp.Pow(to_sympy(node[1]), to_sympy(node[2]))
    return _function(node[1], [to_sympy(arg) for arg in node[2]])


def _function(name: str, args: list):
    if name == "sqrt":
        return sp.sqrt(args[0]) if len(args) == 1 else sp.root(args[0], args[1])
    if name == "log":
        return sp.log(args[0]) if len(args) == 1 else sp.log(args[0], args[1])
    if name == "binom":
        return sp.binomial(args[0], args[1])
    return _FUNCTIONS[name](args[0])


def _number(expr):
    """A 60-digit complex value, or None when sympy cannot give a finite number."""
    value = sp.N(expr, PRECISION)
    if not value.is_number or value.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
        return None
    real, imag = value.as_real_imag()
    if not (real.is_Number and imag.is_Number):
        return None
    return real, imag


def _close(a, b, relative) -> bool:
    scale = max(abs(a[0]), abs(a[1]), abs(b[0]), abs(b[1]), sp.Integer(1))
    return abs(a[0] - b[0]) <= relative * scale and abs(a[1] - b[1]) <= relative * scale


def expr_equal(pred: tuple, gold: tuple, tolerance=None) -> tuple[bool, str]:
    a, b = to_sympy(pred), to_sympy(gold)
    if tolerance is not None:
        return _within(a, b, tolerance), "tolerance"
    if a == b:
        return True, "symbolic"
    if a.has(sp.oo, -sp.oo, sp.zoo) or b.has(sp.oo, -sp.oo, sp.zoo):
        return False, "symbolic"
    symbols = sorted(a.free_symbols | b.free_symbols, key=str)
    if not symbols:
        return _closed_form_equal(a, b)
    return _variable_equal(a, b, symbols)


def _within(a, b, tolerance) -> bool:
    value, target = _number(a), _number(b)
    if value is None or target is None or abs(value[1]) > 1e-30 or abs(target[1]) > 1e-30:
        return False
    return abs(value[0] - target[0]) <= sp.Rational(tolerance.numerator, tolerance.denominator)


def _closed_form_equal(a, b) -> tuple[bool, str]:
    value, target = _number(a), _number(b)
    if value is not None and target is not None:
        return _close(value, target, CLOSED_FORM_RELATIVE), "numeric"
    return sp.simplify(a - b) == 0, "symbolic"


def sample_points(symbols: list) -> list[dict]:
    """Three points with distinct, non-special rational coordinates (mixed signs: sqrt(x^2) != x)."""
    points = []
    for offset, sign in ((0, 1), (1, -1), (2, 1)):
        point = {}
        for index, symbol in enumerate(symbols):
            base = Fraction(symbol_value(str(symbol))).limit_denominator(997)
            point[symbol] = sign * sp.Rational(base.numerator, base.denominator) + sp.Rational(offset * 7 + index, 13)
        points.append(point)
    return points


def _variable_equal(a, b, symbols: list) -> tuple[bool, str]:
    agreeing = 0
    for point in sample_points(symbols):
        left, right = a.subs(point), b.subs(point)
        if left.is_Rational and right.is_Rational:  # polynomials and rational functions: exact
            if left != right:
                return False, "rational"
            agreeing += 1
            continue
        value, target = _number(left), _number(right)
        if value is None or target is None:
            continue
        if not _close(value, target, POINT_RELATIVE):
            return False, "numeric"
        agreeing += 1
    difference = sp.simplify(a - b)
    if difference == 0:
        return True, "symbolic"
    if not difference.free_symbols and difference.is_number:
        return False, "symbolic"
    return agreeing >= 2, "numeric"


def equations_proportional(pred: tuple, gold: tuple) -> bool:
    """2x - y + 3 = 0 and y = 2x + 3 describe the same equation: (l1 - r1) = k (l2 - r2), k != 0."""
    first = to_sympy(pred[1]) - to_sympy(pred[2])
    second = to_sympy(gold[1]) - to_sympy(gold[2])
    symbols = sorted(first.free_symbols | second.free_symbols, key=str)
    if not symbols or first.free_symbols != second.free_symbols:
        return False
    ratios = []
    for point in sample_points(symbols):
        top, bottom = _number(first.subs(point)), _number(second.subs(point))
        if top is None or bottom is None or bottom == (0, 0):
            continue
        ratio = sp.N((top[0] + sp.I * top[1]) / (bottom[0] + sp.I * bottom[1]), PRECISION)
        ratios.append(_number(ratio))
    if len(ratios) < 2 or any(r is None for r in ratios) or ratios[0] == (0, 0):
        return False
    return all(_close(r, ratios[0], POINT_RELATIVE) for r in ratios[1:])
