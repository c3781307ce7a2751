"""Shared test helpers: free localhost ports and small topologies on them."""

from __future__ import annotations

from collections.abc import Callable

import hypothesis  # noqa: F401  # imported now: its plugin imports it at the session's end otherwise, and
import pytest  # CPython 3.11.7 can then fail to compile it (AST recursion depth mismatch, gh-106905)

from mpc.config import Topology, localhost_topology
from mpc.localhost import free_ports

__all__ = ["free_ports", "make_topology"]


@pytest.fixture
def make_topology() -> Callable[..., Topology]:
    """make_topology(n_compute, helper=True, **fields): a localhost topology on free ports. Its cost model
    declares links of no latency and no bandwidth limit (as the in-memory transport assumes), so that what
    `auto` chooses does not depend on this host's load; pass cost_model={} to measure at the hello."""

    def make(n_compute: int = 2, helper: bool = True, **fields: object) -> Topology:
        fields.setdefault("timeout_s", 20)
        fields.setdefault("cost_model", {"latency_ms": 0})
        return localhost_topology(n_compute, helper, free_ports(n_compute + int(helper)), **fields)

    return make
