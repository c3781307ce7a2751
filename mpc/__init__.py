"""mpc: secure multi-party computation over additive shares in Z_2^64, on asyncio and ZeroMQ.

The names below are imported on first use (PEP 562): a process that needs one module, such as a dealer's
worker process (mpc/workers.py), does not pay for importing them all at start-up."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mpc.config import ConfigError, Topology, load_topology, localhost_topology
    from mpc.runtime import Op, Party, PartyFailed, PartyOutcome, run_local, run_local_async, run_party

from mpc.version import __version__ as __version__

_HOME = {
    "ConfigError": "mpc.config",
    "Topology": "mpc.config",
    "load_topology": "mpc.config",
    "localhost_topology": "mpc.config",
    "Op": "mpc.runtime",
    "Party": "mpc.runtime",
    "PartyFailed": "mpc.runtime",
    "PartyOutcome": "mpc.runtime",
    "run_local": "mpc.runtime",
    "run_local_async": "mpc.runtime",
    "run_party": "mpc.runtime",
}

__all__ = [
    "ConfigError",
    "Op",
    "Party",
    "PartyFailed",
    "PartyOutcome",
    "Topology",
    "load_topology",
    "localhost_topology",
    "run_local",
    "run_local_async",
    "run_party",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'mpc' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)
