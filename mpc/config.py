"""Topology: who the parties are and where they listen (deployment), what they must agree on (session),
the network delay emulated between them on this host (network_emulation), and the link figures the
comparison cost model may be told instead of measuring them (cost_model). docs/topology.md describes it.

A topology is a YAML file validated with pydantic. Every problem is reported with the file and the
field it concerns, all at once, so a user fixes a config in one pass instead of one error per run.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    field_validator,
)

from mpc.settings import MAX_FRAC_BITS, MIN_FRAC_BITS, Comparison, Truncation, check_parties

Role = Literal["compute", "helper"]
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_\-]{0,31}$"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


DEFAULT_WINDOW_MB = 256.0  # dealer_window_mb's default (docs/memory.md: measured)
DEFAULT_MAX_WORKERS = 4  # the default dealer_workers' ceiling: more would get no share of a chunk of keys
DEFAULT_MAX_INPUT_ELEMENTS = 50_000_000  # 400 MB of shares per party; session.max_input_elements raises it

class ConfigError(Exception):
    """A topology that cannot be used; `problems` lists every issue as 'file: field: message'."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RaySpec(_Strict):
    """Where a sharded party runs its shard workers as Ray actors (mpc/shards.py, parties/ray_shards.py):
    `address` of the party's own Ray cluster (`auto`: the cluster this host belongs to; `local`: a private
    single-host instance started and stopped with the party; else HOST:PORT or ray://HOST:PORT)."""

    address: str = Field(default="auto", min_length=1, max_length=300)
    # The party's Ray nodes its shards run on, by the address the other parties dial: shard i on
    # hosts[i % len(hosts)] (its actor pinned to that node). Empty: every shard on the party's `host`.
    hosts: tuple[str, ...] = ()

    @field_validator("hosts")
    @classmethod
    def _hosts_dialable(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for host in v:
            problem = _host_problem(host, listen=False)
            if problem:
                raise ValueError(problem)
        return v


class PartySpec(_Strict):
    """One party: a compute party holds shares; the helper holds no input and deals randomness."""

    name: str = Field(pattern=NAME_PATTERN)
    role: Role
    host: str = "127.0.0.1"
    port: StrictInt = Field(ge=1, le=65535)
    public_key: str | None = None
    secret_key: str | None = None
    bind: str | None = None  # HOST:PORT to listen on, when it differs from host:port (NAT, a proxy in front)
    # Shard workers on this party's own Ray cluster (`ray: auto` or `ray: {address: ...}`); none: local processes
    ray: RaySpec | None = None

    @field_validator("ray", mode="before")
    @classmethod
    def _ray_address(cls, v: object) -> object:
        return {"address": v} if isinstance(v, str) else v

    @field_validator("bind")
    @classmethod
    def _bind_host_port(cls, v: str | None) -> str | None:
        if v is None:
            return v
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError("bind must be HOST:PORT with a port in 1..65535, e.g. 0.0.0.0:5601")
        problem = _host_problem(host, listen=True)
        if problem:
            raise ValueError(f"bind: {problem}")
        return v

    @property
    def listen_address(self) -> tuple[str, int]:
        """Where this party's socket listens: `bind` if given, else its host and port."""
        if self.bind is None:
            return self.host, self.port
        host, _, port = self.bind.rpartition(":")
        return host, int(port)

    @field_validator("host")
    @classmethod
    def _host_dialable(cls, v: str) -> str:
        problem = _host_problem(v, listen=False)
        if problem:
            raise ValueError(problem)
        return v


def _host_problem(host: str, listen: bool) -> str | None:
    """Why `host` cannot be used as an address (None if it can). Only IPv4 and DNS names work with the
    transport's `tcp://HOST:PORT` endpoints; a wildcard is an address to listen on, never to dial."""
    if ":" in host:
        try:
            ipaddress.IPv6Address(host.strip("[]"))
            return f"{host!r} is an IPv6 address; only IPv4 addresses and hostnames are supported"
        except ValueError:
            pass
        name, _, port = host.rpartition(":")
        if port.isdigit() and name:
            where = "bind: HOST:PORT holds one port" if listen else f"host: {name} and port: {port}"
            return f"{host!r} includes a port; write {where}"
        return f"{host!r} is not an IPv4 address or a hostname"
    if host in ("*", "0.0.0.0"):
        return None if listen else (f"{host!r} is an address to listen on, not one the other parties can "
                                    "connect to; give the host's address, and bind: 0.0.0.0:PORT to listen on all")
    try:
        ipaddress.IPv4Address(host)
        return None
    except ValueError:
        pass
    if _HOSTNAME.match(host) and not host.replace(".", "").isdigit():
        return None
    return f"{host!r} is not an IPv4 address or a hostname (letters, digits, '-' and '.')"


class LinkSpec(_Strict):
    """Figures of one link between two parties, both directions: emulated (network_emulation) or declared
    to the cost model (cost_model). Unset figures fall back to the section's defaults."""

    between: tuple[str, str]
    latency_ms: StrictFloat | None = Field(default=None, ge=0, le=60_000, allow_inf_nan=False)
    bandwidth_mbps: StrictFloat | None = Field(default=None, gt=0, le=1_000_000, allow_inf_nan=False)


class DeploymentSpec(_Strict):
    """Where the parties are (names, roles, hosts, ports, keys) and how this host runs its own party.
    Nothing here is compared between parties but the list of parties itself (names, roles, order)."""

    parties: tuple[PartySpec, ...]
    insecure: StrictBool = False
    # Worker processes the helper generates DCF keys in (mpc/workers.py); 1: in the party's own process.
    # Unset: the CPUs the helper's process may use. A host-local choice, not agreed between the parties.
    dealer_workers: StrictInt | None = Field(default=None, ge=1, le=1024)
    # Shard workers per party (the same N for every party, agreed at session start): shard i of every party
    # forms its own session, listening on port + i * shard_port_step (default: the number of parties).
    workers: StrictInt = Field(default=1, ge=1, le=256)
    shard_port_step: StrictInt | None = Field(default=None, ge=1, le=10_000)


class SessionSpec(_Strict):
    """What every party must agree on: compared at the hello, any difference stops every party at once."""

    # Strict numbers: YAML's `true` must not become port 1, nor a quoted "30" a timeout; no NaN nor infinity.
    frac_bits: StrictInt = Field(default=16, ge=MIN_FRAC_BITS, le=MAX_FRAC_BITS)
    truncation: Truncation = Truncation.DEALER
    comparison: Comparison = Comparison.AUTO
    timeout_s: StrictFloat = Field(default=30.0, gt=0, le=3600, allow_inf_nan=False)
    # ZeroMQ heartbeats: a frozen peer is named after heartbeat_timeout_s of silence. Generous by default: a
    # saturated host (or a large frame in flight, which delays the answer to a ping) must not look dead.
    heartbeat_s: StrictFloat = Field(default=1.0, gt=0, le=600, allow_inf_nan=False)
    heartbeat_timeout_s: StrictFloat = Field(default=15.0, gt=0, le=3600, allow_inf_nan=False)
    # At least one piece (frames.MESSAGE_BYTES, 1 MiB): ZeroMQ drops a message over its own limit silently.
    max_message_mb: StrictFloat = Field(default=1024.0, ge=1, le=16_384, allow_inf_nan=False)
    # Received but not yet used, per peer (early arrivals, messages held by the emulated network); at least
    # max_message_mb. Over it, the run stops naming the peer instead of exhausting memory.
    max_buffered_mb: StrictFloat = Field(default=4096.0, ge=1, le=1_048_576, allow_inf_nan=False)
    # Elements of one input (`ctx.input`), checked on every party before anything is dealt for it: a
    # comparison costs the helper ~1.5 KB of keys per element, so a wrong shape must not start dealing.
    max_input_elements: StrictInt = Field(default=DEFAULT_MAX_INPUT_ELEMENTS, ge=1, le=2**40)
    # Dealer material dealt ahead of its consumption, at most (mpc/window.py, docs/memory.md): the helper
    # waits for the compute parties to consume before dealing more; every party sizes its tickets by it.
    # Unset: DEFAULT_WINDOW_MB, or half of max_buffered_mb where that is smaller.
    dealer_window_mb: StrictFloat | None = Field(default=None, gt=0, le=1_048_576, allow_inf_nan=False)


class NetworkEmulationSpec(_Strict):
    """Emulated one-way latency and bandwidth per link, for tests and benchmarks on this host only (the
    receiver holds frames by this host's clock); 0 / null mean none. Never read by the cost model."""

    latency_ms: StrictFloat = Field(default=0.0, ge=0, le=60_000, allow_inf_nan=False)
    bandwidth_mbps: StrictFloat | None = Field(default=None, gt=0, le=1_000_000, allow_inf_nan=False)
    links: tuple[LinkSpec, ...] = ()


class CostModelSpec(_Strict):
    """Link figures `comparison: auto` chooses by, declared: a link whose latency_ms is given here (per link
    or for all) is taken as declared (bandwidth null: unlimited); the others are measured at the hello."""

    latency_ms: StrictFloat | None = Field(default=None, ge=0, le=60_000, allow_inf_nan=False)
    bandwidth_mbps: StrictFloat | None = Field(default=None, gt=0, le=1_000_000, allow_inf_nan=False)
    links: tuple[LinkSpec, ...] = ()


SECTIONS = ("deployment", "session", "network_emulation", "cost_model")
# Where each top-level key of the old (flat) form lives now: for the old-form error and the Python API's
# flat keywords (localhost_topology(timeout_s=5), topo.model_copy(update={"frac_bits": 12})).
FLAT_FIELDS: dict[str, str] = {
    **{f: "deployment" for f in DeploymentSpec.model_fields},
    **{f: "session" for f in SessionSpec.model_fields},
}
OLD_NETWORK = "network"  # the old form's emulated network: network_emulation now, the same fields


class Topology(_Strict):
    """The whole run in four sections: deployment, session, network_emulation and cost_model."""

    name: str = "topology"
    deployment: DeploymentSpec
    session: SessionSpec = SessionSpec()
    network_emulation: NetworkEmulationSpec = NetworkEmulationSpec()
    cost_model: CostModelSpec = CostModelSpec()

    # -- shortcuts to the sections' fields (read-only) ----------------------------------------------
    @property
    def parties(self) -> tuple[PartySpec, ...]:
        return self.deployment.parties

    @property
    def insecure(self) -> bool:
        return self.deployment.insecure

    @property
    def dealer_workers(self) -> int | None:
        return self.deployment.dealer_workers

    @property
    def frac_bits(self) -> int:
        return self.session.frac_bits

    @property
    def truncation(self) -> Truncation:
        return self.session.truncation

    @property
    def comparison(self) -> Comparison:
        return self.session.comparison

    @property
    def timeout_s(self) -> float:
        return self.session.timeout_s

    @property
    def heartbeat_s(self) -> float:
        return self.session.heartbeat_s

    @property
    def heartbeat_timeout_s(self) -> float:
        return self.session.heartbeat_timeout_s

    @property
    def max_message_mb(self) -> float:
        return self.session.max_message_mb

    @property
    def max_buffered_mb(self) -> float:
        return self.session.max_buffered_mb

    @property
    def max_input_elements(self) -> int:
        return self.session.max_input_elements

    @property
    def dealer_window_mb(self) -> float:
        s = self.session
        return s.dealer_window_mb if s.dealer_window_mb is not None else min(DEFAULT_WINDOW_MB, s.max_buffered_mb / 2)

    @property
    def workers(self) -> int:
        return self.deployment.workers

    @property
    def shard_port_step(self) -> int | None:
        return self.deployment.shard_port_step

    # -- lookups -------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parties]

    @property
    def compute_parties(self) -> list[PartySpec]:
        return [p for p in self.parties if p.role == "compute"]

    @property
    def helper(self) -> PartySpec | None:
        return next((p for p in self.parties if p.role == "helper"), None)

    def party(self, name: str) -> PartySpec:
        for p in self.parties:
            if p.name == name:
                return p
        raise KeyError(f"no party named {name!r} in topology {self.name!r} (parties: {', '.join(self.names)})")

    def index(self, name: str) -> int:
        return self.names.index(self.party(name).name)

    def shard_port(self, name: str, shard: int) -> int:
        """The port party `name`'s shard `shard` listens on (shard 0: the party's own)."""
        return self.party(name).listen_address[1] + shard * (self.shard_port_step or len(self.parties))

    def dealer_worker_count(self) -> int:
        """`dealer_workers`, or if unset the CPUs this process may use (its affinity, not the machine's), at
        most DEFAULT_MAX_WORKERS: a dealt chunk of 32,768 DCF keys splits into at most 4 blocks of 8,192."""
        if self.dealer_workers is not None:
            return self.dealer_workers
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return min(cpus, DEFAULT_MAX_WORKERS)

    def emulated_link(self, a: str, b: str) -> LinkParams:
        """The emulated network between two parties: the per-link override, else the section's default."""
        return _figures(self.network_emulation, a, b)

    link = emulated_link  # the name older code uses

    def cost_links(self) -> list[tuple[str, str]]:
        """The links `auto`'s cost model reads (protocols/primitives/comparison.py, estimate): the first two
        compute parties' (online rounds and bytes) and the helper's to the last compute party (the dealer's
        bytes). None unless there are exactly two compute parties: with more, `auto` is always `bits`."""
        compute, helper = [p.name for p in self.compute_parties], self.helper
        if len(compute) != 2:
            return []
        return [(compute[0], compute[1])] + ([(helper.name, compute[1])] if helper is not None else [])

    def declared_link(self, a: str, b: str) -> LinkParams | None:
        """The cost model's declared figures for a link, or None if they are to be measured at the hello."""
        declared = any(set(link.between) == {a, b} and link.latency_ms is not None for link in self.cost_model.links)
        if not declared and self.cost_model.latency_ms is None:
            return None
        return _figures(self.cost_model, a, b)

    def agreed_settings(self) -> dict[str, str]:
        """What every party must share for the run to be sound (compared at the hello): the same parties
        in the same order (an index names a party on the wire), every session setting, and the cost
        model's declared figures (every party must choose the same comparison method). Hosts, ports, key
        paths, dealer_workers and the emulated network may differ from host to host."""
        settings = {"parties": ", ".join(f"{p.name} ({p.role})" for p in self.parties)}
        for field, value in self.session.model_dump(mode="json").items():
            settings[f"session.{field}"] = f"{value:g}" if isinstance(value, float) else str(value)
        declared = self.cost_model.model_dump(mode="json", exclude_defaults=True)
        if declared:
            settings["cost_model"] = json.dumps(declared, sort_keys=True, separators=(",", ":"))
        return settings

    # -- derived topologies --------------------------------------------------------------------
    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Topology:
        """A copy with `update` applied; flat keys of the old form (frac_bits, timeout_s, parties, network,
        ...) go to their section, so `topo.model_copy(update={"frac_bits": 12})` keeps working."""
        return super().model_copy(update=_route_update(self, dict(update or {})), deep=deep)

    def with_network(self, latency_ms: float | None = None, bandwidth_mbps: float | None = None) -> Topology:
        """Override the emulated network on every link (the CLI's --latency-ms / --bandwidth-mbps)."""
        if latency_ms is None and bandwidth_mbps is None:
            return self
        net = self.network_emulation
        links = tuple(
            link.model_copy(
                update={
                    "latency_ms": None if latency_ms is not None else link.latency_ms,
                    "bandwidth_mbps": None if bandwidth_mbps is not None else link.bandwidth_mbps,
                }
            )
            for link in net.links
        )
        try:
            new_net = NetworkEmulationSpec(
                latency_ms=net.latency_ms if latency_ms is None else latency_ms,
                bandwidth_mbps=net.bandwidth_mbps if bandwidth_mbps is None else bandwidth_mbps,
                links=links,
            )
        except ValidationError as exc:  # an override out of range: the same check as in a file
            raise ConfigError("command line", [f"network_emulation.{_field(e['loc'], {})}: {e['msg']}"
                                               for e in exc.errors()]) from None
        topo = self.model_copy(update={"network_emulation": new_net})
        problems = _emulation_problems(topo)
        if problems:
            raise ConfigError("command line", [f"{p} (--latency-ms/--bandwidth-mbps)" for p in problems])
        return topo


@dataclass(frozen=True)
class LinkParams:
    latency_ms: float
    bandwidth_mbps: float | None


def _figures(section: NetworkEmulationSpec | CostModelSpec, a: str, b: str) -> LinkParams:
    """A link's figures in a section: its per-link override where given, else the section's default."""
    latency, bandwidth = section.latency_ms, section.bandwidth_mbps
    for link in section.links:
        if set(link.between) == {a, b}:
            latency = link.latency_ms if link.latency_ms is not None else latency
            bandwidth = link.bandwidth_mbps if link.bandwidth_mbps is not None else bandwidth
    return LinkParams(latency_ms=latency or 0.0, bandwidth_mbps=bandwidth)


def _route_update(topo: Topology, update: dict[str, Any]) -> dict[str, Any]:
    """Flat keys (old form) of a model_copy update put into their sections' copies."""
    routed: dict[str, Any] = {}
    by_section: dict[str, dict[str, Any]] = {}
    for key, value in update.items():
        if key == OLD_NETWORK:
            key = "network_emulation"
        if key in FLAT_FIELDS:
            by_section.setdefault(FLAT_FIELDS[key], {})[key] = value
        elif key in Topology.model_fields:
            routed[key] = value
        else:
            raise ValueError(f"a topology has no field {key!r} (sections: {', '.join(SECTIONS)})")
    for section, fields in by_section.items():
        current = routed.get(section, getattr(topo, section))
        routed[section] = current.model_copy(update=fields)
    if isinstance(routed.get("network_emulation"), Mapping):
        routed["network_emulation"] = NetworkEmulationSpec.model_validate(routed["network_emulation"])
    return routed


def _field(loc: Iterable[object], data: object) -> str:
    """Turn a pydantic location such as ('parties', 1, 'port') into 'parties[1] (bank_b).port'."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            if isinstance(node, list) and 0 <= part < len(node):
                node = node[part]
                if isinstance(node, dict) and isinstance(node.get("name"), str):
                    out += f" ({node['name']})"
            else:
                node = None
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out or "(top level)"


P = "deployment.parties"  # where the parties are, in messages


def _cross_checks(topo: Topology) -> list[str]:
    """Problems that involve several fields: names, ports, roles, links and limits."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    endpoints: dict[tuple[str, int], str] = {}
    for i, p in enumerate(topo.parties):
        if p.name in seen:
            problems.append(f"{P}[{i}].name: duplicate party name {p.name!r} (also {P}[{seen[p.name]}])")
        seen.setdefault(p.name, i)
        key = (_canonical_host(p.host), p.port)
        if key in endpoints:
            problems.append(
                f"{P}[{i}] ({p.name}).port: {p.host}:{p.port} is already used by party {endpoints[key]!r}"
            )
        endpoints.setdefault(key, p.name)
        if (p.public_key is None) != (p.secret_key is None) and p.public_key is None:
            problems.append(f"{P}[{i}] ({p.name}).public_key: a secret_key is given without its public_key")
    problems += _listen_clashes(topo)
    problems += _shard_port_problems(topo)
    problems += latency_problems(topo)
    n_compute = len(topo.compute_parties)
    if n_compute == 0:
        problems.append(f"{P}: no party has role 'compute'; at least one is needed (two for any secrecy)")
    helpers = [p.name for p in topo.parties if p.role == "helper"]
    if len(helpers) > 1:
        problems.append(f"{P}: at most one helper is allowed, found {len(helpers)}: {', '.join(helpers)}")
    for section in ("network_emulation", "cost_model"):
        for i, link in enumerate(getattr(topo, section).links):
            for end in link.between:
                if end not in seen:
                    problems.append(f"{section}.links[{i}].between: unknown party {end!r} "
                                    f"(parties: {', '.join(seen)})")
            if link.between[0] == link.between[1]:
                problems.append(f"{section}.links[{i}].between: a link needs two different parties")
    problems += _emulation_problems(topo)
    problems += _cost_model_problems(topo)
    keyed = [p.public_key is not None for p in topo.parties]
    if any(keyed) and not all(keyed):
        missing = ", ".join(p.name for p in topo.parties if p.public_key is None)
        problems.append(f"{P}: public_key is given for some parties but not for {missing}; give every party "
                        "one (mpc keys generate)")
    remote = [p.name for p in topo.parties if not _is_loopback(p.host)]
    if remote and not any(keyed) and not topo.insecure:
        problems.append(f"{P}: {', '.join(remote)} on non-local hosts but no keys: give every party a "
                        "public_key (mpc keys generate) so links are encrypted and authenticated, or set "
                        "`deployment.insecure: true` to run over plain TCP")
    for name, why in (("comparison", check_parties(n_compute, comparison=topo.comparison)),
                      ("truncation", check_parties(n_compute, truncation=topo.truncation))):
        if why is not None and n_compute > 1:  # one compute party: a warning already says nothing secure runs
            problems.append(f"session.{name}: {why.removeprefix(name + ' ')}")
    session = topo.session
    if session.max_buffered_mb < session.max_message_mb:
        problems.append(f"session.max_buffered_mb: {session.max_buffered_mb:g} MB is below max_message_mb "
                        f"({session.max_message_mb:g} MB): one message alone would exceed it; give at least "
                        "max_message_mb")
    if session.dealer_window_mb is not None and session.dealer_window_mb > session.max_buffered_mb:
        problems.append(f"session.dealer_window_mb: {session.dealer_window_mb:g} MiB is more than max_buffered_mb "
                        f"({session.max_buffered_mb:g} MiB): a full window of material waiting in a party's inbox "
                        "would stop the run")
    return problems


def _emulation_problems(topo: Topology) -> list[str]:
    """Emulated delay between parties not both on this host: the receiver holds frames by its own clock
    until the sender's stamp (one CLOCK_MONOTONIC), which only parties of one host share; a real link
    has its own latency anyway, and the cost model is told of it under cost_model, not here."""
    net = topo.network_emulation
    remote = {p.name: p.host for p in topo.parties if not _is_loopback(p.host)}
    if not remote:
        return []
    far = ", ".join(f"{name} ({host})" for name, host in remote.items())
    why = (f"emulated delay needs every party on this host (loopback), but {far} is not; emulate only between "
           "test parties on 127.0.0.1, and declare a real link's figures under cost_model")
    problems = [f"network_emulation.{field}: {why}" for field in ("latency_ms", "bandwidth_mbps")
                if getattr(net, field)]
    for i, link in enumerate(net.links):
        if set(link.between) & set(remote) and (link.latency_ms or link.bandwidth_mbps):
            problems.append(f"network_emulation.links[{i}]: {why}")
    return problems


def _cost_model_problems(topo: Topology) -> list[str]:
    """A declared bandwidth without its latency: a link's figures are declared together or measured."""
    model = topo.cost_model
    problems = []
    if model.bandwidth_mbps is not None and model.latency_ms is None:
        problems.append("cost_model.bandwidth_mbps: declared without latency_ms; declare both (a link's figures "
                        "are declared together, or measured at the hello)")
    for i, link in enumerate(model.links):
        if link.bandwidth_mbps is not None and link.latency_ms is None and model.latency_ms is None:
            problems.append(f"cost_model.links[{i}].bandwidth_mbps: declared without latency_ms; declare both")
    return problems


def _listen_clashes(topo: Topology) -> list[str]:
    """Two parties that would listen on the same address of the same machine: the second cannot start."""
    problems = []
    for j, b in enumerate(topo.parties):
        for a in topo.parties[:j]:
            (host_a, port_a), (host_b, port_b) = a.listen_address, b.listen_address
            if port_a != port_b or (a.bind is None and b.bind is None):
                continue  # two plain host:port endpoints are compared above
            same_machine = _canonical_host(a.host) == _canonical_host(b.host) or (
                _is_loopback(a.host) and _is_loopback(b.host))
            wild = {"*", "0.0.0.0"}
            same_address = _canonical_host(host_a) == _canonical_host(host_b)
            machine_local = host_a in wild or _is_loopback(host_a)  # the same text on two hosts differs
            if (same_address and (same_machine or not machine_local)) or (
                    same_machine and (host_a in wild or host_b in wild)):
                field = "bind" if b.bind is not None else "port"
                problems.append(f"{P}[{j}] ({b.name}).{field}: listens on {host_b}:{port_b}, where {a.name} "
                                f"listens too ({host_a}:{port_a}); two parties on one machine need different ports")
    return problems


def _shard_port_problems(topo: Topology) -> list[str]:
    """With several workers, every shard's port must exist and differ from every other shard's on its host."""
    if topo.workers == 1:
        return []
    problems, used = [], {}
    for i, p in enumerate(topo.parties):
        for shard in range(1, topo.workers):
            port = topo.shard_port(p.name, shard)
            key = (_canonical_host(p.host), port)
            if port > 65535:
                problems.append(f"parties[{i}] ({p.name}).port: shard {shard} of {topo.workers} would listen on port "
                                f"{port}, beyond 65535; lower the port, workers or shard_port_step")
                break
            if key in used or any(key == (_canonical_host(q.host), q.listen_address[1]) for q in topo.parties):
                problems.append(f"workers: shard {shard} of {p.name} would listen on {p.host}:{port}, which another "
                                "party or shard uses; set shard_port_step (ports of shard i: port + i * step)")
                break
            used[key] = p.name
    return problems


def latency_problems(topo: Topology, timeout_s: float | None = None) -> list[str]:
    """An emulated one-way latency at or above the timeout: every wait on that peer would time out."""
    timeout = topo.timeout_s if timeout_s is None else timeout_s
    net = topo.network_emulation
    fields: list[tuple[str, float | None]] = [("network_emulation.latency_ms", net.latency_ms)]
    fields += [(f"network_emulation.links[{i}].latency_ms", link.latency_ms) for i, link in enumerate(net.links)]
    return [f"{field}: {latency:g} ms one-way is not below the timeout ({timeout:g} s): every wait on a peer "
            "would time out; lower the latency or raise session.timeout_s"
            for field, latency in fields if latency is not None and latency >= timeout * 1000]


def topology_warnings(topo: Topology) -> list[str]:
    """What is valid but cannot run the secure programs (shown by `mpc check`, fatal with --strict)."""
    warnings = []
    compute = topo.compute_parties
    if len(compute) == 1:
        warnings.append(f"{P}: only one compute party ({compute[0].name}): secure programs need two or more "
                        "(one party alone shares its data with nobody); only mesh, pingpong and crash run")
    if topo.helper is None:
        warnings.append(f"{P}: no helper: secure programs (arith, bench, fraud) need one to deal randomness; "
                        "add a party with role: helper; only mesh, pingpong and crash run")
    if topo.insecure and all(p.public_key is None for p in topo.parties):
        remote = [p.name for p in topo.parties if not _is_loopback(p.host)]
        if remote:
            warnings.append(f"deployment.insecure: links to {', '.join(remote)} are plain TCP: neither encrypted nor "
                            "authenticated")
    return warnings


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _canonical_host(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()


def parse_topology(data: object, source: str = "<topology>") -> Topology:
    """Validate already-parsed YAML data (the sectioned form); raise ConfigError listing every problem."""
    if not isinstance(data, dict):
        raise ConfigError(source, [f"(top level): expected a mapping of fields, got {type(data).__name__}"])
    moved = old_form_problems(data)
    if moved:
        raise ConfigError(source, moved)
    try:
        topo = Topology.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown field"
            hint = _RANGE_HINTS.get(tuple(err["loc"]))
            if hint and err["type"] in ("greater_than_equal", "less_than_equal"):
                msg += f" ({hint})"
            problems.append(f"{_field(err['loc'], data)}: {msg}")
        raise ConfigError(source, problems) from None
    problems = _cross_checks(topo)
    if problems:
        raise ConfigError(source, problems)
    return topo


_RANGE_HINTS: dict[tuple[int | str, ...], str] = {
    ("session", "frac_bits"): f"every shipped function supports {MIN_FRAC_BITS} to {MAX_FRAC_BITS} fractional bits",
    ("session", "max_message_mb"): "large frames travel in pieces of 1 MiB, and ZeroMQ drops a piece over the "
                                   "limit without a word",
    ("session", "max_buffered_mb"): "at least one message of max_message_mb must fit",
}


def old_form_problems(data: Mapping[str, Any]) -> list[str]:
    """Top-level keys of the old, flat form: where each one lives now (one line each, all at once)."""
    problems = []
    for key in data:
        if key == OLD_NETWORK:
            problems.append(f"{key}: moved to network_emulation (the same fields: latency_ms, bandwidth_mbps, "
                            "links); the cost model no longer reads it: declare real links under cost_model")
        elif key in FLAT_FIELDS:
            problems.append(f"{key}: moved to {FLAT_FIELDS[key]}.{key}")
    if problems:
        problems[0] += (" (topologies are in sections now: deployment, session, network_emulation, cost_model; "
                        "see docs/topology.md)")
    return problems


def build_topology(parties: Iterable[Mapping[str, Any]], *, name: str = "topology", source: str = "<built-in>",
                   **fields: Any) -> Topology:
    """A topology from Python: `fields` are sections (session={...}) or, for convenience, the flat keys of
    the old form (timeout_s=5, comparison="dcf", network={...}), each put into its section."""
    data: dict[str, Any] = {"name": name, "deployment": {"parties": [dict(p) for p in parties]}}
    for key, value in fields.items():
        section = "network_emulation" if key == OLD_NETWORK else FLAT_FIELDS.get(key)
        if section is None:
            data[key] = {**data.get(key, {}), **value} if key in SECTIONS and isinstance(value, Mapping) else value
        elif key == OLD_NETWORK:
            data[section] = {**data.get(section, {}), **value}
        else:
            data.setdefault(section, {})[key] = value
    return parse_topology(data, source)


def load_topology(path: str | Path) -> Topology:
    """Read and validate a topology file; raise ConfigError naming the file and each bad field."""
    path = Path(path)
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(source, [f"cannot read file: {exc.strerror or exc}"]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(source, [f"(file): not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); "
                                   "save the topology as UTF-8"]) from None
    try:
        duplicates = _duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader))
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise ConfigError(source, [f"YAML syntax error at {where}: {exc.problem}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"YAML error: {exc}"]) from None
    if duplicates:
        raise ConfigError(source, duplicates)
    if data is None:
        raise ConfigError(source, ["(top level): the file is empty; expected the fields of a topology "
                                   "(name, parties, ...)"])
    topo = _resolve_key_paths(parse_topology(data, source), path.parent)
    # Every party needs every public key (to dial and to admit its peers); secret keys live on their own host.
    problems = _key_file_problems(topo)
    if problems:
        raise ConfigError(source, problems)
    return topo


def _duplicate_keys(root: yaml.Node | None) -> list[str]:
    """Keys given twice in one mapping: YAML keeps the last silently, a topology must say which it means."""
    problems: list[str] = []
    visited: set[int] = set()

    def walk(node: yaml.Node, field: str) -> None:
        if id(node) in visited:  # an alias: already checked where its anchor is
            return
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key, value in node.value:
                name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
                sub = f"{field}.{name}" if field else name
                line = key.start_mark.line + 1
                if name in first:
                    problems.append(f"{sub}: given twice (lines {first[name]} and {line}); keep one")
                first.setdefault(name, line)
                walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{field}[{i}]{_item_label(item)}")

    if root is not None:
        walk(root, "")
    return problems


def _item_label(node: yaml.Node) -> str:
    """' (bank_b)' for a list item with a name, as in pydantic-based messages."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == "name" and isinstance(value, yaml.ScalarNode):
                return f" ({value.value})"
    return ""


def _key_file_problems(topo: Topology) -> list[str]:
    """Each listed public key file must hold one party's CURVE public key, and no secret key."""
    problems = []
    owners: dict[bytes, str] = {}
    for i, p in enumerate(topo.parties):
        if p.public_key is None:
            continue
        field = f"{P}[{i}] ({p.name}).public_key"
        public, problem = _read_public_key(Path(p.public_key))
        if problem:
            problems.append(f"{field}: {problem}")
        elif public in owners:
            problems.append(f"{field}: {p.public_key}: the same key as {owners[public]}'s; every party needs "
                            "its own keypair (mpc keys generate)")
        else:
            owners[public] = p.name
    return problems


def _read_public_key(path: Path) -> tuple[bytes, str | None]:
    """The z85 public key in a ZeroMQ certificate file, or why there is none."""
    import zmq.auth
    from zmq.utils import z85

    if not path.is_file():
        return b"", f"no such file {path}"
    try:
        public, secret = zmq.auth.load_certificate(str(path))
        if len(public) != 40 or len(z85.decode(public)) != 32:
            raise ValueError("malformed public-key")
    except Exception:  # any content that is not a certificate: binary, truncated, another format
        return b"", f"{path} is not a CURVE public key file (make one with `mpc keys generate`)"
    if secret:
        return b"", (f"{path} holds a secret key: list the public NAME.key file here, and keep NAME.key_secret "
                     "on its own host only")
    return public, None


def _resolve_key_paths(topo: Topology, base: Path) -> Topology:
    """Key file paths in a topology are relative to the topology file."""
    parties = []
    for p in topo.parties:
        update = {}
        for field in ("public_key", "secret_key"):
            value = getattr(p, field)
            if value is not None and not Path(value).is_absolute():
                update[field] = str(base / value)
        parties.append(p.model_copy(update=update) if update else p)
    return topo.model_copy(update={"deployment": topo.deployment.model_copy(update={"parties": tuple(parties)})})


def localhost_topology(
    n_compute: int = 2,
    helper: bool = True,
    ports: Iterable[int] | None = None,
    **fields: Any,
) -> Topology:
    """A topology of `n_compute` banks (bank_a, bank_b, ...) and optionally the helper, all on 127.0.0.1.
    `fields` as for build_topology: sections, or flat keys (timeout_s=5, network={"latency_ms": 10})."""
    names = [f"bank_{chr(ord('a') + i)}" for i in range(n_compute)]
    specs: list[dict[str, object]] = [{"name": n, "role": "compute"} for n in names]
    if helper:
        specs.append({"name": "helper", "role": "helper"})
    port_list = list(ports) if ports is not None else [6100 + i for i in range(len(specs))]
    for spec, port in zip(specs, port_list, strict=True):
        spec.update(host="127.0.0.1", port=port)
    return build_topology(specs, name=f"local-{n_compute}-parties", **fields)
