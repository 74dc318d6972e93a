"""Built-in arithmetic task: multi-step integer expressions with worked solutions ending in \\boxed{}.

``47+18*3=`` → ``18*3=54. 47+54=101. \\boxed{101}``. Multiplication first, then left to right,
one operation per step. Problems are drawn from a seeded generator and split into disjoint
train / test sets by their text, so a test problem is never seen in warm-up or RL.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Problem:
    prompt: str  # the text the model is conditioned on
    answer: str  # gold final answer
    solution: str = ""  # worked solution (response text) for SFT
    # dataset columns handed to reward functions (task.dataset); not part of the problem's identity
    columns: Mapping[str, object] = field(default_factory=dict, compare=False, hash=False)


def solve_steps(numbers: list[int], ops: list[str]) -> tuple[list[str], int]:
    """Evaluate with precedence (* before + and -), returning one ``a op b=c.`` string per operation."""
    numbers, ops, steps = list(numbers), list(ops), []
    for phase in ("*", "+-"):
        i = 0
        while i < len(ops):
            if ops[i] in phase:
                a, b, op = numbers[i], numbers[i + 1], ops[i]
                value = a * b if op == "*" else a + b if op == "+" else a - b
                steps.append(f"{a}{op}{b}={value}.")
                numbers[i : i + 2] = [value]
                del ops[i]
            else:
                i += 1
    return steps, numbers[0]


def make_problem(
    rng: random.Random, digits: int, num_ops: int, ops: str, small_multiplier: bool, fixed_ops: bool = False
) -> Problem:
    """``fixed_ops``: the i-th operator is ``ops[i]`` (``ops="+*"`` gives a+b*c); otherwise random ones."""
    lo, hi = 10 ** (digits - 1), 10**digits - 1
    chosen_ops = list(ops[:num_ops]) if fixed_ops else [rng.choice(ops) for _ in range(num_ops)]
    numbers = [rng.randint(lo, hi)]
    for op in chosen_ops:
        # a one-digit right operand of * keeps products short enough for a tiny model to learn
        numbers.append(rng.randint(2, 9) if (op == "*" and small_multiplier) else rng.randint(lo, hi))
    text = str(numbers[0]) + "".join(f"{op}{n}" for op, n in zip(chosen_ops, numbers[1:])) + "="
    steps, value = solve_steps(numbers, chosen_ops)
    return Problem(prompt=text, answer=str(value), solution=" ".join(steps) + f" \\boxed{{{value}}}")


def make_splits(
    num_train: int,
    num_test: int,
    *,
    digits: int = 2,
    num_ops: int = 2,
    ops: str = "+-*",
    small_multiplier: bool = True,
    fixed_ops: bool = False,
    seed: int = 0,
) -> tuple[list[Problem], list[Problem]]:
    """Disjoint train and test problems, deterministic for a seed."""
    if not ops or set(ops) - set("+-*"):
        raise ValueError(f"task.arithmetic.ops={ops!r}: use characters from '+-*'")
    if fixed_ops and len(ops) != num_ops:
        raise ValueError(f"task.arithmetic.fixed_ops needs one operator per operation: ops={ops!r}, num_ops={num_ops}")
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[Problem] = []
    attempts = 0
    while len(out) < num_train + num_test:
        attempts += 1
        if attempts > 50 * (num_train + num_test):
            raise ValueError(
                f"only {len(out)} distinct arithmetic problems exist for digits={digits}, num_ops={num_ops}; "
                "lower num_train/num_test or raise digits/num_ops"
            )
        p = make_problem(rng, digits, num_ops, ops, small_multiplier, fixed_ops)
        if p.prompt not in seen:
            seen.add(p.prompt)
            out.append(p)
    return out[num_test:], out[:num_test]
