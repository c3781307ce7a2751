"""Worker processes for a party's heavy local work (the helper's DCF key generation), one per core.

Why processes: the AES that dealing runs (`cryptography`) holds the GIL, so two threads of one process
deal about as fast as one. A pool is started once per party that deals, at party start, and lives exactly
as long as the party's run.

- A worker is a fresh interpreter running this module (`python -m mpc.workers`), given one end of a Unix
  socket pair: the party process runs ZeroMQ's threads and must never be forked, and unlike
  multiprocessing's `spawn` a fresh interpreter never re-runs the user's script (a program without an
  `if __name__ == "__main__"` guard would start its parties again in every worker). `start()` returns at
  once; the workers boot (~0.15 s: an interpreter, numpy, this module) while the party connects to its
  peers, and the party's program starts once they have (`ready()`, in mpc/runtime.py), so no operation
  waits for them. `warm(fn)` has them import the module of the work they will run before it comes.
- Work (`fill`): n items split into contiguous ranges, one per worker; each worker runs the given
  module-level function over its range and writes its output straight into shared memory (an anonymous
  memfd, no name to unlink, nothing left behind if the party is killed), laid out as the caller wants it.
  Only the small inputs are pickled, never the outputs. That memory (the arena) is kept mapped, in the
  party and in every worker, from job to job, growing to the largest job: fresh shared pages cost ~45 ms
  per 50 MB to fault in (no transparent huge pages for shared memory), half a worker's work on a chunk of
  DCF keys. So the caller gets one copy of a job's words (an ordinary numpy array, ~10 ms per 50 MB) and
  the arena is free for the next job: no shared memory outlives a job in anyone's hands.
- Liveness (`frozen_after_s`): a worker busy on a job that uses no CPU time for that long (stopped by
  SIGSTOP, or hung) fails the job naming it, as a peer that stops answering heartbeats is named; without
  it the party would wait for it forever (Linux: read from /proc).
- Stop (`close`): the workers are terminated and joined (SIGTERM, then SIGKILL after GRACE_S). Work not yet
  handed out never starts; a job under way stops being waited for (its pipes reach EOF, and the party's
  stop check is polled). Workers ignore SIGINT (the party handles an interrupt and stops them), and on Linux
  the kernel kills them if the party process dies without stopping them (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import mmap
import os
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from multiprocessing import reduction
from multiprocessing.connection import Connection, wait
from typing import Any, cast

import numpy as np

log = logging.getLogger("mpc.workers")

RangeFn = Callable[..., None]
"""fn(words, n, lo, hi, *inputs[lo:hi], *params): write items lo:hi of n into `words` (the whole output)."""
GRACE_S = 1.0  # after SIGTERM, before SIGKILL (a worker computing in C dies at once on SIGTERM anyway)
POLL_S = 0.05  # how often a waiting job checks the party's stop signal
_PR_SET_PDEATHSIG = 1


class WorkerPool:
    """`size` worker processes of one party. Jobs run one at a time (a lock), each split over every worker.

    Start from the thread that runs the party's event loop (it lives as long as the pool): on Linux the
    workers are tied to the starting thread's life (PR_SET_PDEATHSIG)."""

    def __init__(self, size: int, name: str = "party", check: Callable[[], None] | None = None,
                 frozen_after_s: float | None = None):
        if size < 2:
            raise ValueError(f"a worker pool needs at least 2 workers, not {size} (1: work in-process)")
        self.size = size
        self.name = name
        self._check = check or _never
        self.frozen_after_s = frozen_after_s
        self._procs: list[_Worker] = []
        self._conns: list[Connection] = []
        self._ready: list[float | None] = []  # when each worker said it had booted (time.time())
        self._lock = threading.Lock()  # one job (or warm-up) at a time on the pipes and the arena
        self._arena: _Arena | None = None
        self._closed = False
        self._started_at = 0.0

    def start(self) -> WorkerPool:
        """Launch the processes and return at once: they boot in the background."""
        self._started_at = time.time()
        # the parent's import path, so that a worker finds the modules of the work it is given as the party does
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        for i in range(self.size):
            mine, theirs = socket.socketpair()  # a Unix socket pair: it can pass the output's fd
            proc = subprocess.Popen([sys.executable, "-m", "mpc.workers", str(theirs.fileno()), str(os.getpid())],
                                    pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env)
            theirs.close()
            self._procs.append(_Worker(f"{self.name}-worker-{i}", proc))
            self._conns.append(Connection(mine.detach()))
            self._ready.append(None)
        return self

    def warm(self, fn: Callable[..., object]) -> None:
        """Have every worker import `fn`'s module now, not inside the first job (call before any job)."""
        message = ("warm", pickle.dumps(fn))
        with self._lock, contextlib.suppress(OSError):  # a worker that died: the job will say so
            if not self._closed:
                for conn in self._conns:
                    conn.send(message)

    def wait_ready(self, timeout_s: float = 30.0) -> float:
        """Block until every worker has booted; the seconds from `start()` to the last one ready."""
        deadline = time.monotonic() + timeout_s
        while not self._poll_ready(max(0.0, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self.name}: worker processes not ready {timeout_s:g} s after they started")
        return self.boot_s

    async def ready(self, timeout_s: float = 30.0) -> float:
        """`wait_ready` for the event loop (polled: the party's start, while its peers start too)."""
        deadline = time.monotonic() + timeout_s
        while not self._poll_ready(0.0):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self.name}: worker processes not ready {timeout_s:g} s after they started")
            await asyncio.sleep(POLL_S / 5)
        return self.boot_s

    @property
    def boot_s(self) -> float:
        """Seconds from `start()` to the last worker ready (so far)."""
        return max((t for t in self._ready if t is not None), default=self._started_at) - self._started_at

    def _poll_ready(self, timeout_s: float) -> bool:
        """Take the workers' boot messages that have come within `timeout_s`; whether all have booted."""
        with self._lock:
            waiting = [c for c, t in zip(self._conns, self._ready, strict=True) if t is None]
            try:
                for conn in wait(waiting, timeout=timeout_s) if waiting else ():
                    self._receive(cast(Connection, conn))
            except (EOFError, OSError):
                if self._closed:
                    raise RuntimeError(f"{self.name}: the worker pool was closed as it started") from None
                dead = [f"{p.name} (exit code {p.exitcode})" for p in self._procs if p.exitcode is not None]
                raise RuntimeError(f"{self.name}: a worker process died as it started: "
                                   f"{', '.join(dead) or 'its pipe closed'}") from None
            finally:
                if self._closed:
                    self._release()
            return None not in self._ready

    def fill(self, fn: RangeFn, n: int, n_words: int, inputs: Sequence[np.ndarray], params: Sequence[Any] = (),
             align: int = 1, out: np.ndarray | None = None) -> np.ndarray:
        """Run fn(words, n, lo, hi, *[x[lo:hi] for x in inputs], *params) over contiguous ranges of [0, n),
        one per worker, each a multiple of `align` items but the last; `words` is n_words uint64 words of
        shared memory that hold an earlier job's words: fn writes every word of its range. Returns a copy of
        `words`, made into `out` if given. Raises the party's stop error once it has stopped, and a worker's
        error as its own."""
        result = np.empty(n_words, dtype=np.uint64) if out is None else out
        if n == 0 or n_words == 0:
            return result
        with self._lock:
            try:
                self._check()
                if self._closed:
                    raise RuntimeError(f"{self.name}: the worker pool is closed")
                if self._arena is None or self._arena.words.size < n_words:
                    self._new_arena(n_words)
                self._run(fn, n, n_words, inputs, params, align)
                assert self._arena is not None
                np.copyto(result, self._arena.words[:n_words])
                return result
            finally:
                if self._closed:  # closed meanwhile (the run stopped): nobody else will use pipes or arena
                    self._release()

    def _new_arena(self, n_words: int) -> None:
        """Replace the arena by one of n_words words, in this process and (in order, before the job) in
        every worker."""
        arena = _Arena(n_words)
        try:
            for proc, conn in zip(self._procs, self._conns, strict=True):
                conn.send(("arena", n_words))
                reduction.send_handle(conn, arena.fd, proc.pid)  # Linux: no acknowledgement to read back
        except (EOFError, OSError):
            arena.close()
            self._broken(None)
            raise
        if self._arena is not None:
            self._arena.close()
        self._arena = arena

    def _run(self, fn: RangeFn, n: int, n_words: int, inputs: Sequence[np.ndarray], params: Sequence[Any],
             align: int) -> None:
        busy: dict[Connection, int] = {}
        errors: dict[int, BaseException] = {}
        conn: Connection | None = None
        try:
            for i, (lo, hi) in enumerate(split(n, self.size, align)):
                conn = self._conns[i]
                task = (fn, n_words, n, lo, hi, [x[lo:hi] for x in inputs], tuple(params))
                conn.send(("run", pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)))
                busy[conn] = i
            watch = _Watch(self._procs, self.frozen_after_s)
            while busy:
                for ready in wait(list(busy), timeout=POLL_S):
                    conn = cast(Connection, ready)
                    result = self._receive(conn)
                    if result is not _BOOTED:
                        i = busy.pop(conn)
                        if result is not None:
                            errors[i] = result
                self._check()
                frozen = watch.frozen(busy.values())
                if frozen is not None:
                    raise RuntimeError(f"{self.name}: a worker process is frozen: {frozen}")
                if self._closed:
                    raise RuntimeError(f"{self.name}: the worker pool was closed during a job")
        except (EOFError, OSError):  # a worker's pipe broke: we stopped it, or it died
            self._broken(conn)
            raise
        if errors:
            raise errors[min(errors)]  # the first range's: the same error whichever worker finishes first

    def _broken(self, conn: Connection | None) -> None:
        """A pipe broke: raise the party's stop error if it has stopped, else name the worker that died."""
        self._check()
        if self._closed:
            raise RuntimeError(f"{self.name}: the worker pool was closed during a job") from None
        if conn is not None:
            proc = self._procs[self._conns.index(conn)]
            proc.join(GRACE_S)  # its exit code, once it is reaped
            raise RuntimeError(f"{self.name}: a worker process died: {proc.name} (exit code {proc.exitcode})") \
                from None

    def _receive(self, conn: Connection) -> Any:
        """One message from a worker: _BOOTED (it is ready), None (its part of a job is done) or an error."""
        kind, value = conn.recv()
        if kind == "ready":
            self._ready[self._conns.index(conn)] = value
            if None not in self._ready:
                log.info("%s: %d worker processes ready %.2f s after they were started", self.name, self.size,
                         self.boot_s)
            return _BOOTED
        return value

    def close(self) -> None:
        """Terminate and join the workers (idempotent, from any thread); a job under way fails at once."""
        self._closed = True
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
        deadline = time.monotonic() + GRACE_S
        for proc in self._procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in self._procs:
            if proc.is_alive():
                proc.kill()
                proc.join()
        if self._lock.acquire(blocking=False):  # else the job under way releases them as it leaves
            try:
                self._release()
            finally:
                self._lock.release()

    def _release(self) -> None:
        """Close the pipes and unmap the arena (holding the lock: no job reads them)."""
        for conn in self._conns:
            conn.close()
        if self._arena is not None:
            self._arena.close()
            self._arena = None

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]

    @property
    def alive(self) -> list[int]:
        """The pids of the workers still running (none once `close()` has returned)."""
        return [p.pid for p in self._procs if p.pid is not None and p.is_alive()]


