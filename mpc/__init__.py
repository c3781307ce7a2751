"""mpc: secure multi-party computation over additive shares in Z_2^64, on asyncio and ZeroMQ."""

from mpc.config import ConfigError, Topology, load_topology, localhost_topology
from mpc.runtime import Op, Party, PartyFailed, PartyOutcome, run_local, run_local_async, run_party

__version__ = "0.1.0"

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
