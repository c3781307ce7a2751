"""Set-ups of parties on this host: free ports, the default localhost topology, ephemeral keys and topology
files for the processes the CLI, the bench and the demo start here."""

from __future__ import annotations

import secrets
import socket
from pathlib import Path

import yaml

from mpc.config import Topology, localhost_topology
from mpc.keys import with_ephemeral_keys


def free_ports(n: int) -> list[int]:
    """n distinct TCP ports on 127.0.0.1 that were free a moment ago (bound and released)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port_run(n: int, tries: int = 200) -> int:
    """The first of n consecutive TCP ports on 127.0.0.1 that were all free a moment ago: a sharded party's
    shard i listens on port + i * (number of parties), so a local topology of several workers takes a run."""
    rng = secrets.SystemRandom()
    for _ in range(tries):
        base = rng.randrange(20_000, 60_000 - n)
        socks = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"found no {n} consecutive free ports on 127.0.0.1")


def default_topology() -> Topology:
    """The built-in localhost topology of two banks and the helper, on free ports."""
    return localhost_topology(2, helper=True, ports=free_ports(3), timeout_s=120)


def secured(topo: Topology, directory: Path) -> Topology:
    """The topology with ephemeral CURVE key files in `directory` if it has no keys of its own and runs
    on this host (launch, bench and demo start every party here)."""
    if any(p.public_key for p in topo.parties) or topo.insecure:
        return topo
    return with_ephemeral_keys(topo, directory / "keys")


def write_topology(topo: Topology, path: Path) -> Path:
    path.write_text(yaml.safe_dump(topo.model_dump(mode="json", exclude_none=True), sort_keys=False))
    return path
