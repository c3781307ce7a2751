"""Shared test helpers: free localhost ports and small topologies on them."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from mpc.config import Topology, localhost_topology


def free_ports(n: int) -> list[int]:
    """n distinct TCP ports that were free a moment ago (bound and released by the OS)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture
def make_topology() -> Callable[..., Topology]:
    """make_topology(n_compute, helper=True, **fields): a localhost topology on free ports."""

    def make(n_compute: int = 2, helper: bool = True, **fields: object) -> Topology:
        fields.setdefault("timeout_s", 20)
        return localhost_topology(n_compute, helper, free_ports(n_compute + int(helper)), **fields)

    return make
