"""grade / grade_batch: extraction + equivalence, with the sympy part in killable workers."""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain

from .choice import parse_choice
from .equivalence import Comparer, analyse, structure_asts, symbolic_compare, symbolic_compare_any  # noqa: F401 (the worker's entry points, re-exported)
from .extract import extract
from .readings import readings, unwrap_gold
from .screen import guard_problem
from .worker import WorkerPool, shared_pool

DEFAULT_TIMEOUT = 2.0


@dataclass(frozen=True)
class Verdict:
    correct: bool
    extracted: str | None  # None when the response gives no final answer
    method: str  # which step decided, e.g. "string", "expr:rational", "set:symbolic", "timeout"
    seconds: float
    timed_out: bool = False

    @property
    def reward(self) -> float:
        return 1.0 if self.correct else 0.0


@dataclass(frozen=True)
class _Undecided:
    """Both answers parsed, the in-process steps could not decide: sympy must (any pair may match)."""

    pairs: tuple  # ((pred structure, gold structure), ...)


def quick_judge(pred: str, gold: str):
    """(correct, method) when decidable without sympy, else an ``_Undecided`` for the worker.

    Every reading of the answer is tried against every reading of the gold (``readings.py``).
    """
    undecided, rejected = [], None
    for gold_reading in readings(unwrap_gold(gold)):
        for pred_reading in readings(pred):
            decided = _judge_reading(pred_reading, gold_reading)
            if isinstance(decided, _Undecided):
                undecided.extend(decided.pairs)
            elif decided[0]:
                return decided
            elif rejected is None:
                rejected = decided
    if undecided:
        return _Undecided(tuple(undecided))
    return rejected or (False, "empty")


def _judge_reading(pred: str, gold: str):
    p, g = analyse(pred), analyse(gold)
    if p.key == g.key:
        return True, "string"
    gold_choice = parse_choice(g.normalized)
    if gold_choice is not None:
        return _judge_choice(p.normalized, pred, gold_choice)
    if p.structure is None or g.structure is None:
        return False, "guard:length"
    comparer = Comparer(symbolic=False)
    result = comparer.answers(p.structure, g.structure)
    if result is not None:
        return result, comparer.method(result, g.structure[0])
    for ast in chain(structure_asts(p.structure), structure_asts(g.structure)):
        problem = guard_problem(ast)
        if problem:
            return False, f"guard:{problem}"
    return _Undecided(((p.structure, g.structure),))


def _judge_choice(pred_normalized: str, pred: str, gold_choice):
    """A letter gold matches only an answer that is wholly a choice, or the option's own text."""
    letter, option = gold_choice
    pred_choice = parse_choice(pred_normalized)
    if pred_choice is not None:
        return pred_choice[0] == letter, "choice"
    if option:
        decided = _judge_reading(pred, option)
        return decided if isinstance(decided, _Undecided) else (decided[0], "choice:" + decided[1])
    return False, "choice"


def _resolve(undecided: _Undecided, timeout: float, pool: WorkerPool):
    """(correct, method, timed_out) from the worker."""
    status, reply = pool.call(("compare_any", undecided.pairs), timeout)
    if status == "timeout":
        return False, "timeout", True
    if status == "error" or reply[0] != "ok":
        return False, "error", False
    correct, method = reply[1]
    return correct, method, False


def is_equiv(pred: str, gold: str, timeout: float = DEFAULT_TIMEOUT) -> bool:
    decided = quick_judge(pred, gold)
    if isinstance(decided, _Undecided):
        return _resolve(decided, timeout, shared_pool())[0]
    return decided[0]


def final_answer(response: str, gold: str, mode: str = "strict") -> str | None:
    """The answer of ``response`` to grade: several adjacent final boxes count together when the gold is a list."""
    extraction = extract(response, mode)
    if extraction.group is not None and gold_is_list(gold):
        return extraction.group
    return extraction.answer


def gold_is_list(gold: str) -> bool:
    structure = analyse(unwrap_gold(str(gold))).structure
    return structure is not None and structure[0] == "set" and len(structure[1]) > 1


def grade(response: str, gold: str, timeout: float = DEFAULT_TIMEOUT, mode: str = "strict") -> Verdict:
    """Extract the final answer of ``response`` (``mode``: "strict" or "lenient") and judge it against ``gold``."""
    start = time.perf_counter()
    extracted = final_answer(response, str(gold), mode)
    if extracted is None:
        return Verdict(False, None, "no_answer", time.perf_counter() - start)
    decided = quick_judge(extracted, str(gold))
    if isinstance(decided, _Undecided):
        correct, method, timed_out = _resolve(decided, timeout, shared_pool())
    else:
        (correct, method), timed_out = decided, False
    return Verdict(correct, extracted, method, time.perf_counter() - start, timed_out)


def grade_batch(
    pairs: Iterable[tuple[str, str]], workers: int = 1, timeout: float = DEFAULT_TIMEOUT, mode: str = "strict"
) -> list[Verdict]:
    """Grade (response, gold) pairs; the result list follows the input order.

    The cheap steps run here, in-process; only cases that need sympy go to ``workers``
    worker processes in parallel, each under its own hard ``timeout``.
    """
    verdicts: list[Verdict | None] = []
    pending: list[tuple[int, str, _Undecided, float]] = []
    for index, (response, gold) in enumerate(pairs):
        start = time.perf_counter()
        extracted = final_answer(response, str(gold), mode)
        decided = None if extracted is None else quick_judge(extracted, str(gold))
        if decided is None:
            verdicts.append(Verdict(False, None, "no_answer", time.perf_counter() - start))
        elif isinstance(decided, _Undecided):
            verdicts.append(None)
            pending.append((index, extracted, decided, time.perf_counter() - start))
        else:
            verdicts.append(Verdict(decided[0], extracted, decided[1], time.perf_counter() - start))
    if pending:
        _resolve_pending(pending, verdicts, workers, timeout)
    return verdicts  # type: ignore[return-value]


def _resolve_pending(pending: list, verdicts: list, workers: int, timeout: float) -> None:
    pool = shared_pool()
    workers = max(1, workers)
    pool.ensure(workers)

    def finish(item):
        index, extracted, undecided, spent = item
        start = time.perf_counter()
        correct, method, timed_out = _resolve(undecided, timeout, pool)
        verdicts[index] = Verdict(correct, extracted, method, spent + time.perf_counter() - start, timed_out)

    if workers == 1:
        for item in pending:
            finish(item)
    else:
        with ThreadPoolExecutor(max_workers=workers) as executor:
            list(executor.map(finish, pending))


def warm_up(workers: int = 1) -> None:
    """Start the sympy workers now, so the first symbolic case does not pay the start-up."""
    shared_pool().ensure(workers)
