"""Console progress with ETA for every stage (rich), and one summary line per finished stage."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=False, highlight=False)


@contextmanager
def stage(description: str, total: int, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; shows a live bar with ETA on a terminal and a closing line everywhere."""
    start = time.perf_counter()
    live = enabled and sys.stdout.isatty()
    if live:
        columns = (
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task(description, total=total)
            yield lambda n=1: progress.advance(task, n)
    else:
        yield _periodic_printer(description, total, start, enabled)
    if enabled:
        info(f"{description}: done in {time.perf_counter() - start:.1f}s")


def info(message: str) -> None:
    console.print(message, markup=False, soft_wrap=True)


_warned: set[str] = set()


def warn(message: str) -> None:
    """Input that is legal but suspicious: one ``warning:`` line on stderr, once per process, from rank 0."""
    from itero.distributed import current

    if message not in _warned and current().is_main:
        _warned.add(message)
        print(f"warning: {message}", file=sys.stderr, flush=True)


def _periodic_printer(description: str, total: int, start: float, enabled: bool, every: float = 15.0):
    """Off a terminal (logs, CI): a plain line with the ETA at most every ``every`` seconds."""
    state = {"done": 0, "last": start}

    def advance(n: int = 1) -> None:
        state["done"] += n
        now = time.perf_counter()
        if enabled and now - state["last"] >= every and 0 < state["done"] < total:
            state["last"] = now
            rate = state["done"] / (now - start)
            info(
                f"{description}: {state['done']}/{total}, {now - start:.0f}s, ETA {(total - state['done']) / rate:.0f}s"
            )

    return advance
