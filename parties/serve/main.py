"""One serving process: the HTTP server (banks), the session loop, signals and structured logs.

SIGTERM or SIGINT drains (a second one stops at once); SIGHUP reloads a bank's data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

from mpc.config import Topology
from mpc.keys import CurveKeys
from mpc.transport import PeerError
from parties.serve.service import Options, Service
from parties.serve.source import Source

log = logging.getLogger("mpc.serve")


@dataclass
class Endpoint:
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def parse_endpoint(value: str) -> Endpoint:
    """HOST:PORT, or PORT alone (loopback: the API binds 127.0.0.1 unless told otherwise)."""
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", value
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT or PORT, got {value!r}")
    return Endpoint(host, int(port))


class JsonLogs(logging.Formatter):
    """One JSON object per line: time, level, party, logger, message (and fields given as `extra`)."""

    def __init__(self, party: str):
        super().__init__()
        self.party = party

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname.lower(), "party": self.party,
               "logger": record.name, "msg": record.getMessage()}
        if record.exc_info and record.levelno >= logging.ERROR:
            out["exc"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(out)


def setup_logging(party: str, debug: bool, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogs(party) if fmt == "json" else logging.Formatter(f"{party}: %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    logging.getLogger("aiohttp.access").setLevel(logging.INFO)


async def serve_process(topology: Topology, name: str, opts: Options, keys: CurveKeys | None,
                        source: Source | None, endpoint: Endpoint | None, token: str | None = None,
                        access_log: bool = False, reload_s: float = 0.0) -> None:
    """Run one party's service until SIGTERM/SIGINT (drained) or a second signal (at once)."""
    service = Service(topology, name, opts, keys, source, dealer_workers=topology.dealer_worker_count())
    runner = None
    if service.is_bank:
        await service.reload()  # bad data: the process stops before it serves anything, naming the file
        from aiohttp import web

        from parties.serve.http import make_app

        assert endpoint is not None
        runner = web.AppRunner(make_app(service, token), access_log=logging.getLogger("aiohttp.access")
                               if access_log else None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, endpoint.host, endpoint.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise OSError(f"{name}: cannot serve HTTP on {endpoint.host}:{endpoint.port}: {exc}") from None
        log.info("%s: serving %s/v1/score", name, endpoint.url)
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_quiet_peer_errors)
    stop = asyncio.Event()
    signals = 0

    def on_stop() -> None:
        nonlocal signals
        signals += 1
        stop.set()
        if signals > 1:
            sessions.cancel()

    def on_reload() -> None:
        if service.is_bank:
            task = loop.create_task(service.reload())
            task.add_done_callback(_log_reload_failure)

    sessions = loop.create_task(service.run_sessions(), name=f"{name}-sessions")
    reloads = loop.create_task(_reload_every(service, reload_s)) if service.is_bank and reload_s > 0 else None
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop)
    loop.add_signal_handler(signal.SIGHUP, on_reload)
    try:
        stopped = loop.create_task(stop.wait())
        await asyncio.wait([sessions, stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not sessions.done():
            t0 = time.perf_counter()
            up = service.up and service.is_bank
            await service.drain()
            log.info("%s: draining (%s)", name, "answering the requests in flight" if up else "no session up")
            if not up:
                sessions.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(sessions, opts.drain_timeout_s)
            log.info("%s: stopped after %.2f s of draining", name, time.perf_counter() - t0)
        elif sessions.exception() is not None:
            raise sessions.exception()  # type: ignore[misc]
    finally:
        if reloads is not None:
            reloads.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        if not sessions.done():
            sessions.cancel()
            with contextlib.suppress(BaseException):
                await sessions
        service.refuse_all(None, f"{name} stopped")
        if runner is not None:
            await runner.cleanup()


def _quiet_peer_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A peer's failure reaches waits nobody awaits any more (a session's last markers): the session's end
    is logged once, by the session loop; anything else goes to asyncio's default handler."""
    if isinstance(context.get("exception"), PeerError):
        log.debug("%s: %r", context.get("message"), context.get("exception"))
    else:
        loop.default_exception_handler(context)


async def _reload_every(service: Service, seconds: float) -> None:
    """Read new transactions every `seconds` (a failed read keeps the data loaded before)."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await service.reload()
        except Exception as exc:  # noqa: BLE001 - the service goes on with the data it has
            log.warning("%s: reload failed, keeping the data loaded before: %s", service.name, exc)


def _log_reload_failure(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("reload failed, keeping the data loaded before: %s", task.exception())
