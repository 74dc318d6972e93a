"""Cheap in-process screening before the worker: float rejection and guards.

Floats never prove equality here (that needs the worker's exact or 50-digit check), but two
values that differ far beyond any rounding error are certainly different, and most wrong
answers are rejected this way in microseconds. Symbols get fixed pseudo-random values, the
same on both sides, so ``2x+1`` vs ``2x-1`` is rejected too.
"""

from __future__ import annotations

import cmath
import math
import zlib

from .numeric import MAX_EXPONENT, MAX_FACTORIAL, MAX_NODES, TooBig, exact_value

ROUNDING = 1e-13
_CONSTANTS = {"pi": math.pi, "e": math.e, "i": 1j}
_FUNCTIONS = {
    "sin": cmath.sin,
    "cos": cmath.cos,
    "tan": cmath.tan,
    "sinh": cmath.sinh,
    "cosh": cmath.cosh,
    "tanh": cmath.tanh,
    "arcsin": cmath.asin,
    "arccos": cmath.acos,
    "arctan": cmath.atan,
    "exp": cmath.exp,
    "ln": cmath.log,
    "log10": cmath.log10,
    "abs": abs,
    "sec": lambda x: 1 / cmath.cos(x),
    "csc": lambda x: 1 / cmath.sin(x),
    "cot": lambda x: 1 / cmath.tan(x),
}


def symbol_value(name: str) -> float:
    return 0.5 + (zlib.crc32(name.encode()) % 10007) / 10007 * 1.5


def float_value(node: tuple):
    """(value, scale): value as complex, scale = largest magnitude met on the way; None if unknown."""
    try:
        value, scale = _evaluate(node)
    except (ArithmeticError, ValueError, TypeError, OverflowError, RecursionError, KeyError):
        return None
    if not (cmath.isfinite(value) and math.isfinite(scale)):
        return None
    return value, scale


def _evaluate(node: tuple):
    kind = node[0]
    if kind == "n":
        value = float(node[1])
        return complex(value), abs(value)
    if kind == "s":
        value = symbol_value(node[1])
        return complex(value), value
    if kind == "c":
        value = _CONSTANTS[node[1]]
        return complex(value), abs(value)
    if kind == "neg":
        value, scale = _evaluate(node[1])
        return -value, scale
    if kind == "+":
        parts = [_evaluate(item) for item in node[1]]
        total = sum((value for value, _ in parts), complex(0))
        return total, max([abs(total)] + [scale for _, scale in parts])
    if kind == "*":
        value, scale = complex(1), 1.0
        for item in node[1]:
            other, other_scale = _evaluate(item)
            value, scale = value * other, max(abs(value * other), scale * abs(other), other_scale * abs(value))
        return value, scale
    if kind == "/":
        (top, top_scale), (bottom, bottom_scale) = _evaluate(node[1]), _evaluate(node[2])
        value = top / bottom
        return value, max(abs(value), top_scale / abs(bottom), abs(value) * bottom_scale / abs(bottom))
    if kind == "^":
        return _power(node)
    if kind == "f":
        return _function(node[1], node[2])
    raise ValueError(kind)


def _power(node: tuple):
    (base, base_scale), (exponent, exponent_scale) = _evaluate(node[1]), _evaluate(node[2])
    if abs(exponent) > MAX_EXPONENT:
        raise OverflowError("exponent")
    value = base**exponent
    base_error = abs(exponent) * base_scale / abs(base) if base else 0.0
    exponent_error = abs(cmath.log(base)) * exponent_scale if base else 0.0
    return value, max(abs(value), abs(value) * (base_error + exponent_error))


def _function(name: str, args: tuple):
    evaluated = [_evaluate(arg) for arg in args]
    values = [value for value, _ in evaluated]
    scale = max(scale for _, scale in evaluated)
    if name == "sqrt":
        value = values[0] ** (1 / values[1]) if len(values) > 1 else cmath.sqrt(values[0])
    elif name == "log":
        value = cmath.log(values[0]) / cmath.log(values[1]) if len(values) > 1 else cmath.log(values[0])
    elif name == "fact":
        if values[0].imag or values[0].real > 170:
            raise OverflowError("factorial")
        value = complex(math.gamma(values[0].real + 1))
    elif name == "binom":
        n, k = values[0].real, values[1].real
        value = complex(math.gamma(n + 1) / (math.gamma(k + 1) * math.gamma(n - k + 1)))
    else:
        value = complex(_FUNCTIONS[name](values[0]))
    argument = max(abs(values[0]), 1e-300)
    return value, max(abs(value), scale * max(1.0, abs(value), 1.0 / argument))


def error_bound(evaluated) -> float:
    return ROUNDING * evaluated[1]


def floats_differ(pred: tuple, gold: tuple, tolerance=None) -> bool:
    """True only when pred and gold are certainly different values."""
    a, b = float_value(pred), float_value(gold)
    if a is None or b is None:
        return False
    slack = 1000 * (error_bound(a) + error_bound(b))
    gap = abs(a[0] - b[0])
    if tolerance is not None:
        return gap > float(tolerance) * (1 + 1e-9) + slack
    return gap > slack and gap > 1e-9 * max(abs(a[0]), abs(b[0]))


def floats_within(pred: tuple, gold: tuple, tolerance) -> bool:
    """True when pred is certainly inside the gold's rounding tolerance."""
    a, b = float_value(pred), float_value(gold)
    if a is None or b is None:
        return False
    slack = 1000 * (error_bound(a) + error_bound(b))
    return abs(a[0] - b[0]) + slack < float(tolerance) * (1 - 1e-9)


def guard_problem(node: tuple) -> str | None:
    """Why ``node`` must not go to sympy (too big to compute in bounded time), or None."""
    stack, count = [(node, 0)], 0
    while stack:
        current, depth = stack.pop()
        count += 1
        if count > MAX_NODES or depth > 60:
            return "expression too large"
        kind = current[0]
        if kind in ("+", "*"):
            stack.extend((child, depth + 1) for child in current[1])
        elif kind in ("/", "^", "neg"):
            stack.extend((child, depth + 1) for child in current[1:])
        elif kind == "f":
            stack.extend((child, depth + 1) for child in current[2])
        problem = _node_problem(current)
        if problem:
            return problem
    try:
        exact_value(node)
    except TooBig:
        return "number too large"
    return None


def _node_problem(node: tuple) -> str | None:
    try:
        if node[0] == "^":
            exponent, base = exact_value(node[2]), exact_value(node[1])
            trivial_base = base is not None and base[1] == 0 and abs(base[0]) in (0, 1)
            too_big = exponent is not None and max(abs(exponent[0]), abs(exponent[1])) > MAX_EXPONENT
            if too_big and not trivial_base:
                return "exponent too large"
        if node[0] == "f" and node[1] == "fact":
            argument = exact_value(node[2][0])
            if argument is not None and abs(argument[0]) > MAX_FACTORIAL:
                return "factorial too large"
    except TooBig:
        return "number too large"
    return None
