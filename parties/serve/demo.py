"""`mpc demo serve`: both banks and the helper as local `mpc serve` processes, until Ctrl-C or SIGTERM.

Synthetic data (or the user's CSV directory), a localhost topology on free ports with ephemeral CURVE
keys, and each bank's HTTP API on loopback; it prints each bank's URL and a curl line once both answer
/healthz, forwards the parties' logs, and on Ctrl-C or SIGTERM drains them (SIGTERM to each).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from mpc.config import localhost_topology
from mpc.localhost import free_ports, secured, write_topology
from parties.fraud import data
from parties.launcher import CHILD_ENV, PARTY_COMMAND

READY_TIMEOUT_S = 120.0


class DemoServeError(RuntimeError):
    pass


def wait_healthy(url: str, procs: list[subprocess.Popen[bytes]], timeout_s: float = READY_TIMEOUT_S) -> None:
    """Poll `url`/healthz until 200; fail if a party process exits first or the time runs out."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise DemoServeError(f"a party exited (code {p.returncode}) before the service was up")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last = json.loads(exc.read() or b"{}").get("reason", str(exc))
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise DemoServeError(f"{url} not healthy after {timeout_s:g} s: {last}")


def run_demo(data_dir: str | None, accounts: int, seed: int, latency_ms: float | None, port: int, debug: bool,
             serve_args: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="mpc-serve-") as tmp:
        if data_dir is None:
            dataset = data.generate(accounts, seed)
            directory = data.write(dataset, Path(tmp) / "data")
            example = str(dataset.accounts[0])
        else:
            directory = Path(data_dir)
            example = str(data.read_accounts(directory / "accounts.csv")[0])
        topo = localhost_topology(2, helper=True, ports=free_ports(3), timeout_s=30)
        if latency_ms is not None:
            topo = topo.with_network(latency_ms)
        path = write_topology(secured(topo, Path(tmp)), Path(tmp) / "topology.yaml")
        http = free_ports(2) if port == 0 else [port, port + 1]
        banks = [p.name for p in topo.compute_parties]
        procs: list[subprocess.Popen[bytes]] = []
        env = {**os.environ, **CHILD_ENV}
        for name in topo.names:
            argv = [*PARTY_COMMAND, *(["--debug"] if debug else []), "serve", str(path), "--party", name, *serve_args]
            if name in banks:
                argv += ["--http", f"127.0.0.1:{http[banks.index(name)]}", "--data", str(directory)]
            procs.append(subprocess.Popen(argv, env=env, stderr=subprocess.PIPE))
        for name, p in zip(topo.names, procs, strict=True):
            threading.Thread(target=_forward, args=(name, p), daemon=True).start()
        stopping = threading.Event()

        def stop(signum: int, frame: object) -> None:
            stopping.set()

        old = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            urls = [f"http://127.0.0.1:{p}" for p in http]
            for url in urls:
                wait_healthy(url, procs)
            for name, url in zip(banks, urls, strict=True):
                print(f"{name}: {url}  (POST /v1/score, GET /healthz, GET /metrics, GET /openapi.json)", flush=True)
            print(f"try: curl -s -X POST {urls[0]}/v1/score -H 'Content-Type: application/json' "
                  f"-d '{{\"account_id\": \"{example}\"}}'", flush=True)
            print("Ctrl-C stops the service (each party drains first).", flush=True)
            while not stopping.is_set() and all(p.poll() is None for p in procs):
                stopping.wait(0.2)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            for sig, handler in old.items():
                signal.signal(sig, handler)
        failed = [(n, p.returncode) for n, p in zip(topo.names, procs, strict=True) if p.returncode not in (0, -15)]
        if failed and not stopping.is_set():
            raise DemoServeError("a party stopped: " + ", ".join(f"{n} (exit {c})" for n, c in failed))


def _forward(name: str, proc: subprocess.Popen[bytes]) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        sys.stderr.write(f"{name:<7}| {line.decode('utf-8', 'replace')}")
