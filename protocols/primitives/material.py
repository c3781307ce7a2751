"""Correlated randomness: seeds, PRG streams and delivery, for any protocol's `Spec` (protocols/primitives/core.py).

The helper shares one AES seed with each compute party. For every op, each compute party derives from its
seed its share of every `random` array, its shares of every `shared` array but the last party's, and its
`own` arrays; the helper, who knows every seed, derives the whole, evaluates the spec's functions, and
sends only what cannot be derived: to the last compute party the corrections that complete its shares of
the `shared` arrays (one message, or one per piece of an elementwise spec), and to every compute party the
`public` arrays (one message, the same array to each). PRG streams are keyed by (op id, the item's
position in the spec) and read from an element offset for a piece, so no two arrays ever reuse a stream.

Providers (the `RandomnessProvider` interface of protocols/primitives/core.py):
- `HelperProvider`: the real one; the helper deals (`deal`), compute parties derive and receive (`fetch`).
- `LocalTestProvider`: TESTS ONLY. Every party knows every seed (so nothing is secret) and evaluates the
  spec itself. Selecting it is explicit and logged as insecure.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

import numpy as np

from mpc.prg import PRG, new_seed
from mpc.runtime import Op, Party
from mpc.window import Unbounded, Window
from mpc.workers import WorkerPool
from protocols.primitives import dcf
from protocols.primitives.core import STOP, WORKERS, Env, Item, Material, Spec

log = logging.getLogger("mpc.material")

# The message steps under which dealer material travels (its op id is the consuming op's): the public
# arrays, and the last party's corrections (piece k of an elementwise spec's: CORRECTIONS_STEP | k << 8).
DEALER_STEP = 0xD0
CORRECTIONS_STEP = 0xD1
# Elements per piece of an elementwise spec: a piece's arrays (512 KiB each) stay in cache while computed,
# and its corrections for up to two shared items, with their frame header, fit one 1 MiB transport message.
PIECE = (1 << 16) - 8


def pieces(spec: Spec) -> list[tuple[int, int]]:
    """The element ranges an elementwise spec's corrections are dealt in (one range for any other spec, and
    for one with nothing to correct: dealer and receiver both ask here)."""
    n = spec.items[0].size if spec.items else 0
    if not spec.elementwise or n <= PIECE or not spec.of_kind("shared"):
        return [(0, n)]
    return [(lo, min(n, lo + PIECE)) for lo in range(0, n, PIECE)]


class SeededProvider:
    """Material derived from per-party seeds; subclasses say who knows which seeds and who sends."""

    def __init__(self, party: Party, seeds: dict[str, bytes]):
        self.party = party
        self.compute = party.compute_parties
        self.last = self.compute[-1]
        self._prg = {name: PRG(seed) for name, seed in seeds.items()}
        self.workers: WorkerPool | None = None  # worker processes heavy specs may split across (env[WORKERS])
        self.window: Window = Unbounded()  # counts the material this party holds (set by the Context)
        self._said_heavy = False  # said once in the log: a long phase starts
        # Heavy specs (DCF chunks) are evaluated one at a time, in the order dealt: the first is sent (and
        # encrypted by the transport's thread, on another core) while the next is generated. All at once,
        # they would contend for the GIL (AES holds it) and all finish, and start sending, together.
        self._heavy_lock = asyncio.Lock()

    async def _evaluate_heavy(self, op: Op, spec: Spec) -> tuple[Env, np.ndarray, np.ndarray]:
        """A heavy spec (DCF keys) in a worker thread, off the event loop: sends of earlier material go on
        meanwhile. With worker processes, that thread only waits while they generate the keys on every
        core (in one process, AES holds the GIL). Once the run has stopped (a peer died), queued work never
        starts and nobody waits for work under way."""
        if not self._said_heavy:
            self._said_heavy = True
            where = f"{self.workers.size} worker processes" if self.workers else "a worker thread"
            log.info("%s: generating DCF keys in %s", self.party.name, where)
        async with self._heavy_lock:
            return await self.party.run_in_worker(self.evaluate, op, spec)

    # -- derivation -----------------------------------------------------------------------------
    def _stream(self, name: str, op: Op, purpose: int, item: Item, start: int = 0) -> np.ndarray:
        return self._prg[name].ring(item.shape, op.id, purpose, start)

    def _combine(self, op: Op, purpose: int, item: Item, skip_last: bool = False,
                 out: np.ndarray | None = None, start: int = 0) -> np.ndarray:
        """The sum (or XOR) of the compute parties' streams for an item (from word `start` on): accumulated
        into the first stream (PRG arrays are fresh and writable), or written into `out` (item.size words)."""
        names = [name for name in self.compute if not (skip_last and name == self.last)]
        if out is None and not names:
            return np.zeros(item.shape, dtype=np.uint64)
        if out is None:
            total, rest = self._stream(names[0], op, purpose, item, start), names[1:]
        else:
            total = out.reshape(item.shape)
            if names:
                self._prg[names[0]].combine_into(total, op.id, purpose, "set", start)
            else:
                total[...] = 0
            rest = names[1:]
        for name in rest:
            self._prg[name].combine_into(total, op.id, purpose, "xor" if item.sharing == "xor" else "add", start)
        return total

    def corrections_of_piece(self, op: Op, spec: Spec, lo: int, hi: int) -> np.ndarray:
        """The last party's corrections for elements lo:hi of an elementwise spec, item after item: the
        dealer's work for one piece, on arrays of hi - lo elements."""
        shared = spec.of_kind("shared")
        out = np.empty((len(shared), hi - lo), dtype=np.uint64)
        env: Env = {}
        at = 0
        for purpose, whole in enumerate(spec.items, start=1):
            item = Item(whole.name, (hi - lo,), whole.kind, whole.sharing, whole.fn)
            if item.kind == "random":
                env[item.name] = self._combine(op, purpose, item, start=lo)
                continue
            assert item.fn is not None
            value = env[item.name] = np.asarray(item.fn(env), dtype=np.uint64)
            self._correction(op, purpose, item, value, out[at], start=lo)
            at += 1
        return out.reshape(-1)

    def _correction(self, op: Op, purpose: int, item: Item, value: np.ndarray, out: np.ndarray,
                    start: int = 0) -> None:
        """Write into `out` the last party's share of a shared item: its value minus (or XOR) the other
        parties' streams."""
        others = self._combine(op, purpose, item, skip_last=True, out=out, start=start)
        if item.sharing == "xor":
            others ^= value
        else:
            np.subtract(value, others, out=others)

    def evaluate(self, op: Op, spec: Spec) -> tuple[Env, np.ndarray, np.ndarray]:
        """The dealer's work: the whole material (env), the last party's corrections and the public arrays
        (each flattened into one array, in spec order)."""
        env: Env = {STOP: self.party.stop.check}
        if self.workers is not None:
            env[WORKERS] = self.workers
        public = []
        # the last party's corrections, written in place: one array sent as it is
        corrections = np.empty(sum(i.size for i in spec.of_kind("shared")), dtype=np.uint64)
        corr_at = 0
        for purpose, item in enumerate(spec.items, start=1):
            if item.kind == "random":
                env[item.name] = self._combine(op, purpose, item)
            elif item.kind == "own":
                env[item.name] = [self._stream(name, op, purpose, item) for name in self.compute]
            else:
                assert item.fn is not None
                value = np.asarray(item.fn(env), dtype=np.uint64)
                if value.shape != item.shape:
                    raise AssertionError(f"material {item.name}: shape {value.shape}, declared {item.shape}")
                env[item.name] = value
                if item.kind == "public":
                    public.append(value.ravel())
                else:
                    self._correction(op, purpose, item, value, corrections[corr_at:corr_at + item.size])
                    corr_at += item.size
        return env, corrections, _flat(public)

    def own_material(self, op: Op, spec: Spec, corrections: np.ndarray | None, public: np.ndarray) -> Material:
        """This compute party's material from its streams, the corrections (last party) and public arrays."""
        return self._with_received(spec, self._derived(op, spec), corrections, public)

    def _derived(self, op: Op, spec: Spec) -> dict[str, np.ndarray]:
        """The items this compute party draws from its own streams (everything it is not sent)."""
        me = self.party.name
        return {item.name: self._stream(me, op, purpose, item) for purpose, item in enumerate(spec.items, start=1)
                if item.kind != "public" and not (item.kind == "shared" and me == self.last)}

    def _with_received(self, spec: Spec, derived: dict[str, np.ndarray], corrections: np.ndarray | None,
                       public: np.ndarray) -> Material:
        """The derived items with the received ones (public arrays; the last party's corrections), in spec order."""
        out: dict[str, np.ndarray] = {}
        corr_at = pub_at = 0
        for item in spec.items:
            if item.name in derived:
                out[item.name] = derived[item.name]
            elif item.kind == "public":
                out[item.name] = public[pub_at:pub_at + item.size].reshape(item.shape)
                pub_at += item.size
            else:
                assert corrections is not None
                out[item.name] = corrections[corr_at:corr_at + item.size].reshape(item.shape)
                corr_at += item.size
        return Material(out)


