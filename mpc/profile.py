"""Where a party's time goes: a per-process profile of the event-loop thread, off unless switched on.

`mpc bench --profile` (docs/performance.md) switches it on in every party process and reads it around
each op's online window. The loop thread's wall time is split into exclusive sections, each measured
with time.perf_counter at its entry and exit (a section's time excludes the sections nested in it):

- `compute`: the protocol bodies' own steps (protocols/primitives/core.py times every resumption of a
  body's coroutine): numpy, and the bodies' Python around it;
- `transport`: this thread's part of moving messages: framing and queuing a send, handing messages to
  ZeroMQ, taking them off the socket, checking and joining them (mpc/transport/zmq_transport.py);
- `idle`: the event loop blocked in its selector with nothing ready: waiting for peers (their compute
  and the wire);
- `overhead`: the rest of the window (event-loop scheduling, tasks, futures, run_protocol's glue).

Beside the wall split, CPU time: `cpu_loop` (this thread, time.thread_time) and `cpu_other` (every other
thread of the process: libzmq's I/O thread, which runs CurveZMQ's encryption and the socket calls, on
another core in parallel). On a busy host the loop thread may be runnable yet not running: that time
lands in whatever section it happened in.
"""

from __future__ import annotations

import asyncio
import time
import types
from collections.abc import Awaitable, Coroutine, Generator, Iterator
from contextlib import contextmanager
from typing import Any

SECTIONS = ("compute", "transport", "idle")


class Profile:
    """Exclusive section timers for the event-loop thread (one instance per process: PROFILE)."""

    def __init__(self) -> None:
        self.enabled = False
        self.totals: dict[str, float] = dict.fromkeys(SECTIONS, 0.0)
        self._stack: list[str] = []
        self._last = 0.0

    def enter(self, name: str) -> None:
        now = time.perf_counter()
        if self._stack:
            self.totals[self._stack[-1]] += now - self._last
        self._stack.append(name)
        self._last = now

    def exit(self) -> None:
        now = time.perf_counter()
        self.totals[self._stack.pop()] += now - self._last
        self._last = now

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        self.enter(name)
        try:
            yield
        finally:
            self.exit()

    def snapshot(self) -> dict[str, float]:
        """The section totals so far and the clocks: subtract two snapshots (`since`) for a window."""
        return {**self.totals, "wall": time.perf_counter(), "cpu_loop": time.thread_time(),
                "cpu_process": time.process_time()}

    def enable(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Switch on, and time the running loop's selector (the `idle` section)."""
        self.enabled = True
        loop = loop or asyncio.get_running_loop()
        selector = getattr(loop, "_selector", None)  # CPython's selector event loop (the default on Linux)
        if selector is None or getattr(selector.select, "_mpc_profiled", False):
            return
        select = selector.select

        def timed_select(timeout: float | None = None) -> Any:
            self.enter("idle")
            try:
                return select(timeout)
            finally:
                self.exit()

        timed_select._mpc_profiled = True  # type: ignore[attr-defined]
        selector.select = timed_select


def since(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """The split of the window between two snapshots (seconds)."""
    d = {k: after[k] - before[k] for k in after}
    wall = d.pop("wall")
    cpu_process = d.pop("cpu_process")
    out = {"wall": wall, **{k: d[k] for k in SECTIONS}}
    out["overhead"] = wall - sum(d[k] for k in SECTIONS)
    out["cpu_loop"] = d["cpu_loop"]
    out["cpu_other"] = cpu_process - d["cpu_loop"]
    return out


PROFILE = Profile()


@types.coroutine
def timed(coro: Awaitable[Any], name: str = "compute") -> Generator[Any, Any, Any]:
    """Await `coro` (a coroutine), timing each of its steps (from a resumption to its next suspension) as
    `name`."""
    assert isinstance(coro, Coroutine), "timed() steps a coroutine"
    send: Any = None
    error: BaseException | None = None
    while True:
        PROFILE.enter(name)
        try:
            yielded = coro.send(send) if error is None else coro.throw(error)
        except StopIteration as stop:
            return stop.value
        finally:
            PROFILE.exit()
        try:
            send, error = (yield yielded), None
        except BaseException as exc:  # noqa: BLE001 - handed on to the coroutine, as `await` would
            send, error = None, exc
