"""Three `mpc serve` processes on loopback, for the tests (tests/test_serve.py) and the load benchmark
(scripts/bench_serve.py): start, kill, restart and stop parties, and wait for readiness (each bank's
/healthz), never guessing it with sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from mpc.config import Topology, localhost_topology
from mpc.localhost import free_ports, secured, write_topology
from parties.launcher import CHILD_ENV


@dataclass
class Service:
    """Three `mpc serve` processes: `urls[bank]`, `start(name)`, `kill(name)`, `stop()`."""

    directory: Path
    topology: Topology
    path: Path
    data: dict[str, str]
    args: list[str]
    http: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    starts: dict[str, int] = field(default_factory=dict)

    @property
    def banks(self) -> list[str]:
        return [p.name for p in self.topology.compute_parties]

    def url(self, bank: str) -> str:
        return f"http://127.0.0.1:{self.http[bank]}"

    def start(self, name: str) -> None:
        n = self.starts.get(name, 0)
        self.starts[name] = n + 1
        argv = [sys.executable, "-m", "parties", "serve", str(self.path), "--party", name, *self.args]
        if name in self.banks:
            argv += ["--http", f"127.0.0.1:{self.http[name]}", "--data", self.data[name]]
        log = open(self.directory / f"{name}.{n}.log", "wb")  # noqa: SIM115 - the child holds it
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, **CHILD_ENV})

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        proc = self.procs[name]
        proc.send_signal(sig)
        return proc.wait(timeout=60)

    def log(self, name: str) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.directory.glob(f"{name}.*.log")))

    def health(self, bank: str) -> tuple[int, dict[str, object]]:
        try:
            with urllib.request.urlopen(f"{self.url(bank)}/healthz", timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")
        except OSError as exc:
            return 0, {"reason": str(exc)}

    def wait_healthy(self, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        for bank in self.banks:
            while True:
                status, body = self.health(bank)
                if status == 200:
                    break
                dead = [n for n, p in self.procs.items() if p.poll() is not None]
                if dead or time.monotonic() > deadline:
                    raise AssertionError(f"{bank} not healthy ({status} {body}); exited: {dead}\n"
                                         + "\n".join(self.log(n)[-3000:] for n in self.topology.names))
                time.sleep(0.05)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def start_service(directory: Path, data: dict[str, str], args: list[str] | None = None,
                  latency_ms: float | None = None) -> Service:
    topo = localhost_topology(2, helper=True, ports=free_ports(3), timeout_s=30)
    if latency_ms is not None:
        topo = topo.with_network(latency_ms)
    path = write_topology(secured(topo, directory), directory / "topology.yaml")
    service = Service(directory, topo, path, data, list(args or []))
    service.http = dict(zip(service.banks, free_ports(2), strict=True))
    for name in topo.names:
        service.start(name)
    return service
