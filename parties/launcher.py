"""Start every party of a topology as its own OS process on this host and supervise them.

Each child is `python -m parties run CONFIG --party NAME --json`; its log lines are forwarded prefixed with
its name, its JSON result (or failure) is collected from stdout, its final `error:` line kept for the
launch's summary (one line per party, the root cause first). If a child fails, the others are given
SETTLE_S to notice and stop by themselves (naming the party that failed); any still running are then
stopped (SIGTERM, which makes a party abort cleanly, then SIGKILL after GRACE_S) and the launch fails.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from mpc.records import PartyRecord

# One BLAS/OpenMP thread per party process: several parties share this machine's cores.
CHILD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
             "PYTHONUNBUFFERED": "1"}
GRACE_S = 5.0
# A party learns of a peer's failure within about a second (an abort at once, a dropped connection after
# 0.5 s) and stops within two more: this long the launcher lets it stop by itself, naming the cause.
SETTLE_S = 4.0
ERROR_PREFIX = "error: "
# How a party process is started: the composition root's entry point (parties/__main__.py). A command
# line, not an import: this layer starts the CLI's `run` without depending on the layer above it.
PARTY_COMMAND: tuple[str, ...] = (sys.executable, "-m", "parties")


@dataclass
class ChildResult:
    name: str
    returncode: int
    output: PartyRecord | None
    stderr_tail: list[str] = field(default_factory=list)
    pid: int | None = None
    error: str | None = None  # the party's own final error line
    stopped_by_launcher: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.output is not None and self.output.ok

    @property
    def cause(self) -> str | None:
        """The peer this party's failure names as its cause, if it stopped because of a peer."""
        cause = self.output.cause if self.output is not None else None
        return cause if cause != self.name else None

    oom_killed: bool = False  # SIGKILLed while the kernel's out-of-memory killer was killing processes

    def describe(self) -> str:
        """One line: what became of this party, its root cause first."""
        if self.ok:
            return "finished"
        if self.stopped_by_launcher:
            return f"stopped by the launcher (it had not stopped by itself {SETTLE_S:g} s after another party failed)"
        if self.returncode < 0:
            killed = f"killed by {_signal_name(-self.returncode)} (not by the launcher)"
            if self.oom_killed:
                killed += ": out of memory (the kernel's out-of-memory killer killed processes on this host meanwhile)"
            return killed
        if self.error:
            return self.error.removeprefix(f"{self.name}: ")
        # no error line of its own (it died before it could print one): its last words that are not a log line
        last = next((line.strip() for line in reversed(self.stderr_tail) if line.strip() and not _LOG_LINE.match(line)),
                    None)
        return f"exit {self.returncode}" + (f": {last}" if last else " with no error message")


_LOG_LINE = re.compile(r"^(\S+: )?(DEBUG|INFO|WARNING) ")  # a party's log line (`--json`: no name prefix)


def oom_kills() -> int | None:
    """How many processes the kernel's out-of-memory killer has killed on this host since boot (Linux;
    None: unknown). Compared before and after a launch, it tells a party killed for memory from one killed
    by a user."""
    try:
        with open("/proc/vmstat") as f:
            for line in f:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def by_cause(results: Sequence[ChildResult]) -> list[ChildResult]:
    """Failed parties, the root cause first: one whose failure names no other party (its own error, or
    killed), then those that stopped because of it, then the ones the launcher stopped."""
    failed = {r.name: r for r in results if not r.ok}

    def hops(r: ChildResult) -> int:
        seen = {r.name}
        while r.cause in failed and r.cause not in seen:
            r = failed[r.cause]
            seen.add(r.name)
        return len(seen)

    return sorted(failed.values(), key=lambda r: (r.stopped_by_launcher, hops(r)))


def failure_summary(results: Sequence[ChildResult]) -> str:
    """The launch's failure: the root cause on the first line, then one line for every other party. Every
    command that starts parties (launch, demo, bench) reports a failure with it."""
    ordered = by_cause(results)
    if not ordered:
        return ""
    first, rest = ordered[0], ordered[1:]
    lines = [f"launch failed: {first.name}: {first.describe()}"]
    lines += [f"  {r.name}: {r.describe()}" for r in [*rest, *(r for r in results if r.ok)]]
    return "\n".join(lines)


