"""Reward functions (``reward.functions``): the reward is Σ weight · fn over a list of callables.

The signature, batched like TRL's ``reward_funcs(prompts, completions, **kwargs)``::

    def my_reward(prompts: list[str], responses: list[str], **columns) -> list[float]

``columns`` holds ``answers`` (the gold answers) and every dataset column the task keeps
(``task.dataset.columns``), each a list aligned with ``responses``. An ``async def`` function is
awaited. ``style: verl`` takes verl's per-sample ``compute_score(data_source, solution_str,
ground_truth, extra_info=None) -> float`` (or a dict with a ``score``) instead.

Built-ins by name: ``math`` (the math grader's correct / wrong / no-answer values), ``format`` (1 when
the response has a ``\\boxed{}`` answer, else 0) and ``model`` (the reward model of
``reward.model_path``, with its running normaliser). Correctness flags, logged as sample accuracy,
always come from the math grader.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from itero.errors import IteroError
from itero.rewards.math import MathReward
from itero.rewards.state import NormState

BUILTIN_NAMES = ("math", "format", "model")


class RewardFunctionError(IteroError, ValueError):
    """A reward function that cannot be loaded, or returned something that is not one float per response."""


@dataclass
class RewardTerm:
    name: str  # logged as score/<name>_mean
    fn: Callable
    weight: float = 1.0
    style: str = "batched"  # or "verl": per-sample compute_score


def load_from_file(spec: str) -> Callable:
    """``path/to/file.py:function`` -> the function; every failure is one line naming file and function."""
    file, sep, attr = spec.rpartition(":")
    if not sep or not file or not attr:
        raise RewardFunctionError(f"reward function {spec!r}: write it as path/to/file.py:function_name")
    path = Path(file).expanduser()
    if not path.is_file():
        raise RewardFunctionError(f"reward function {spec!r}: file {path} does not exist")
    module_name = f"itero_user_reward_{abs(hash(str(path.resolve())))}"
    loader = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(loader)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
    try:
        loader.loader.exec_module(module)
    except Exception as err:
        raise RewardFunctionError(
            f"reward function {spec!r}: importing {path} failed: {type(err).__name__}: {err}"
        ) from err
    fn = getattr(module, attr, None)
    if fn is None:
        names = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise RewardFunctionError(
            f"reward function {spec!r}: {path} has no {attr!r} (callables there: {', '.join(names) or 'none'})"
        )
    if not callable(fn):
        raise RewardFunctionError(f"reward function {spec!r}: {attr!r} is a {type(fn).__name__}, not a function")
    return fn


class MathFunction:
    """The math grader as a reward function; keeps its last verdicts so correctness is graded once."""

    def __init__(self, grader: MathReward):
        self.grader, self._last = grader, None

    def grade(self, responses: Sequence[str], answers: Sequence[str]) -> tuple[list[float], list[bool]]:
        key = (tuple(responses), tuple(answers))
        if self._last is None or self._last[0] != key:
            self._last = (key, self.grader.grade(responses, answers))
        return self._last[1]

    def __call__(self, prompts: Sequence[str], responses: Sequence[str], answers: Sequence[str], **_) -> list[float]:
        return self.grade(responses, answers)[0]


class ModelFunction:
    """A reward model as a reward function; ``norm`` is its running normaliser (saved per iteration)."""

    def __init__(self, model):
        self.model = model
        self.norm = model.norm

    def __call__(self, prompts: Sequence[str], responses: Sequence[str], **_) -> list[float]:
        return self.model.score(prompts, responses).tolist()


def format_reward(prompts: Sequence[str], responses: Sequence[str], **_) -> list[float]:
    """1.0 when the response ends its reasoning with a ``\\boxed{...}`` answer, else 0.0."""
    from itero.data import last_boxed

    return [1.0 if last_boxed(r) is not None else 0.0 for r in responses]


def call_term(term: RewardTerm, prompts: list[str], responses: list[str], columns: dict[str, list]) -> list[float]:
    """One float per response from ``term``, awaited if async; a wrong count or a non-finite value is an error."""
    if term.style == "verl":
        values = _call_verl(term.fn, responses, columns)
    else:
        values = term.fn(prompts, responses, **columns)
        if inspect.isawaitable(values):
            values = asyncio.run(_awaited(values))
    return _checked(term.name, values, len(responses))


async def _awaited(awaitable):
    return await awaitable


def _call_verl(fn: Callable, responses: list[str], columns: dict[str, list]) -> list:
    extra = [k for k in columns if k not in ("answers", "data_source", "extra_info")]
    n = len(responses)

    def args(i: int) -> tuple:
        data_source = columns.get("data_source", [""] * n)[i]
        info = columns["extra_info"][i] if "extra_info" in columns else {k: columns[k][i] for k in extra}
        return data_source, responses[i], columns["answers"][i], info

    out = [fn(*args(i)) for i in range(n)]
    if out and inspect.isawaitable(out[0]):
        out = asyncio.run(_gathered(out))
    return [v["score"] if isinstance(v, Mapping) else v for v in out]


async def _gathered(awaitables):
    return await asyncio.gather(*awaitables)


def _checked(name: str, values, n: int) -> list[float]:
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError) as err:
        raise RewardFunctionError(f"reward function {name!r} must return one float per response ({err})") from None
    if len(values) != n:
        raise RewardFunctionError(f"reward function {name!r} returned {len(values)} values for {n} responses")
    bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
    if bad is not None:
        raise RewardFunctionError(f"reward function {name!r} returned {values[bad]} for response {bad}")
    return values


class RewardFunctions(NormState):
    """Σ weight · fn over ``terms``, with ``grade`` shaped like MathReward's so the loop can use it.

    ``columns_of(prompt, answer)`` gives a rendered prompt's dataset columns (None: the task keeps none).
    ``last_metrics`` holds each term's mean over the last graded batch.
    """

    def __init__(self, terms: list[RewardTerm], grader: MathFunction, columns_of: Callable | None = None):
        self.terms, self.grader, self.columns_of = terms, grader, columns_of
        self.last_metrics: dict[str, float] = {}
        norms = [t.fn.norm for t in terms if getattr(t.fn, "norm", None) is not None]
        self.norm = norms[0] if norms else None  # config validation allows one reward model

    def grade(
        self, responses: Sequence[str], answers: Sequence[str], prompts: Sequence[str] | None = None
    ) -> tuple[list[float], list[bool]]:
        """(rewards, correct flags). Without ``prompts`` (evaluation asks only for correctness) the
        functions are not called and the rewards are NaN."""
        responses, answers = list(responses), list(answers)
        correct = self.correct(responses, answers)
        if prompts is None:
            return [math.nan] * len(responses), correct
        prompts = list(prompts)
        columns = {"answers": answers, **self._dataset_columns(prompts, answers)}
        total = [0.0] * len(responses)
        for term in self.terms:
            values = call_term(term, prompts, responses, columns)
            self.last_metrics[f"{term.name}_mean"] = sum(values) / max(len(values), 1)
            total = [t + term.weight * v for t, v in zip(total, values)]
        return total, correct

    def correct(self, responses: Sequence[str], answers: Sequence[str]) -> list[bool]:
        """The math grader's flags where gold answers exist; the functions are not called."""
        responses, answers = list(responses), list(answers)
        return self.grader.grade(responses, answers)[1] if any(answers) else [False] * len(responses)

    def _dataset_columns(self, prompts: list[str], answers: list[str]) -> dict[str, list]:
        if self.columns_of is None:
            return {}
        rows = [self.columns_of(p, a) or {} for p, a in zip(prompts, answers)]
        names = dict.fromkeys(name for row in rows for name in row)
        return {name: [row.get(name) for row in rows] for name in names}


def load_terms(specs, builtins: Mapping[str, Callable]) -> list[RewardTerm]:
    """``reward.functions`` entries -> terms; ``builtins`` maps the built-in names to their functions."""
    terms = []
    for spec in specs:
        if spec.path:
            fn = load_from_file(spec.path)
            name = spec.name or spec.path.rpartition(":")[2]
        else:
            fn, name = builtins[spec.name], spec.name
        terms.append(RewardTerm(name=name, fn=fn, weight=spec.weight, style=spec.style))
    names = [t.name for t in terms]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise RewardFunctionError(f"reward.functions: two functions are named {duplicate!r}; give each a name")
    return terms
