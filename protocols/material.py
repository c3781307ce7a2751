"""Correlated randomness (Beaver triples, truncation pairs), compressed with PRG seeds.

The helper shares one AES seed with each compute party. For every op, each compute party derives its
part of the material from its seed; the helper, who knows every seed, derives the whole and sends only
what cannot be derived (for a triple c = a*b, the last party's share of c) as one correction array
(DESIGN section 4). Providers return raw uint64 arrays, never share objects (STYLE.md point 3).

Two implementations of one interface:
- `HelperMaterial`: the real one. On the helper it generates and sends corrections (dealer mode); on a
  compute party it derives its part and receives its correction.
- `LocalDealerMaterial`: for unit tests only. Every party knows every seed (so nothing is secret); the
  last party computes its own correction. Selecting it is explicit and logged as insecure.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mpc.prg import PRG, new_seed
from mpc.runtime import Op, Party
from protocols import dcf
from protocols.dcf import DcfKeys

log = logging.getLogger("mpc.material")

# The message step under which dealer material travels (its op id is the consuming op's).
DEALER_STEP = 0xD0
# PRG stream purposes, one per array of material.
A, B, C, R, R_MSB, R_LOW = range(1, 7)
DCF_ROOT, DCF_DEALT = 10, 11  # DCF_DEALT + k for the k-th dealt array
BITS_R, BITS_RB, BITS_RHO_B, BITS_RHO_A = 20, 21, 22, 23
BITS_AND = 100  # + 3 * (2 * level + k) + (0: a, 1: b, 2: c)
DCF_BITS = 63
LOW63 = np.uint64(2**63 - 1)


@dataclass(frozen=True)
class Triple:
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray


@dataclass(frozen=True)
class TruncPair:
    """Shares of r, of r's top bit, and of (r mod 2^63) >> f: enough to truncate x + r opened."""

    r: np.ndarray
    msb: np.ndarray
    low_shifted: np.ndarray


@dataclass(frozen=True)
class GateSpec:
    """What a DCF gate needs from the dealer, as functions of the mask r (only the helper evaluates them):
    `payload(r)` (N, width) is the DCF's beta, `dealt(r)` the arrays to secret-share besides r."""

    name: str
    width: int
    n_dealt: int
    payload: Callable[[np.ndarray], np.ndarray]
    dealt: Callable[[np.ndarray], list[np.ndarray]]


@dataclass(frozen=True)
class DcfGate:
    """One compute party's material for a DCF gate on N elements: its key, its share of r, and its
    shares of the spec's dealt arrays."""

    keys: DcfKeys
    r: np.ndarray
    dealt: list[np.ndarray]


@dataclass(frozen=True)
class BitsMaterial:
    """One compute party's material for the bit-decomposition sign (protocols/binary.py), N elements."""

    r: np.ndarray  # arithmetic share of r
    r_bits: np.ndarray  # XOR share of r's bits
    and_a: np.ndarray  # (levels, 2, N) XOR shares of binary triples
    and_b: np.ndarray
    and_c: np.ndarray
    rho_bits: np.ndarray  # XOR share of a random bit rho (in bit 0)
    rho: np.ndarray  # arithmetic share of rho


