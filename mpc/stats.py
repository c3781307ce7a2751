"""Communication counters, always on: messages, bytes and rounds, per phase and per operation.

Counted by the transport as messages are sent and consumed, never declared by a protocol. A round is
measured as message depth (a Lamport-style clock; docs/ARCHITECTURE.md, "How rounds are counted"): a
message carries its sender's
depth and its receiver's value has depth max(own, sent + 1); a party's `rounds` is the deepest value it
produced.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Counter:
    messages_sent: int = 0
    bytes_sent: int = 0
    messages_received: int = 0
    bytes_received: int = 0

    def add(self, other: Counter) -> None:
        self.messages_sent += other.messages_sent
        self.bytes_sent += other.bytes_sent
        self.messages_received += other.messages_received
        self.bytes_received += other.bytes_received

    def minus(self, other: Counter) -> Counter:
        return Counter(
            self.messages_sent - other.messages_sent,
            self.bytes_sent - other.bytes_sent,
            self.messages_received - other.messages_received,
            self.bytes_received - other.bytes_received,
        )


@dataclass
class Stats:
    """Per-party counters keyed by (phase, op tag), plus the deepest round seen."""

    by_op: dict[tuple[str, str], Counter] = field(default_factory=dict)
    rounds: int = 0
    transport_sends: int = 0
    methods: dict[tuple[str, str], int] = field(default_factory=dict)
    # Bytes held now and at most, by name (memory the runtime can account for): "material" is dealer
    # material a compute party holds (in its inbox, derived, or received and not yet consumed by its op);
    # "dealt_ahead" is what the helper has dealt and not yet heard consumed, for its furthest-behind party;
    # "rss" and "workers_rss" the party's resident memory (mpc/memory.py).
    level: dict[str, int] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)
    """How many calls of each operation label ran by each method (comparison methods chosen by `auto` or
    asked for): each operation records its own choice, so concurrent operations never overwrite it."""

    def reset(self) -> None:
        """Back to zero: a program's counters start after the hello's own messages (mpc/links.py)."""
        fresh = Stats()
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))

    def record_method(self, label: str, method: str) -> None:
        key = (label, method)
        self.methods[key] = self.methods.get(key, 0) + 1

    def methods_used(self) -> list[str]:
        """Every method some operation used, in the order first used."""
        return list(dict.fromkeys(method for _, method in self.methods))

    # Totals over every phase and op, as attributes: `outcome.stats.bytes_sent`
    @property
    def bytes_sent(self) -> int:
        return self.total().bytes_sent

    @property
    def bytes_received(self) -> int:
        return self.total().bytes_received

    @property
    def messages_sent(self) -> int:
        return self.total().messages_sent

    @property
    def messages_received(self) -> int:
        return self.total().messages_received
    def change(self, name: str, delta: int) -> None:
        """Add `delta` bytes to the level `name` (negative: released), keeping its peak."""
        level = self.level[name] = self.level.get(name, 0) + delta
        if level > self.peak.get(name, 0):
            self.peak[name] = level

    def set_level(self, name: str, level: int) -> None:
        self.level[name] = level
        if level > self.peak.get(name, 0):
            self.peak[name] = level

    def _counter(self, phase: str, tag: str) -> Counter:
        key = (phase, tag)
        c = self.by_op.get(key)
        if c is None:
            c = self.by_op[key] = Counter()
        return c

    def record_send(self, phase: str, tag: str, nbytes: int, depth: int) -> None:
        c = self._counter(phase, tag)
        c.messages_sent += 1
        c.bytes_sent += nbytes
        self.rounds = max(self.rounds, depth)

    def record_recv(self, phase: str, tag: str, nbytes: int, depth: int) -> None:
        c = self._counter(phase, tag)
        c.messages_received += 1
        c.bytes_received += nbytes
        self.rounds = max(self.rounds, depth)

    def total(self, phase: str | None = None, tag: str | None = None) -> Counter:
        out = Counter()
        for (ph, tg), c in self.by_op.items():
            if (phase is None or ph == phase) and (tag is None or tg == tag):
                out.add(c)
        return out

    def copy(self) -> Stats:
        return Stats({k: Counter(**asdict(v)) for k, v in self.by_op.items()}, self.rounds, self.transport_sends,
                     dict(self.methods), dict(self.level), dict(self.peak))

    def since(self, earlier: Stats) -> Stats:
        """The traffic between an earlier snapshot and now (rounds are not subtracted: a value's depth
        minus its inputs' depth gives an operation's rounds)."""
        out = Stats(rounds=self.rounds, transport_sends=self.transport_sends - earlier.transport_sends,
                    level=dict(self.level), peak=dict(self.peak))
        out.methods = {k: n - earlier.methods.get(k, 0) for k, n in self.methods.items()
                       if n != earlier.methods.get(k, 0)}
        for key, c in self.by_op.items():
            diff = c.minus(earlier.by_op.get(key, Counter()))
            if diff != Counter():
                out.by_op[key] = diff
        return out

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary: totals, per phase, and per phase/op."""
        total = self.total()
        return {
            "rounds": self.rounds,
            "messages": total.messages_sent,
            "bytes_sent": total.bytes_sent,
            "messages_received": total.messages_received,
            "bytes_received": total.bytes_received,
            "transport_sends": self.transport_sends,
            "phases": {ph: asdict(self.total(phase=ph)) for ph in sorted({k[0] for k in self.by_op})},
            "ops": {f"{ph}:{tg}": asdict(c) for (ph, tg), c in sorted(self.by_op.items())},
            "methods": {f"{label}:{method}": n for (label, method), n in sorted(self.methods.items())},
            "peak_bytes": dict(sorted(self.peak.items())),
        }
