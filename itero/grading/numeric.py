"""In-process arithmetic on the AST with bounded cost: exact values, float screening, guards.

* ``exact_value``: the exact complex-rational value (pair of Fractions), or None when the value is
  not rational (sqrt 2, pi, a symbol). Integer sizes are capped (``MAX_BITS``), so huge powers raise
  ``TooBig`` instead of computing: 30-digit integers stay exact, 10^{10^{10}} is refused.
* ``float_value``: a float evaluation with symbols set to fixed pseudo-random values, used only to
  *reject* quickly (two values far apart cannot be equal). It also reports the largest intermediate
  magnitude, so a difference lost to cancellation is not trusted.
* ``guard_problem``: cheap checks run before anything is handed to sympy.
Every operation here is O(1) on bounded numbers, so none of it can hang.
"""

from __future__ import annotations

import math
from fractions import Fraction

MAX_BITS = 4096
MAX_EXPONENT = 1000
MAX_FACTORIAL = 500
MAX_NODES = 400
ZERO = Fraction(0)


class TooBig(ArithmeticError):
    pass


def _check(value: Fraction) -> Fraction:
    if value.numerator.bit_length() > MAX_BITS or value.denominator.bit_length() > MAX_BITS:
        raise TooBig("number too large")
    return value


def exact_value(node: tuple):
    """(re, im) Fractions, or None if not an exact rational complex number. Raises TooBig."""
    kind = node[0]
    if kind == "n":
        return node[1], ZERO
    if kind == "c":
        return (ZERO, Fraction(1)) if node[1] == "i" else None
    if kind == "neg":
        inner = exact_value(node[1])
        return None if inner is None else (-inner[0], -inner[1])
    if kind == "+":
        return _fold(node[1], _add, (ZERO, ZERO))
    if kind == "*":
        return _fold(node[1], _mul, (Fraction(1), ZERO))
    if kind == "/":
        top, bottom = exact_value(node[1]), exact_value(node[2])
        return None if top is None or bottom is None else _div(top, bottom)
    if kind == "^":
        return _exact_power(node[1], node[2])
    if kind == "f":
        return _exact_function(node[1], node[2])
    return None


def _fold(items, combine, start):
    total = start
    for item in items:
        value = exact_value(item)
        if value is None:
            return None
        total = combine(total, value)
    return total


def _add(a, b):
    return _check(a[0] + b[0]), _check(a[1] + b[1])


def _mul(a, b):
    return _check(a[0] * b[0] - a[1] * b[1]), _check(a[0] * b[1] + a[1] * b[0])


def _div(a, b):
    norm = b[0] * b[0] + b[1] * b[1]
    if norm == 0:
        return None
    return _mul(a, (b[0] / norm, -b[1] / norm))


def _exact_power(base_node: tuple, exponent_node: tuple):
    exponent = exact_value(exponent_node)
    if exponent is None or exponent[1] != 0:
        return None
    base = exact_value(base_node)
    if base is None:
        return None
    power = exponent[0]
    if base == (ZERO, ZERO):
        return (ZERO, ZERO) if power > 0 else None
    if base in ((Fraction(1), ZERO),):
        return base
    if power.denominator == 1:
        return _integer_power(base, power.numerator)
    if base[1] != 0 or base[0] < 0 or power.denominator > 12:
        return None
    root = _rational_root(base[0], power.denominator)
    return None if root is None else _integer_power((root, ZERO), power.numerator)


def _integer_power(base, exponent: int):
    size = max(
        base[0].numerator.bit_length(),
        base[0].denominator.bit_length(),
        base[1].numerator.bit_length(),
        base[1].denominator.bit_length(),
        1,
    )
    if abs(exponent) > 100_000 or size * abs(exponent) > MAX_BITS * 2:
        raise TooBig("power too large")
    if base[1] == 0:
        if base[0] == 0 and exponent < 0:
            return None
        return _check(base[0] ** exponent), ZERO
    result, square, remaining = (Fraction(1), ZERO), base, abs(exponent)
    while remaining:
        if remaining & 1:
            result = _mul(result, square)
        remaining >>= 1
        if remaining:
            square = _mul(square, square)
    return result if exponent >= 0 else _div((Fraction(1), ZERO), result)


def _integer_root(value: int, degree: int):
    if value < 0:
        return None
    guess = round(value ** (1.0 / degree)) if value.bit_length() < 1000 else _newton_root(value, degree)
    for candidate in (guess - 1, guess, guess + 1):
        if candidate >= 0 and candidate**degree == value:
            return candidate
    return None


def _newton_root(value: int, degree: int) -> int:
    guess = 1 << ((value.bit_length() + degree - 1) // degree)
    while True:
        better = ((degree - 1) * guess + value // guess ** (degree - 1)) // degree
        if better >= guess:
            return guess
        guess = better


def _rational_root(value: Fraction, degree: int):
    top, bottom = _integer_root(value.numerator, degree), _integer_root(value.denominator, degree)
    return None if top is None or bottom is None else Fraction(top, bottom)


def _exact_function(name: str, args: tuple):
    values = [exact_value(arg) for arg in args]
    if any(value is None or value[1] != 0 for value in values):
        return None
    reals = [value[0] for value in values]
    if name == "sqrt":
        degree = reals[1] if len(reals) > 1 else Fraction(2)
        if degree.denominator != 1 or not 1 < degree <= 12 or reals[0] < 0:
            return None
        root = _rational_root(reals[0], int(degree))
        return None if root is None else (root, ZERO)
    if name == "abs":
        return abs(reals[0]), ZERO
    if name == "fact" and reals[0].denominator == 1 and 0 <= reals[0] <= MAX_FACTORIAL:
        return Fraction(math.factorial(int(reals[0]))), ZERO
    if name == "binom" and all(r.denominator == 1 and 0 <= r <= 10_000 for r in reals):
        return Fraction(math.comb(int(reals[0]), int(reals[1]))), ZERO
    return None