_BOOTED = object()
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class _Watch:
    """Tells a frozen worker during a job: one that has used no CPU time for `after_s` (None: never)."""

    def __init__(self, procs: Sequence[_Worker], after_s: float | None):
        self.procs = procs
        self.after_s = after_s
        self.seen: dict[int, tuple[float, float]] = {}  # worker index: (its CPU seconds, when they last grew)
        self.next_check = 0.0

    def frozen(self, busy: Iterable[int]) -> str | None:
        now = time.monotonic()
        if self.after_s is None or now < self.next_check:
            return None
        self.next_check = now + min(0.5, self.after_s / 4)
        for i in busy:
            proc = self.procs[i]
            state, cpu = _cpu(proc.pid)
            if cpu is None:
                continue  # not Linux, or it has just exited (its pipe says so)
            last = self.seen.get(i)
            if last is None or cpu > last[0]:
                self.seen[i] = (cpu, now)
            elif now - last[1] >= self.after_s:
                how = "stopped (SIGSTOP?)" if state in ("T", "t") else "hung"
                return (f"{proc.name} (pid {proc.pid}) has used no CPU time for {now - last[1]:.0f} s during a job: "
                        f"{how}")
        return None


def _cpu(pid: int) -> tuple[str, float | None]:
    """A process's state letter and CPU seconds so far (user + system), from /proc (None: unknown)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return fields[0].decode(), (int(fields[11]) + int(fields[12])) / _TICKS
    except (OSError, IndexError, ValueError):
        return "?", None


class _Worker:
    """One worker process: its name, and what the pool asks of it (alive, terminate, kill, join, exit code)."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes]):
        self.name = name
        self._proc = proc
        self.pid = proc.pid

    @property
    def exitcode(self) -> int | None:
        return self._proc.poll()

    def is_alive(self) -> bool:
        return self._proc.poll() is None

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._proc.terminate()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._proc.kill()

    def join(self, timeout: float | None = None) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout)


