"""Killable sympy workers with a hard wall-clock limit, usable from any thread.

Why a subprocess and not ``signal.alarm`` (Math-Verify's way): an alarm only works in the main
thread and cannot interrupt a single long C-level operation such as a huge integer power, so one
adversarial answer can hang a training run. Here the caller waits on a pipe with ``select`` and,
when the deadline passes, kills the worker and starts a fresh one right away (so it is warm for
the next case). The caller is never blocked longer than its deadline.

Workers are plain ``subprocess.Popen`` children (``python -m itero.grading.worker``), not
multiprocessing processes, so they can be started from daemonic processes (DataLoader or Pool
workers) too. Messages are length-prefixed pickles over stdin/stdout.
"""

from __future__ import annotations

import atexit
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

_HEADER = struct.Struct(">I")
MEMORY_LIMIT_BYTES = 4 << 30
STARTUP_SECONDS = 60.0


class WorkerTimeout(Exception):
    pass


class WorkerDied(Exception):
    pass


def _write_frame(stream, payload) -> None:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes:
    chunks, remaining = [], size
    while remaining:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise WorkerTimeout()
        chunk = os.read(fd, remaining)
        if not chunk:
            raise WorkerDied("worker closed its pipe")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int, deadline: float | None):
    (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size, deadline))
    return pickle.loads(_read_exact(fd, size, deadline))


class WorkerProcess:
    """One sympy subprocess. Not thread-safe by itself: the pool hands it to one thread at a time."""

    def __init__(self):
        self._proc: subprocess.Popen | None = None
        self._ready = False
        self.start()

    def start(self) -> None:
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = package_root + os.pathsep + env.get("PYTHONPATH", "")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "itero.grading.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        self._ready = False

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def restart(self) -> None:
        self.kill()
        self.start()

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            try:
                self._proc.stdin.close()
                self._proc.wait(timeout=1)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()

    def call(self, request, deadline: float):
        """Send ``request`` and wait for the reply until ``deadline`` (time.monotonic())."""
        fd = self._proc.stdout.fileno()
        if not self._ready:  # a fresh worker's start-up counts against the caller's deadline
            if _read_frame(fd, deadline) != ("ready",):
                raise WorkerDied("bad handshake")
            self._ready = True
        try:
            _write_frame(self._proc.stdin, request)
        except (BrokenPipeError, OSError) as error:
            raise WorkerDied(str(error)) from error
        return _read_frame(fd, deadline)

    def wait_ready(self) -> None:
        if not self._ready:
            if _read_frame(self._proc.stdout.fileno(), time.monotonic() + STARTUP_SECONDS) != ("ready",):
                raise WorkerDied("bad handshake")
            self._ready = True


class WorkerPool:
    """Up to ``max_size`` workers, started on demand; each call holds one worker exclusively."""

    def __init__(self, max_size: int = 4):
        self.max_size = max_size
        self._idle: list[WorkerProcess] = []
        self._count = 0
        self._condition = threading.Condition()
        self._pid = os.getpid()

    def ensure(self, size: int) -> None:
        """Start workers until ``size`` exist and wait until they are ready (they load in parallel)."""
        with self._condition:
            self.max_size = max(self.max_size, size)
            fresh = [WorkerProcess() for _ in range(size - self._count)]
            self._count += len(fresh)
        for worker in fresh:
            worker.wait_ready()
        with self._condition:
            self._idle.extend(fresh)
            self._condition.notify_all()

    def _acquire(self, deadline: float) -> WorkerProcess | None:
        with self._condition:
            while not self._idle:
                if self._count < self.max_size:
                    self._count += 1
                    return WorkerProcess()
                wait = deadline - time.monotonic()
                if wait <= 0:
                    return None
                self._condition.wait(wait)
            return self._idle.pop()

    def _release(self, worker: WorkerProcess) -> None:
        with self._condition:
            self._idle.append(worker)
            self._condition.notify()

    def call(self, request, timeout: float):
        """('ok', reply) | ('timeout', None) | ('error', message)."""
        deadline = time.monotonic() + timeout
        worker = self._acquire(deadline)
        if worker is None:
            return "timeout", None
        try:
            return "ok", worker.call(request, deadline)
        except WorkerTimeout:
            worker.restart()
            return "timeout", None
        except (WorkerDied, EOFError, pickle.UnpicklingError) as error:
            worker.restart()
            return "error", str(error)
        finally:
            self._release(worker)

    def close(self) -> None:
        with self._condition:
            workers, self._idle, self._count = self._idle, [], 0
        for worker in workers:
            worker.close()


_POOL: WorkerPool | None = None
_POOL_LOCK = threading.Lock()


def shared_pool() -> WorkerPool:
    """The process-wide pool; a forked child gets its own (pipes must not be shared)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._pid != os.getpid():
            _POOL = WorkerPool()
        return _POOL


@atexit.register
def _close_shared_pool() -> None:
    if _POOL is not None and _POOL._pid == os.getpid():
        _POOL.close()


def serve() -> None:
    """Worker main loop: answer ('compare', pred, gold) / ('compare_any', pairs) requests until stdin closes."""
    requests, replies = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed by libraries must not corrupt the reply stream
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    except (ImportError, ValueError, OSError):
        pass
    from .equivalence import symbolic_compare, symbolic_compare_any

    symbolic_compare(("expr", ("s", "x")), ("expr", ("s", "x")))  # load sympy before saying ready
    _write_frame(replies, ("ready",))
    while True:
        header = requests.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        kind, *payload = pickle.loads(requests.read(_HEADER.unpack(header)[0]))
        try:
            if kind == "compare_any":
                reply = ("ok", symbolic_compare_any(*payload))
            elif kind == "compare":
                reply = ("ok", symbolic_compare(*payload))
            else:
                reply = ("error", f"unknown {kind}")
        except Exception as error:  # a crash on one odd input must not kill the worker
            reply = ("error", f"{type(error).__name__}: {error}")
        _write_frame(replies, reply)


if __name__ == "__main__":
    serve()
