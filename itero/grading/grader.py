"""grade / grade_batch: extraction + equivalence, with the sympy part in killable workers."""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain

from .equivalence import Comparer, analyse, choice_gold, choice_letters, structure_asts
from .extract import extract_answer
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
    """Both answers parsed, the in-process steps could not decide: sympy must."""

    pred: tuple
    gold: tuple


def quick_judge(pred: str, gold: str):
    """(correct, method) when decidable without sympy, else an ``_Undecided`` for the worker."""
    p, g = analyse(pred), analyse(gold)
    if p.key == g.key:
        return True, "string"
    choice = choice_gold(g.normalized)
    if choice is not None:
        return _judge_choice(p.normalized, pred, choice)
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
    return _Undecided(p.structure, g.structure)


def _judge_choice(pred_normalized: str, pred: str, choice):
    letter, value = choice
    letters = choice_letters(pred_normalized)
    if len(letters) == 1:
        return letter in letters, "choice"
    if len(letters) > 1:
        return False, "choice:several"
    if value:
        decided = quick_judge(pred, value)
        return decided if isinstance(decided, _Undecided) else (decided[0], "choice:" + decided[1])
    return False, "choice"


def symbolic_compare(pred: tuple, gold: tuple) -> tuple[bool, str]:
    """Runs inside the worker: the full comparison with sympy allowed."""
    comparer = Comparer(symbolic=True)
    result = bool(comparer.answers(pred, gold))
    return result, comparer.method(result, gold[0])


def _resolve(undecided: _Undecided, timeout: float, pool: WorkerPool):
    """(correct, method, timed_out) from the worker."""
    status, reply = pool.call(("compare", undecided.pred, undecided.gold), timeout)
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


def grade(response: str, gold: str, timeout: float = DEFAULT_TIMEOUT) -> Verdict:
    """Extract the final answer of ``response`` and judge it against ``gold``."""
    start = time.perf_counter()
    extracted = extract_answer(response)
    if extracted is None:
        return Verdict(False, None, "no_answer", time.perf_counter() - start)
    decided = quick_judge(extracted, str(gold))
    if isinstance(decided, _Undecided):
        correct, method, timed_out = _resolve(decided, timeout, shared_pool())
    else:
        (correct, method), timed_out = decided, False
    return Verdict(correct, extracted, method, time.perf_counter() - start, timed_out)


def grade_batch(pairs: Iterable[tuple[str, str]], workers: int = 1, timeout: float = DEFAULT_TIMEOUT) -> list[Verdict]:
    """Grade (response, gold) pairs; the result list follows the input order.

    The cheap steps run here, in-process; only cases that need sympy go to ``workers``
    worker processes in parallel, each under its own hard ``timeout``.
    """
    verdicts: list[Verdict | None] = []
    pending: list[tuple[int, str, _Undecided, float]] = []
    for index, (response, gold) in enumerate(pairs):
        start = time.perf_counter()
        extracted = extract_answer(response)
        decided = None if extracted is None else quick_judge(extracted, str(gold))
        if decided is None:
            verdicts.append(Verdict(False, None, "no_answer", time.perf_counter() - start))
        elif isinstance(decided, _Undecided):
            verdicts.append(None)
            pending.append((index, extracted, decided, time.perf_counter() - start))
        else:
            verdicts.append(Verdict(decided[0], extracted, decided[1], time.perf_counter() - start))
    if pending:
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
    return verdicts  # type: ignore[return-value]


def warm_up(workers: int = 1) -> None:
    """Start the sympy workers now, so the first symbolic case does not pay the start-up."""
    shared_pool().ensure(workers)