def _never() -> None:
    """The default stop check: never stopped."""


def split(n: int, parts: int, align: int = 1) -> list[tuple[int, int]]:
    """At most `parts` contiguous non-empty ranges covering [0, n), as even as whole units of `align` allow."""
    units = -(-n // align)
    parts = max(1, min(parts, units))
    bounds = [min(n, units * i // parts * align) for i in range(parts + 1)]
    return [(lo, hi) for lo, hi in zip(bounds, bounds[1:], strict=False) if hi > lo]


class _Arena:
    """uint64 words in shared memory with no name: a memfd (an unlinked temporary file elsewhere), mapped
    here; workers map it through its descriptor."""

    def __init__(self, n_words: int):
        if hasattr(os, "memfd_create"):
            self.fd = os.memfd_create("mpc-worker-arena", os.MFD_CLOEXEC)
        else:
            with tempfile.TemporaryFile() as f:
                self.fd = os.dup(f.fileno())
        try:
            os.ftruncate(self.fd, 8 * n_words)
            self._mapping = mmap.mmap(self.fd, 8 * n_words)
        except BaseException:
            os.close(self.fd)
            raise
        self.words = np.frombuffer(self._mapping, dtype=np.uint64)

    def close(self) -> None:
        del self.words
        with contextlib.suppress(BufferError):  # a view still held: unmapped when it goes
            self._mapping.close()
        os.close(self.fd)


# -- the worker's side -------------------------------------------------------------------------------------

def _serve(conn: Connection, parent: int) -> None:
    """A worker's life: say it has booted, then run what it is sent until its pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    conn.send(("ready", time.time()))
    words = np.zeros(0, dtype=np.uint64)  # the arena, as mapped here
    while True:
        try:
            kind, body = conn.recv()
        except (EOFError, OSError):
            return
        if kind == "warm":
            with contextlib.suppress(Exception):  # an import that fails here fails again in the job, reported
                pickle.loads(body)
        elif kind == "arena":
            fd = reduction.recv_handle(conn)
            try:
                words = np.frombuffer(mmap.mmap(fd, 8 * body), dtype=np.uint64)  # the old one unmapped with it
            finally:
                os.close(fd)
        else:
            result: BaseException | None = None
            try:
                fn, n_words, n, lo, hi, inputs, params = pickle.loads(body)
                fn(words[:n_words], n, lo, hi, *inputs, *params)
            except Exception as exc:  # noqa: BLE001 - handed to the party, which raises it
                result = exc
            try:
                conn.send(("done", result))
            except (pickle.PicklingError, TypeError, AttributeError):
                conn.send(("done", RuntimeError(f"{type(result).__name__}: {result}")))


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel kills this worker when the party that started it dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the party died before the line above took effect
        os._exit(0)


if __name__ == "__main__":  # a worker: python -m mpc.workers FD PARENT_PID (started by WorkerPool.start)
    _serve(Connection(int(sys.argv[1])), int(sys.argv[2]))