class SeededMaterial:
    """Material derived from per-party seeds; subclasses say who knows which seeds and who corrects."""

    def __init__(self, party: Party, seeds: dict[str, bytes]):
        self.party = party
        self.compute = party.compute_parties
        self.last = self.compute[-1]
        self._prg = {name: PRG(seed) for name, seed in seeds.items()}
        self._dealing_dcf = False  # said once in the log: a long phase starts
        # DCF chunks are generated one at a time, in the order dealt: the first is sent (and encrypted by
        # the transport's thread, on another core) while the next is generated. Generated all at once,
        # they would contend for the GIL (AES holds it) and all finish, and start sending, together.
        self._gen_lock = asyncio.Lock()

    # -- the interface the protocols use -----------------------------------------------------------
    async def triple(self, op: Op, shape_a: tuple[int, ...], shape_b: tuple[int, ...], shape_c: tuple[int, ...],
                     product: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Triple | None:
        """Shares of a, b and c = product(a, b) of shape_c. The dealer gets None after sending its correction."""
        if self._knows_all():
            a = self._sum(op, A, shape_a)
            b = self._sum(op, B, shape_b)
            correction = product(a, b)
            correction -= self._sum(op, C, shape_c, skip_last=True)
            mine = self._own_part(op, A, B, C, shape_a, shape_b, shape_c, last_c=correction)
            self._deliver(op, correction)
            return mine
        return await self._receive(op, lambda c: self._own_part(op, A, B, C, shape_a, shape_b, shape_c, c),
                                   shape_c)

    async def trunc_pair(self, op: Op, shape: tuple[int, ...], frac_bits: int) -> TruncPair | None:
        """Shares of r, msb(r) and (r mod 2^63) >> f for probabilistic truncation."""
        if self._knows_all():
            r = self._sum(op, R, shape)
            msb = np.right_shift(r, np.uint64(63))
            low = np.right_shift(r & np.uint64(2**63 - 1), np.uint64(frac_bits))
            corr = np.empty((2, *shape), dtype=np.uint64)
            np.subtract(msb, self._sum(op, R_MSB, shape, skip_last=True), out=corr[0])
            np.subtract(low, self._sum(op, R_LOW, shape, skip_last=True), out=corr[1])
            mine = self._own_trunc(op, shape, corr)
            self._deliver(op, corr)
            return mine
        return await self._receive(op, lambda corr: self._own_trunc(op, shape, corr), (2, *shape))

    async def dcf_gate(self, op: Op, n: int, spec: GateSpec) -> DcfGate | None:
        """A DCF gate on n elements: the helper draws r, gives keys for alpha = r mod 2^63 with payload
        spec.payload(r) and shares of spec.dealt(r). Two compute parties only (see protocols/gates.py)."""
        if len(self.compute) != 2:
            raise ValueError("the dcf comparison works with exactly two compute parties; use method 'bits'")
        cw_words = n * dcf.words_per_key(DCF_BITS, spec.width)
        shape = (n,)
        if self._knows_all():
            r = self._sum(op, R, shape)
            roots = [self._stream(name, op, DCF_ROOT, (n, 2)) for name in self.compute]
            if not self._dealing_dcf:
                self._dealing_dcf = True
                log.info("%s: generating DCF keys in worker threads", self.party.name)
            # In a worker thread, one chunk at a time: sends of earlier chunks go on meanwhile. Once the run
            # has stopped (a peer died), queued chunks never start, and one under way is abandoned between
            # blocks of keys (dcf.BLOCK, ~30 ms each). One buffer: the keys' words, then the last party's dealt
            # corrections; the first party gets the front of it (a view), so the keys are never copied.
            last_words = np.empty(cw_words + spec.n_dealt * n, dtype=np.uint64)
            words = last_words[:cw_words]
            async with self._gen_lock:
                await self.party.run_in_worker(dcf.gen, r & LOW63, spec.payload(r), DCF_BITS, roots[0], roots[1],
                                               self.party.stop.check, words)
            first = self.compute[0]
            for k, value in enumerate(spec.dealt(r)):
                np.subtract(value, self._stream(first, op, DCF_DEALT + k, shape),
                            out=last_words[cw_words + k * n:cw_words + (k + 1) * n])
            if self.party.is_helper:
                self.party.send(first, op, words, step=DEALER_STEP)
                self.party.send(self.last, op, last_words, step=DEALER_STEP)
                return None
            return self._own_gate(op, n, spec, words if self.party.name == first else last_words)
        helper = self.party.helper
        assert helper is not None
        total = cw_words + (0 if self.party.name == self.compute[0] else spec.n_dealt * n)
        msg = await self.party.recv(helper, op, step=DEALER_STEP, dtype=np.uint64, shape=(total,))
        return self._own_gate(op, n, spec, msg.array)

    def _own_gate(self, op: Op, n: int, spec: GateSpec, words: np.ndarray) -> DcfGate:
        """This party's gate: root seed from its PRG, correction words (and corrections) from the helper."""
        me = self.party.name
        cw_words = n * dcf.words_per_key(DCF_BITS, spec.width)
        root = self._stream(me, op, DCF_ROOT, (n, 2))
        keys = dcf.DcfKeys.from_words(DCF_BITS, spec.width, root, words[:cw_words])
        r = self._stream(me, op, R, (n,))
        if me == self.compute[0]:
            dealt = [self._stream(me, op, DCF_DEALT + k, (n,)) for k in range(spec.n_dealt)]
        else:
            dealt = [words[cw_words + k * n:cw_words + (k + 1) * n] for k in range(spec.n_dealt)]
        return DcfGate(keys, r, dealt)

    async def bits(self, op: Op, n: int, levels: int) -> BitsMaterial | None:
        """Material for the bit-decomposition sign: r (arithmetic and XOR shares), `levels` x 2 binary
        triples, and a random bit rho in both forms. Corrections to the last party: 8 (2 levels + 2) words."""
        shape = (n,)
        and_shape = (levels, 2, n)
        if self._knows_all():
            r = self._sum(op, R, shape)
            a = self._xor_all(op, BITS_AND, and_shape)
            b = self._xor_all(op, BITS_AND + 1, and_shape)
            rho = self._xor_all(op, BITS_RHO_B, shape) & np.uint64(1)
            corr = np.concatenate([
                (r ^ self._xor_all(op, BITS_RB, shape, skip_last=True))[None],
                ((a & b) ^ self._xor_all(op, BITS_AND + 2, and_shape, skip_last=True)).reshape(2 * levels, n),
                (rho - self._sum(op, BITS_RHO_A, shape, skip_last=True))[None],
            ])
            mine = self._own_bits(op, n, levels, corr)
            self._deliver(op, corr)
            return mine
        return await self._receive(op, lambda corr: self._own_bits(op, n, levels, corr), (2 * levels + 2, n))

    def _own_bits(self, op: Op, n: int, levels: int, corr: np.ndarray | None) -> BitsMaterial | None:
        me = self.party.name
        if me not in self.compute:
            return None
        shape, and_shape = (n,), (levels, 2, n)
        last = me == self.last
        assert corr is not None or not last
        return BitsMaterial(
            r=self._stream(me, op, R, shape),
            r_bits=corr[0] if last else self._stream(me, op, BITS_RB, shape),
            and_a=self._stream(me, op, BITS_AND, and_shape),
            and_b=self._stream(me, op, BITS_AND + 1, and_shape),
            and_c=corr[1:1 + 2 * levels].reshape(and_shape) if last else self._stream(me, op, BITS_AND + 2,
                                                                                       and_shape),
            rho_bits=self._stream(me, op, BITS_RHO_B, shape) & np.uint64(1),
            rho=corr[-1] if last else self._stream(me, op, BITS_RHO_A, shape),
        )

    def _xor_all(self, op: Op, purpose: int, shape: tuple[int, ...], skip_last: bool = False) -> np.ndarray:
        names = [name for name in self.compute if not (skip_last and name == self.last)]
        if not names:
            return np.zeros(shape, dtype=np.uint64)
        total = self._stream(names[0], op, purpose, shape)
        for name in names[1:]:
            total ^= self._stream(name, op, purpose, shape)
        return total

    # -- derivation ---------------------------------------------------------------------------------
    def _stream(self, name: str, op: Op, purpose: int, shape: tuple[int, ...]) -> np.ndarray:
        return self._prg[name].ring(shape, op.id, purpose)

    def _sum(self, op: Op, purpose: int, shape: tuple[int, ...], skip_last: bool = False) -> np.ndarray:
        """Sum of the parties' streams, accumulated into the first (PRG arrays are fresh and writable)."""
        names = [name for name in self.compute if not (skip_last and name == self.last)]
        if not names:
            return np.zeros(shape, dtype=np.uint64)
        total = self._stream(names[0], op, purpose, shape)
        for name in names[1:]:
            total += self._stream(name, op, purpose, shape)
        return total

    def _own_part(self, op: Op, pa: int, pb: int, pc: int, shape_a: tuple[int, ...], shape_b: tuple[int, ...],
                  shape_c: tuple[int, ...], last_c: np.ndarray | None) -> Triple | None:
        me = self.party.name
        if me not in self.compute:
            return None
        c = last_c if me == self.last else self._stream(me, op, pc, shape_c)
        assert c is not None
        return Triple(self._stream(me, op, pa, shape_a), self._stream(me, op, pb, shape_b), c)

    def _own_trunc(self, op: Op, shape: tuple[int, ...], corr: np.ndarray | None) -> TruncPair | None:
        me = self.party.name
        if me not in self.compute:
            return None
        r = self._stream(me, op, R, shape)
        if me == self.last:
            assert corr is not None
            return TruncPair(r, corr[0], corr[1])
        return TruncPair(r, self._stream(me, op, R_MSB, shape), self._stream(me, op, R_LOW, shape))

    # -- who sends what -----------------------------------------------------------------------------
    def _knows_all(self) -> bool:
        raise NotImplementedError

    def _deliver(self, op: Op, correction: np.ndarray) -> None:
        raise NotImplementedError

    async def _receive(self, op: Op, finish: Callable[[np.ndarray | None], object], shape: tuple[int, ...]):
        raise NotImplementedError


class HelperMaterial(SeededMaterial):
    """Material dealt by the helper party: seeds at setup, one correction array per op to the last party."""

    def _knows_all(self) -> bool:
        return self.party.is_helper

    def _deliver(self, op: Op, correction: np.ndarray) -> None:
        self.party.send(self.last, op, correction, step=DEALER_STEP)

    async def _receive(self, op, finish, shape):
        if self.party.name != self.last:
            return finish(None)
        assert self.party.helper is not None
        msg = await self.party.recv(self.party.helper, op, step=DEALER_STEP, dtype=np.uint64, shape=shape)
        return finish(msg.array)  # dealer material is offline: its depth does not count as a round

    @staticmethod
    async def setup(party: Party, op: Op) -> HelperMaterial:
        """The helper draws a fresh seed per compute party and sends it over that party's link."""
        helper = party.helper
        if helper is None:
            raise ValueError("this topology has no helper party, which deals the products' randomness; "
                             "add a party with role: helper")
        if party.is_helper:
            seeds = {name: new_seed() for name in party.compute_parties}
            for name, seed in seeds.items():
                party.send(name, op, np.frombuffer(seed, dtype=np.uint8), step=DEALER_STEP)
            return HelperMaterial(party, seeds)
        msg = await party.recv(helper, op, step=DEALER_STEP, dtype=np.uint8, shape=(16,))
        return HelperMaterial(party, {party.name: msg.array.tobytes()})


class LocalDealerMaterial(SeededMaterial):
    """TESTS ONLY: every party derives everything from one shared seed. Offers no secrecy at all."""

    def __init__(self, party: Party, test_seed: bytes):
        seeds = {name: hashlib.blake2b(test_seed + name.encode(), digest_size=16).digest()
                 for name in party.compute_parties}
        super().__init__(party, seeds)
        log.warning("%s: using the in-process test dealer: NOT SECURE", party.name)

    def _knows_all(self) -> bool:
        return True

    def _deliver(self, op: Op, correction: np.ndarray) -> None:
        pass

    async def _receive(self, op, finish, shape):  # pragma: no cover - never called: knows all seeds
        raise AssertionError

