"""Start every party of a topology as its own OS process on this host and supervise them.

Each child is `python -m mpc run CONFIG --party NAME --json`; its log lines are forwarded prefixed with
its name, its JSON result is collected from stdout. If any child fails, the others are stopped (SIGTERM,
which makes a party abort cleanly, then SIGKILL after a grace period) and the launch fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

# One BLAS/OpenMP thread per party process: several parties share this machine's cores.
CHILD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
             "PYTHONUNBUFFERED": "1"}
GRACE_S = 5.0


@dataclass
class ChildResult:
    name: str
    returncode: int
    output: dict[str, object] | None
    stderr_tail: list[str] = field(default_factory=list)


async def _pump(stream: asyncio.StreamReader, prefix: str, sink: TextIO | None, tail: list[str]) -> None:
    while line := await stream.readline():
        text = line.decode("utf-8", "replace").rstrip("\n")
        tail.append(text)
        del tail[:-20]
        if sink is not None:
            print(f"{prefix}{text}", file=sink, flush=True)


async def _run_child(name: str, argv: list[str], width: int, sink: TextIO | None,
                     started: dict[str, asyncio.subprocess.Process]) -> ChildResult:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **CHILD_ENV},
    )
    started[name] = proc
    tail: list[str] = []
    assert proc.stdout is not None and proc.stderr is not None
    out_task = asyncio.create_task(proc.stdout.read())
    await _pump(proc.stderr, f"{name:<{width}} | ", sink, tail)
    stdout = await out_task
    code = await proc.wait()
    output = None
    if stdout.strip():
        try:
            output = json.loads(stdout.decode().strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            output = None
    return ChildResult(name, code, output, tail)


async def _terminate(procs: Sequence[asyncio.subprocess.Process]) -> None:
    alive = [p for p in procs if p.returncode is None]
    for p in alive:
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
            name, [*(prefixes or {}).get(name, ()), sys.executable, "-m", "mpc", *global_args, "run", config,
                   "--party", name, "--json", *run_args],
            width, sink, started))
        for name in names
    }
    pending = set(tasks.values())
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if any(t.exception() is not None or t.result().returncode != 0 for t in done) and pending:
                await _terminate(list(started.values()))
    except BaseException:
        await _terminate(list(started.values()))
        raise
    finally:
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    results = []
    for name, task in tasks.items():
        exc = task.exception()
        if exc is not None:
            results.append(ChildResult(name, -1, None, [f"could not start: {exc}"]))
        else:
            results.append(task.result())
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