class HelperProvider(SeededProvider):
    """Material dealt by the helper party: seeds at setup, then per op the public arrays to every compute
    party and the corrections to the last (in pieces for an elementwise spec). The helper's heavy specs run in its
    worker processes, if it has them."""

    def __init__(self, party: Party, seeds: dict[str, bytes]):
        super().__init__(party, seeds)
        self.workers = party.workers if party.is_helper else None
        if self.workers is not None:
            # the heavy specs' generator (DCF keys), imported by the workers now, not in the first op's dealing
            self.workers.warm(dcf.gen)

    async def deal(self, op: Op, spec: Spec) -> None:
        self.party.raise_if_failed()
        ranges = pieces(spec)
        if len(ranges) > 1:
            for k, (lo, hi) in enumerate(ranges):
                self.party.send(self.last, op, self.corrections_of_piece(op, spec, lo, hi),
                                step=CORRECTIONS_STEP | k << 8)
                await asyncio.sleep(0)  # the transport hands this piece on while the next is computed
            return
        if spec.heavy:
            _, corrections, public = await self._evaluate_heavy(op, spec)
        else:
            _, corrections, public = self.evaluate(op, spec)
        # Public arrays (the same array to every party) and the last party's corrections travel apart:
        # joining them would copy the public part, megabytes of DCF keys, for one party.
        for name in self.compute:
            if public.size:
                self.party.send(name, op, public, step=DEALER_STEP)
            if name == self.last and corrections.size:
                self.party.send(name, op, corrections, step=CORRECTIONS_STEP)

    async def fetch(self, op: Op, spec: Spec) -> Material:
        n_corr = sum(i.size for i in spec.of_kind("shared")) if self.party.name == self.last else 0
        n_pub = sum(i.size for i in spec.of_kind("public"))
        derived = self._derived(op, spec)  # while the dealer computes and sends the rest
        self.window.hold(sum(a.nbytes for a in derived.values()))
        helper = self.party.helper
        assert helper is not None
        # dealer material is offline: its depth does not count as a round
        ranges = pieces(spec)
        if n_corr and len(ranges) > 1:
            n_shared = len(spec.of_kind("shared"))
            corrections = np.empty((n_shared, n_corr // n_shared), dtype=np.uint64)
            for k, (lo, hi) in enumerate(ranges):
                msg = await self.party.recv(helper, op, step=CORRECTIONS_STEP | k << 8, dtype=np.uint64,
                                            shape=(n_shared * (hi - lo),))
                corrections[:, lo:hi] = msg.array.reshape(n_shared, hi - lo)
                self.window.hold(msg.array.nbytes)
            return self._with_received(spec, derived, corrections.reshape(-1), np.zeros(0, dtype=np.uint64))
        received = [np.zeros(0, dtype=np.uint64) if not size else
                    (await self.party.recv(helper, op, step=step, dtype=np.uint64, shape=(size,))).array
                    for step, size in ((CORRECTIONS_STEP, n_corr), (DEALER_STEP, n_pub))]
        self.window.hold(sum(a.nbytes for a in received))
        return self._with_received(spec, derived, *received)

    @staticmethod
    async def setup(party: Party, op: Op) -> HelperProvider:
        """The helper draws a fresh seed per compute party and sends it over that party's link."""
        helper = party.helper
        if helper is None:
            raise ValueError("this topology has no helper party, which deals the products' randomness; "
                             "add a party with role: helper")
        if party.is_helper:
            seeds = {name: new_seed() for name in party.compute_parties}
            for name, seed in seeds.items():
                party.send(name, op, np.frombuffer(seed, dtype=np.uint8), step=DEALER_STEP)
            return HelperProvider(party, seeds)
        msg = await party.recv(helper, op, step=DEALER_STEP, dtype=np.uint8, shape=(16,))
        return HelperProvider(party, {party.name: msg.array.tobytes()})


_TEST_DEALER_REFUSED: str | None = None


def refuse_test_dealer(where: str) -> None:
    """From now on this process refuses the in-process test dealer (`mpc run` calls it: a deployed party
    must never run without secrecy, whatever its program asks for)."""
    global _TEST_DEALER_REFUSED
    _TEST_DEALER_REFUSED = where


class LocalTestProvider(SeededProvider):
    """TESTS ONLY: every party derives everything from one shared seed. Offers no secrecy at all. Reached
    only through protocols.interface.testing; refused in a process started by `mpc run`."""

    def __init__(self, party: Party, test_seed: bytes):
        if _TEST_DEALER_REFUSED is not None:
            raise RuntimeError(f"{party.name}: the in-process test dealer offers no secrecy and is for tests only; "
                               f"{_TEST_DEALER_REFUSED} refuses it (secure programs use the helper party)")
        seeds = {name: hashlib.blake2b(test_seed + name.encode(), digest_size=16).digest()
                 for name in party.compute_parties}
        super().__init__(party, seeds)
        log.warning("%s: using the in-process test dealer: NOT SECURE", party.name)

    async def deal(self, op: Op, spec: Spec) -> None:
        """Nothing to send: every compute party evaluates the spec itself."""

    async def fetch(self, op: Op, spec: Spec) -> Material:
        if spec.heavy:
            _, corrections, public = await self._evaluate_heavy(op, spec)
        else:
            _, corrections, public = self.evaluate(op, spec)
        self.window.hold(spec.nbytes)
        return self.own_material(op, spec, corrections, public)


def _flat(parts: list[np.ndarray]) -> np.ndarray:
    """The parts end to end; a single non-empty part as it is (a copy of megabytes is not free)."""
    nonempty = [p for p in parts if p.size]
    if len(nonempty) == 1:
        return nonempty[0]
    return np.concatenate(nonempty) if nonempty else np.zeros(0, dtype=np.uint64)
