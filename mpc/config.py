"""Topology: who the parties are, where they listen, and how the links between them behave.

A topology is a YAML file validated with pydantic. Every problem is reported with the file and the
field it concerns, all at once, so a user fixes a config in one pass instead of one error per run.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, ValidationError, field_validator

from mpc.settings import Comparison, Truncation, check_parties

Role = Literal["compute", "helper"]
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_\-]{0,31}$"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


DEFAULT_MAX_WORKERS = 4  # the default dealer_workers' ceiling: more would get no share of a chunk of keys

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
    """Per-link override of the emulated network between two parties (both directions)."""

    between: tuple[str, str]
    latency_ms: StrictFloat | None = Field(default=None, ge=0, le=60_000)
    bandwidth_mbps: StrictFloat | None = Field(default=None, gt=0, le=1_000_000)


class NetworkSpec(_Strict):
    """Emulated one-way latency and bandwidth for every link; 0 / null mean none."""

    latency_ms: StrictFloat = Field(default=0.0, ge=0, le=60_000)
    bandwidth_mbps: StrictFloat | None = Field(default=None, gt=0, le=1_000_000)
    links: tuple[LinkSpec, ...] = ()


class Topology(_Strict):
    """The whole run: parties, numbers, timeouts and the network between the parties."""

    name: str = "topology"
    parties: tuple[PartySpec, ...]
    # Strict numbers: YAML's `true` must not become port 1, nor a quoted "30" a timeout.
    frac_bits: StrictInt = Field(default=16, ge=0, le=40)
    timeout_s: StrictFloat = Field(default=30.0, gt=0, le=3600)
    max_message_mb: StrictFloat = Field(default=1024.0, gt=0, le=16_384)
    # Received but not yet used, per peer (early arrivals, messages held by the emulated network); at least
    # max_message_mb in effect. Over it, the run stops naming the peer instead of exhausting memory.
    max_buffered_mb: StrictFloat = Field(default=4096.0, gt=0, le=1_048_576)
    # ZeroMQ heartbeats: a frozen peer is named after heartbeat_timeout_s of silence. Generous by default: a
    # saturated host (or a large frame in flight, which delays the answer to a ping) must not look dead.
    heartbeat_s: StrictFloat = Field(default=1.0, gt=0, le=600)
    heartbeat_timeout_s: StrictFloat = Field(default=15.0, gt=0, le=3600)
    truncation: Truncation = Truncation.DEALER
    comparison: Comparison = Comparison.AUTO
    insecure: StrictBool = False
    # Worker processes the helper generates DCF keys in (mpc/workers.py); 1: in the party's own process.
    # Unset: the CPUs the helper's process may use. A host-local choice, not agreed between the parties.
    dealer_workers: StrictInt | None = Field(default=None, ge=1, le=1024)
    # Shard workers per party (the same N for every party, agreed at session start): shard i of every party
    # forms its own session, listening on port + i * shard_port_step (default: the number of parties).
    workers: StrictInt = Field(default=1, ge=1, le=256)
    shard_port_step: StrictInt | None = Field(default=None, ge=1, le=10_000)
    network: NetworkSpec = NetworkSpec()

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

    def link(self, a: str, b: str) -> LinkParams:
        """The emulated network between two parties: the per-link override, else the default."""
        latency, bandwidth = self.network.latency_ms, self.network.bandwidth_mbps
        for link in self.network.links:
            if set(link.between) == {a, b}:
                latency = link.latency_ms if link.latency_ms is not None else latency
                bandwidth = link.bandwidth_mbps if link.bandwidth_mbps is not None else bandwidth
        return LinkParams(latency_ms=latency, bandwidth_mbps=bandwidth)

    def agreed_settings(self) -> dict[str, str]:
        """What every party must share for the run to be sound (compared at session start): the same
        parties in the same order (an index names a party on the wire), and the same encoding and methods.
        Hosts, ports, key paths, timeouts and the emulated network may differ from host to host, except
        the links `auto` reads to choose a comparison method: every party must choose the same."""
        settings = {
            "parties": ", ".join(f"{p.name} ({p.role})" for p in self.parties),
            "frac_bits": str(self.frac_bits),
            "truncation": self.truncation.value,
            "comparison": self.comparison.value,
        }
        compute, helper = [p.name for p in self.compute_parties], self.helper
        if self.comparison == Comparison.AUTO and len(compute) == 2:
            links = [(compute[0], compute[1])] + ([(helper.name, compute[1])] if helper is not None else [])
            settings["network of auto's links"] = "; ".join(
                f"{a}-{b} {self.link(a, b).latency_ms:g} ms, {self.link(a, b).bandwidth_mbps or 'unlimited'} Mbit/s"
                for a, b in links)
        return settings

    # -- derived topologies --------------------------------------------------------------------
    def with_network(self, latency_ms: float | None = None, bandwidth_mbps: float | None = None) -> Topology:
        """Override the emulated network on every link (the CLI's --latency-ms / --bandwidth-mbps)."""
        if latency_ms is None and bandwidth_mbps is None:
            return self
        net = self.network
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
            new_net = NetworkSpec(
                latency_ms=net.latency_ms if latency_ms is None else latency_ms,
                bandwidth_mbps=net.bandwidth_mbps if bandwidth_mbps is None else bandwidth_mbps,
                links=links,
            )
        except ValidationError as exc:  # an override out of range: the same check as in a file
            raise ConfigError("command line", [f"network.{_field(e['loc'], {})}: {e['msg']}"
                                               for e in exc.errors()]) from None
        return self.model_copy(update={"network": new_net})


@dataclass(frozen=True)
class LinkParams:
    latency_ms: float
    bandwidth_mbps: float | None


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


def _cross_checks(topo: Topology) -> list[str]:
    """Problems that involve several fields: names, ports, roles and links."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    endpoints: dict[tuple[str, int], str] = {}
    for i, p in enumerate(topo.parties):
        if p.name in seen:
            problems.append(f"parties[{i}].name: duplicate party name {p.name!r} (also parties[{seen[p.name]}])")
        seen.setdefault(p.name, i)
        key = (_canonical_host(p.host), p.port)
        if key in endpoints:
            problems.append(
                f"parties[{i}] ({p.name}).port: {p.host}:{p.port} is already used by party {endpoints[key]!r}"
            )
        endpoints.setdefault(key, p.name)
        if (p.public_key is None) != (p.secret_key is None) and p.public_key is None:
            problems.append(f"parties[{i}] ({p.name}).public_key: a secret_key is given without its public_key")
    problems += _listen_clashes(topo)
    problems += _shard_port_problems(topo)
    problems += latency_problems(topo)
    n_compute = len(topo.compute_parties)
    if n_compute == 0:
        problems.append("parties: no party has role 'compute'; at least one is needed (two for any secrecy)")
    helpers = [p.name for p in topo.parties if p.role == "helper"]
    if len(helpers) > 1:
        problems.append(f"parties: at most one helper is allowed, found {len(helpers)}: {', '.join(helpers)}")
    for i, link in enumerate(topo.network.links):
        for end in link.between:
            if end not in seen:
                problems.append(f"network.links[{i}].between: unknown party {end!r} (parties: {', '.join(seen)})")
        if link.between[0] == link.between[1]:
            problems.append(f"network.links[{i}].between: a link needs two different parties")
    keyed = [p.public_key is not None for p in topo.parties]
    if any(keyed) and not all(keyed):
        missing = ", ".join(p.name for p in topo.parties if p.public_key is None)
        problems.append(f"parties: public_key is given for some parties but not for {missing}; give every party "
                        "one (mpc keys generate)")
    remote = [p.name for p in topo.parties if not _is_loopback(p.host)]
    if remote and not any(keyed) and not topo.insecure:
        problems.append(f"parties: {', '.join(remote)} on non-local hosts but no keys: give every party a "
                        "public_key (mpc keys generate) so links are encrypted and authenticated, or set "
                        "`insecure: true` to run over plain TCP")
    for name, why in (("comparison", check_parties(n_compute, comparison=topo.comparison)),
                      ("truncation", check_parties(n_compute, truncation=topo.truncation))):
        if why is not None and n_compute > 1:  # one compute party: a warning already says nothing secure runs
            problems.append(f"{name}: {why.removeprefix(name + ' ')}")
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
                problems.append(f"parties[{j}] ({b.name}).{field}: listens on {host_b}:{port_b}, where {a.name} "
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
    fields: list[tuple[str, float | None]] = [("network.latency_ms", topo.network.latency_ms)]
    fields += [(f"network.links[{i}].latency_ms", link.latency_ms) for i, link in enumerate(topo.network.links)]
    return [f"{field}: {latency:g} ms one-way is not below the timeout ({timeout:g} s): every wait on a peer "
            "would time out; lower the latency or raise timeout_s"
            for field, latency in fields if latency is not None and latency >= timeout * 1000]


def topology_warnings(topo: Topology) -> list[str]:
    """What is valid but cannot run the secure programs (shown by `mpc check`, fatal with --strict)."""
    warnings = []
    compute = topo.compute_parties
    if len(compute) == 1:
        warnings.append(f"parties: only one compute party ({compute[0].name}): secure programs need two or more "
                        "(one party alone shares its data with nobody); only mesh, pingpong and crash run")
    if topo.helper is None:
        warnings.append("parties: no helper: secure programs (arith, bench, fraud) need one to deal randomness; "
                        "add a party with role: helper; only mesh, pingpong and crash run")
    if topo.insecure and all(p.public_key is None for p in topo.parties):
        remote = [p.name for p in topo.parties if not _is_loopback(p.host)]
        if remote:
            warnings.append(f"insecure: links to {', '.join(remote)} are plain TCP: neither encrypted nor "
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
    """Validate already-parsed YAML data; raise ConfigError listing every problem."""
    if not isinstance(data, dict):
        raise ConfigError(source, [f"(top level): expected a mapping of fields, got {type(data).__name__}"])
    try:
        topo = Topology.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown field"
            problems.append(f"{_field(err['loc'], data)}: {msg}")
        raise ConfigError(source, problems) from None
    problems = _cross_checks(topo)
    if problems:
        raise ConfigError(source, problems)
    return topo


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
        field = f"parties[{i}] ({p.name}).public_key"
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
    return topo.model_copy(update={"parties": tuple(parties)})


def localhost_topology(
    n_compute: int = 2,
    helper: bool = True,
    ports: Iterable[int] | None = None,
    **fields: object,
) -> Topology:
    """A topology of `n_compute` banks (bank_a, bank_b, ...) and optionally the helper, all on 127.0.0.1."""
    names = [f"bank_{chr(ord('a') + i)}" for i in range(n_compute)]
    specs: list[dict[str, object]] = [{"name": n, "role": "compute"} for n in names]
    if helper:
        specs.append({"name": "helper", "role": "helper"})
    port_list = list(ports) if ports is not None else [6100 + i for i in range(len(specs))]
    for spec, port in zip(specs, port_list, strict=True):
        spec.update(host="127.0.0.1", port=port)
    return parse_topology({"name": f"local-{n_compute}-parties", "parties": specs, **fields}, "<built-in>")