async def _pump(stream: asyncio.StreamReader, prefix: str, sink: TextIO | None, tail: list[str],
                errors: list[str]) -> None:
    """Forward a child's log lines; its `error:` lines are kept for the summary instead of repeated."""
    while line := await stream.readline():
        text = line.decode("utf-8", "replace").rstrip("\n")
        tail.append(text)
        del tail[:-20]
        if text.startswith(ERROR_PREFIX):
            errors.append(text.removeprefix(ERROR_PREFIX))
        elif sink is not None:
            print(f"{prefix}{text}", file=sink, flush=True)


async def _run_child(name: str, argv: list[str], width: int, sink: TextIO | None,
                     started: dict[str, asyncio.subprocess.Process]) -> ChildResult:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **CHILD_ENV},
    )
    started[name] = proc
    tail: list[str] = []
    errors: list[str] = []
    assert proc.stdout is not None and proc.stderr is not None
    out_task = asyncio.create_task(proc.stdout.read())
    await _pump(proc.stderr, f"{name:<{width}} | ", sink, tail, errors)
    stdout = await out_task
    code = await proc.wait()
    output = None
    if stdout.strip():
        try:
            output = PartyRecord.from_json(stdout.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):  # json.JSONDecodeError is a ValueError
            output = None
    return ChildResult(name, code, output, tail, proc.pid, errors[-1] if errors else None)


async def _terminate(procs: Sequence[asyncio.subprocess.Process], stopped: set[int]) -> None:
    """SIGTERM every child still running (recording it in `stopped`), SIGKILL after GRACE_S."""
    alive = [p for p in procs if p.returncode is None]
    for p in alive:
        stopped.add(p.pid)
        p.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.gather(*(p.wait() for p in alive)), GRACE_S)
    except TimeoutError:
        for p in alive:
            if p.returncode is None:
                p.kill()
        await asyncio.gather(*(p.wait() for p in alive))


async def launch_async(config: str, names: Sequence[str], run_args: Sequence[str],
                       global_args: Sequence[str] = (), sink: TextIO | None = sys.stderr,
                       prefixes: Mapping[str, Sequence[str]] | None = None) -> list[ChildResult]:
    """Run one `mpc run` process per party; stop the rest as soon as one fails.

    `prefixes` puts a command before a party's own (e.g. `ip netns exec NS` to run it in a namespace).
    """
    width = max(len(n) for n in names)
    started: dict[str, asyncio.subprocess.Process] = {}
    tasks = {
        name: asyncio.create_task(_run_child(
            name, [*(prefixes or {}).get(name, ()), *PARTY_COMMAND, *global_args, "run", config,
                   "--party", name, "--json", *run_args],
            width, sink, started))
        for name in names
    }
    pending = set(tasks.values())
    stopped: set[int] = set()
    kills_before = oom_kills()
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if any(t.exception() is not None or t.result().returncode != 0 for t in done) and pending:
                # the others learn of it themselves and stop naming the cause; stop whoever does not
                _, pending = await asyncio.wait(pending, timeout=SETTLE_S)
                await _terminate(list(started.values()), stopped)
    except BaseException:
        await _terminate(list(started.values()), stopped)
        raise
    finally:
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    results = []
    kills_after = oom_kills()
    oom = kills_before is not None and kills_after is not None and kills_after > kills_before
    for name, task in tasks.items():
        exc = task.exception()
        if exc is not None:
            results.append(ChildResult(name, -1, None, [f"could not start: {exc}"], error=f"could not start: {exc}"))
        else:
            result = task.result()
            result.stopped_by_launcher = result.pid in stopped and result.returncode != 0
            result.oom_killed = oom and result.returncode == -signal.SIGKILL and not result.stopped_by_launcher
            results.append(result)
    return results


def launch(config: str, names: Sequence[str], run_args: Sequence[str], global_args: Sequence[str] = (),
           sink: TextIO | None = sys.stderr, prefixes: Mapping[str, Sequence[str]] | None = None) -> list[ChildResult]:
    """`launch_async` in its own event loop. Ctrl-C or SIGTERM stops the children (repeats are ignored
    until they have stopped), then raises KeyboardInterrupt."""

    async def supervised() -> list[ChildResult]:
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        assert main is not None
        interrupted = False

        def interrupt() -> None:
            nonlocal interrupted
            if not interrupted:  # a second cancel would cut short the stopping of the children
                interrupted = True
                main.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, interrupt)
        return await launch_async(config, names, run_args, global_args, sink, prefixes)

    try:
        return asyncio.run(supervised())
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None
