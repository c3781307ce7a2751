"""One-round gates on a masked value: the parties open x^ = x + r and evaluate one DCF key.

Everything a gate outputs is a polynomial in one secret bit, lt = [x^ mod 2^63 < r mod 2^63] (the DCF's
comparison), whose coefficients are public (functions of x^) or known to the dealer (functions of r).
Since lt is a bit, every such polynomial is affine in lt, so its shares are a public combination of
    dealer-shared values q(r)   and   DCF outputs lt * q(r)   (a payload word q per monomial).
This module writes each gate as that algebra (`Form`): the dealer's side (`GateSpec`) and the parties'
side (`combine`) come from one formula, so they cannot drift apart.

Identities used (m = msb(x^), m_r = msb(r), K = 2^(64 - f), R = r >> f):
    msb(x) = m XOR m_r XOR lt = m + (1 - 2m)(m_r + lt - 2 m_r lt)
    wrap w = [x^ < r] = (1 - m) lt + (1 - m) m_r - (1 - 2m) m_r lt
    x = x^ - r + 2^64 (w - msb(x))                       (exact, as signed integers)
    floor(x / 2^f) = (x^ >> f) - R + K (w - msb(x)) - c,  c in {0, 1} (the low bits' borrow)
so ReLU with truncation, relu(x) >> f = (1 - msb(x)) floor(x / 2^f), also costs one round, for any x,
with the error of probabilistic truncation: without the borrow c the result is floor(relu(x) / 2^f) or one
unit in the last place above, never below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from protocols.material import GateSpec

Monomial = frozenset[str]
ONE = np.uint64(1)
TWO = np.uint64(2)
EMPTY: Monomial = frozenset()


class Form:
    """A polynomial over the symbols lt, mr (bits, idempotent) and R (dealer value, at most linear),
    with uint64 coefficients (public per-element arrays or scalars), arithmetic mod 2^64."""

    __array_ufunc__ = None  # `ndarray * Form` must use Form's reflected operators

    def __init__(self, terms: dict[Monomial, object] | None = None):
        self.terms: dict[Monomial, object] = dict(terms or {})

    @staticmethod
    def sym(name: str) -> Form:
        return Form({frozenset([name]): ONE})

    @staticmethod
    def const(value: object) -> Form:
        return Form({EMPTY: np.asarray(value, dtype=np.uint64) if not isinstance(value, np.uint64) else value})

    def __add__(self, other: Form | object) -> Form:
        other = other if isinstance(other, Form) else Form.const(other)
        out = dict(self.terms)
        for mono, c in other.terms.items():
            out[mono] = out[mono] + c if mono in out else c  # type: ignore[operator]
        return Form(out)

    __radd__ = __add__

    def __neg__(self) -> Form:
        return Form({mono: np.negative(c) for mono, c in self.terms.items()})  # type: ignore[call-overload]

    def __sub__(self, other: Form | object) -> Form:
        return self + (-(other if isinstance(other, Form) else Form.const(other)))

    def __rsub__(self, other: object) -> Form:
        return Form.const(other) - self

    def __mul__(self, other: Form | object) -> Form:
        other = other if isinstance(other, Form) else Form.const(other)
        out: dict[Monomial, object] = {}
        for m1, c1 in self.terms.items():
            for m2, c2 in other.terms.items():
                if "R" in m1 and "R" in m2:
                    raise ValueError("a gate may be at most linear in the dealer value R")
                mono = m1 | m2
                c = c1 * c2  # type: ignore[operator]
                out[mono] = out[mono] + c if mono in out else c  # type: ignore[operator]
        return Form(out)

    __rmul__ = __mul__


@dataclass(frozen=True)
class Gate:
    """A one-round DCF gate: its output as a Form of (x^, m, f), and the monomials it needs."""

    name: str
    build: Callable[[np.ndarray, np.ndarray, int], Form]
    uses_r_shift: bool  # R = r >> f (else R = r)

    def monomials(self) -> tuple[list[Monomial], list[Monomial]]:
        """(monomials with lt: one payload word each, monomials without: dealt), from a symbolic probe."""
        probe = self.build(np.zeros(1, np.uint64), np.zeros(1, np.uint64), 1) + \
            self.build(np.ones(1, np.uint64), np.ones(1, np.uint64), 1)
        monos = sorted(probe.terms, key=lambda m: (len(m), sorted(m)))
        return [m for m in monos if "lt" in m], [m for m in monos if m and "lt" not in m]

    def spec(self, frac: int) -> GateSpec:
        """What the dealer deals: payload q(r) for each lt-monomial, shares of each other monomial."""
        with_lt, dealt = self.monomials()

        def value(mono: Monomial, r: np.ndarray) -> np.ndarray:
            out = np.ones_like(r)
            if "mr" in mono:
                out = out * (r >> np.uint64(63))
            if "R" in mono:
                out = out * ((r >> np.uint64(frac)) if self.uses_r_shift else r)
            return out

        return GateSpec(
            name=self.name, width=len(with_lt), n_dealt=len(dealt),
            payload=lambda r: np.stack([value(m - {"lt"}, r) for m in with_lt], axis=1),
            dealt=lambda r: [value(m, r) for m in dealt],
        )

    def combine(self, xhat: np.ndarray, frac: int, first: bool, dcf_out: np.ndarray,
                dealt: list[np.ndarray]) -> np.ndarray:
        """This party's share of the output from the public x^, its DCF outputs and its dealt shares."""
        with_lt, dealt_monos = self.monomials()
        shares = {m: dcf_out[:, k] for k, m in enumerate(with_lt)}
        shares.update(zip(dealt_monos, dealt, strict=True))
        form = self.build(xhat, xhat >> np.uint64(63), frac)
        out = np.zeros(xhat.shape, dtype=np.uint64)
        for mono, coeff in form.terms.items():
            if not mono:
                if first:
                    out += coeff  # type: ignore[arg-type]
            else:
                out += coeff * shares[mono]  # type: ignore[operator]
        return out


def _msb(m: np.ndarray) -> Form:
    lt, mr = Form.sym("lt"), Form.sym("mr")
    return m + (ONE - TWO * m) * (mr + lt - TWO * mr * lt)


def _relu_trunc(xhat: np.ndarray, m: np.ndarray, frac: int) -> Form:
    lt, mr, shifted_r = Form.sym("lt"), Form.sym("mr"), Form.sym("R")
    msb = _msb(m)
    wrap = (ONE - m) * lt + (ONE - m) * mr - (ONE - TWO * m) * mr * lt
    k = np.uint64(1 << (64 - frac)) if frac else np.uint64(0)
    trunc = (xhat >> np.uint64(frac)) - shifted_r + k * (wrap - msb)
    return (ONE - msb) * trunc


RELU_TRUNC = Gate("relu_trunc", _relu_trunc, uses_r_shift=True)
