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
DCF_ROOT, DCF_MSB, DCF_RMSB = 10, 11, 12
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
class DcfGate:
    """One compute party's material for the sign gate on N elements (see protocols/comparison.py)."""

    keys: DcfKeys
    r: np.ndarray
    msb: np.ndarray
    r_msb: np.ndarray | None  # shares of r * msb(r), for ReLU


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

    # -- the interface the protocols use -----------------------------------------------------------
    async def triple(self, op: Op, shape_a: tuple[int, ...], shape_b: tuple[int, ...], shape_c: tuple[int, ...],
                     product: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Triple | None:
        """Shares of a, b and c = product(a, b) of shape_c. The dealer gets None after sending its correction."""
        if self._knows_all():
            a = self._sum(op, A, shape_a)
            b = self._sum(op, B, shape_b)
            correction = product(a, b) - self._sum(op, C, shape_c, skip_last=True)
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
            corr = np.stack([msb - self._sum(op, R_MSB, shape, skip_last=True),
                             low - self._sum(op, R_LOW, shape, skip_last=True)])
            mine = self._own_trunc(op, shape, corr)
            self._deliver(op, corr)
            return mine
        return await self._receive(op, lambda corr: self._own_trunc(op, shape, corr), (2, *shape))

    async def dcf_gate(self, op: Op, n: int, relu: bool) -> DcfGate | None:
        """DCF keys for alpha = r mod 2^63 with payload (1 - 2 msb(r)) [and r (1 - 2 msb(r)) for ReLU],
        and shares of r, msb(r) [and r msb(r)]. Two compute parties only."""
        if len(self.compute) != 2:
            raise ValueError("the dcf comparison works with exactly two compute parties; use method 'bits'")
        width = 2 if relu else 1
        extra = 2 if relu else 1
        cw_words = n * dcf.words_per_key(DCF_BITS, width)
        shape = (n,)
        if self._knows_all():
            r = self._sum(op, R, shape)
            msb = np.right_shift(r, np.uint64(63))
            sign = np.uint64(1) - np.uint64(2) * msb
            beta = sign[:, None] if not relu else np.stack([sign, r * sign], axis=1)
            roots = [self._stream(name, op, DCF_ROOT, (n, 2)) for name in self.compute]
            keys0, _ = dcf.gen(r & LOW63, beta, DCF_BITS, roots[0], roots[1])
            words = keys0.correction_words()
            corr = [msb - self._stream(self.compute[0], op, DCF_MSB, shape)]
            if relu:
                corr.append(r * msb - self._stream(self.compute[0], op, DCF_RMSB, shape))
            last_words = np.concatenate([words, *corr])
            if self.party.is_helper:
                self.party.send(self.compute[0], op, words, step=DEALER_STEP)
                self.party.send(self.last, op, last_words, step=DEALER_STEP)
                return None
            mine = words if self.party.name == self.compute[0] else last_words
            return self._own_gate(op, n, relu, mine)
        helper = self.party.helper
        assert helper is not None
        first = self.party.name == self.compute[0]
        total = cw_words + (0 if first else extra * n)
        msg = await self.party.recv(helper, op, step=DEALER_STEP, dtype=np.uint64, shape=(total,))
        return self._own_gate(op, n, relu, msg.array)

    def _own_gate(self, op: Op, n: int, relu: bool, words: np.ndarray) -> DcfGate:
        """This party's gate: root seed from its PRG, correction words (and corrections) from the helper."""
        me = self.party.name
        width = 2 if relu else 1
        cw_words = n * dcf.words_per_key(DCF_BITS, width)
        root = self._stream(me, op, DCF_ROOT, (n, 2))
        keys = dcf.DcfKeys.from_words(DCF_BITS, width, root, words[:cw_words])
        r = self._stream(me, op, R, (n,))
        if me == self.compute[0]:
            msb = self._stream(me, op, DCF_MSB, (n,))
            r_msb = self._stream(me, op, DCF_RMSB, (n,)) if relu else None
        else:
            msb = words[cw_words:cw_words + n]
            r_msb = words[cw_words + n:cw_words + 2 * n] if relu else None
        return DcfGate(keys, r, msb, r_msb)

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
        total = np.zeros(shape, dtype=np.uint64)
        for name in self.compute:
            if not (skip_last and name == self.last):
                total ^= self._stream(name, op, purpose, shape)
        return total

    # -- derivation ---------------------------------------------------------------------------------
    def _stream(self, name: str, op: Op, purpose: int, shape: tuple[int, ...]) -> np.ndarray:
        return self._prg[name].ring(shape, op.id, purpose)

    def _sum(self, op: Op, purpose: int, shape: tuple[int, ...], skip_last: bool = False) -> np.ndarray:
        total = np.zeros(shape, dtype=np.uint64)
        for name in self.compute:
            if not (skip_last and name == self.last):
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

