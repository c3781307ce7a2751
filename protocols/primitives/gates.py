"""One-round gates on a masked value: the parties open x^ = x + r and evaluate one DCF key.

Method "dcf" of every comparison, ReLU and spline (two compute parties). After Boyle et al. (Eurocrypt
2021) and AriaNN (PETS 2022): the helper deals r, DCF keys for alpha = r mod 2^63 (protocols/primitives/dcf.py) and
a few shared values of r; the parties open x^ = x + r (8 bytes per element each way, one round) and
evaluate their key at x^ mod 2^63.

Everything a gate outputs is a polynomial in one secret bit, lt = [x^ mod 2^63 < r mod 2^63] (the DCF's
comparison), whose coefficients are public (functions of x^) or known to the dealer (functions of r).
Since lt is a bit, every such polynomial is affine in lt, so its shares are a public combination of
    dealer-shared values q(r)   and   DCF outputs lt * q(r)   (the payload words).
A gate is written once, as that algebra (`Form`); the dealer's side (the spec) and the parties' side
(`combine`) both come from the one formula, so they cannot drift apart. Monomials with lt whose public
coefficients are proportional share one payload word (so sign needs 1 word, ReLU 2).

Identities used (m = msb(x^), m_r = msb(r), K = 2^(64 - f), R = r >> f or r):
    msb(x) = m XOR m_r XOR lt = m + (1 - 2m)(m_r + lt - 2 m_r lt)
    wrap w = [x^ < r] = (1 - m) lt + (1 - m) m_r - (1 - 2m) m_r lt
    x = x^ - r (mod 2^64)       x = x^ - r + 2^64 (w - msb(x))   (exact, as signed integers)
    floor(x / 2^f) = (x^ >> f) - R + K (w - msb(x)) - c,  c in {0, 1} (the low bits' borrow)
so ReLU with truncation, relu(x) >> f = (1 - msb(x)) floor(x / 2^f), also costs one round, for any x,
with the error of probabilistic truncation: without the borrow c the result is floor(relu(x) / 2^f) or one
unit in the last place above, never below.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, partial

import numpy as np

from protocols.primitives import dcf
from protocols.primitives.core import STOP, WORKERS, Cost, Engine, Env, Exchange, Material, Spec, run_protocol
from protocols.primitives.shared import SharedArray, concatenate

Monomial = frozenset[str]
ONE = np.uint64(1)
TWO = np.uint64(2)
TOP = np.uint64(63)
LOW63 = np.uint64(2**63 - 1)
EMPTY: Monomial = frozenset()
DCF_BITS = 63
DCF_CHUNK = 1 << 15  # elements per dealt chunk: bounded messages (~50 MB) and temporaries at both ends


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


Build = Callable[[np.ndarray, np.ndarray, int], Sequence[Form]]


@dataclass(frozen=True)
class Plan:
    """How a gate's outputs map to payload words and dealt arrays (found by probing its formula)."""

    words: tuple[tuple[tuple[Monomial, int], ...], ...]  # per payload word q: its (monomial without lt, factor k)
    uses: tuple[tuple[tuple[Monomial, int], ...], ...]  # per point: (lead monomial, payload word index)
    dealt: tuple[Monomial, ...]  # monomials without lt, each a shared array

    @property
    def width(self) -> int:
        """DCF payload width: the words, padded to 1 or an even number (protocols/primitives/dcf.py)."""
        w = len(self.words)
        return w if w <= 1 or w % 2 == 0 else w + 1


def lt_symbol(point: int) -> str:
    """The DCF output bit at the gate's point `point`: [(x^ - offset) mod 2^63 < r mod 2^63]."""
    return "lt" if point == 0 else f"lt{point}"


def _lt_in(mono: Monomial) -> str | None:
    found = [s for s in mono if s.startswith("lt")]
    if len(found) > 1:
        raise ValueError("a gate's monomial may hold at most one DCF output bit")
    return found[0] if found else None


@dataclass(frozen=True)
class Gate:
    """A one-round DCF gate: its outputs as Forms of (x^, m = msb(x^), f). One key per element, evaluated
    at each of `offsets`: at (x^ - offset) mod 2^63, giving the bit `lt_symbol(i)` for offset i. (One key
    at several public points is as secure as one: the evaluations are local functions of the key.)"""

    name: str
    build: Build
    uses_r_shift: bool  # R = r >> f (else R = r)
    offsets: tuple[int, ...] = (0,)

    def plan(self, frac: int) -> Plan:
        return _plan(self, frac)

    def value(self, mono: Monomial, r: np.ndarray, frac: int) -> np.ndarray:
        """The dealer's value of a monomial without lt."""
        out = np.ones_like(r)
        if "mr" in mono:
            out = out * (r >> TOP)
        if "R" in mono:
            out = out * ((r >> np.uint64(frac)) if self.uses_r_shift else r)
        return out

    def payload(self, r: np.ndarray, frac: int) -> np.ndarray:
        """The dealer's payload words (N, width): per word, its monomials' values times their factors."""
        plan = self.plan(frac)
        out = np.zeros((r.size, plan.width), dtype=np.uint64)
        for k, word in enumerate(plan.words):
            for mono, factor in word:
                out[:, k] += np.uint64(factor) * self.value(mono, r, frac)
        return out

    def spec(self, n: int, frac: int, compact: bool = False) -> Spec:
        """The dealer's side for n elements: r, each party's root seed, the DCF correction words for
        alpha = r mod 2^63 and the payload words, and shares of every dealt monomial.

        `compact`: the key gives XOR shares of each point's bit lt instead (dcf.gen_bit, 936 B against
        1,536 B and up); the parties open lt ^ rho in a second round, rho a random bit per element and point
        XOR-shared from their streams, and the dealer shares q and rho q for every payload word q the point
        uses, so that lt q = e q + (1 - 2e) rho q with the opened e = lt ^ rho."""
        plan = self.plan(frac)
        width = plan.width

        def keys(env: Env) -> np.ndarray:
            r = env["r"]
            if compact:
                return dcf.gen_bit(r & LOW63, DCF_BITS, env["root"][0], env["root"][1], env.get(STOP),
                                   workers=env.get(WORKERS))[0].correction_words()
            return dcf.gen(r & LOW63, self.payload(r, frac), DCF_BITS, env["root"][0], env["root"][1],
                           env.get(STOP), workers=env.get(WORKERS))[0].correction_words()

        spec = Spec(heavy=True).random("r", (n,)).own("root", (n, 2))
        words = dcf.bit_words_per_key(DCF_BITS) if compact else dcf.words_per_key(DCF_BITS, width)
        spec.public("keys", (n * words,), keys)
        for k, mono in enumerate(plan.dealt):
            if not self.is_mask(mono):
                spec.shared(f"dealt{k}", (n,), partial(self._dealt_value, mono, frac))
        if compact:
            spec.random("rho", (_packed_words(n * len(self.offsets)),), sharing="xor")
            spec.shared("q", (width, n), lambda env: np.ascontiguousarray(self.payload(env["r"], frac).T))
            for point, uses in enumerate(plan.uses):
                for _, k in uses:
                    spec.shared(f"rho_q{point}_{k}", (n,), partial(_rho_times, point, k, (len(self.offsets), n)))
        return spec

    def _dealt_value(self, mono: Monomial, frac: int, env: Env) -> np.ndarray:
        return self.value(mono, env["r"], frac)

    def is_mask(self, mono: Monomial) -> bool:
        """The monomial R when R = r: the parties' shares of the mask r serve, nothing more is dealt."""
        return mono == frozenset(["R"]) and not self.uses_r_shift

    def combine(self, xhat: np.ndarray, frac: int, first: bool, words: Sequence[np.ndarray],
                dealt: Sequence[np.ndarray]) -> list[np.ndarray]:
        """This party's shares of the outputs from the public x^, its DCF outputs at each point (N, width)
        and its dealt shares."""
        plan = self.plan(frac)
        outs = []
        for form in self.build(xhat, xhat >> TOP, frac):
            out = np.zeros(xhat.shape, dtype=np.uint64)
            for mono, coeff in form.terms.items():
                if not mono:
                    if first:
                        out += coeff  # type: ignore[arg-type]
                elif _lt_in(mono) is None:
                    out += coeff * dealt[plan.dealt.index(mono)]  # type: ignore[operator]
            for point, uses in enumerate(plan.uses):
                for lead, k in uses:
                    if lead in form.terms:
                        out += form.terms[lead] * words[point][:, k]  # type: ignore[operator]
            outs.append(out)
        return outs


def _packed_words(bits: int) -> int:
    """uint64 words holding `bits` bits."""
    return -(-bits // 64)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """0/1 values (m,) into (ceil(m / 64),) uint64 words, 64 per word (little-endian bit order)."""
    packed = np.packbits(bits.astype(np.uint8), bitorder="little")
    out = np.zeros(_packed_words(bits.size), dtype=np.uint64)
    out.view(np.uint8)[:packed.size] = packed
    return out


def unpack_bits(words: np.ndarray, m: int) -> np.ndarray:
    """The first m bits of pack_bits' words, as 0/1 uint64 values."""
    return np.unpackbits(words.view(np.uint8), count=m, bitorder="little").astype(np.uint64)


def _rho_times(point: int, k: int, shape: tuple[int, int], env: Env) -> np.ndarray:
    """The dealer's rho_point * q_k (the payload word k of each element, times its mask bit at `point`);
    the mask bits (points, n) are unpacked once per spec, for every (point, word) it deals."""
    if "rho_bits" not in env:
        env["rho_bits"] = unpack_bits(env["rho"], shape[0] * shape[1]).reshape(shape)
    return env["rho_bits"][point] * env["q"][k]


def _probe_points() -> tuple[np.ndarray, np.ndarray]:
    edges = np.array([0, 1, 2**63 - 1, 2**63, 2**64 - 1], dtype=np.uint64)
    rng = np.random.default_rng(20211)
    xhat = np.concatenate([edges, rng.integers(0, 2**64, 59, dtype=np.uint64, endpoint=False)])
    return xhat, xhat >> TOP


@cache
def _plan(gate: Gate, frac: int) -> Plan:
    """Group each point's lt-monomials whose public coefficients (over every output) are proportional, by
    probing the formula on fixed points: each group costs one payload word instead of one per monomial,
    and points that need the same word share it."""
    xhat, m = _probe_points()
    forms = gate.build(xhat, m, frac)
    monos = sorted({mono for f in forms for mono in f.terms}, key=lambda mo: (len(mo), sorted(mo)))

    def coeffs(mono: Monomial) -> np.ndarray:
        return np.concatenate([np.broadcast_to(np.asarray(f.terms.get(mono, np.uint64(0)), np.uint64),
                                               xhat.shape) for f in forms])

    words: list[tuple[tuple[Monomial, int], ...]] = []
    uses: list[tuple[tuple[Monomial, int], ...]] = []
    for point in range(len(gate.offsets)):
        lt = lt_symbol(point)
        groups: list[tuple[np.ndarray, list[tuple[Monomial, int]]]] = []
        for mono in (mo for mo in monos if _lt_in(mo) == lt):
            c = coeffs(mono)
            for rep, members in groups:
                factor = _ratio(rep, c)
                if factor is not None:
                    members.append((mono, factor))
                    break
            else:
                groups.append((c, [(mono, 1)]))
        point_uses = []
        for members in (g for _, g in groups):
            word = tuple(sorted(((mo - {lt}, k) for mo, k in members), key=lambda t: (len(t[0]), sorted(t[0]))))
            if word not in words:
                words.append(word)
            point_uses.append((members[0][0], words.index(word)))
        uses.append(tuple(point_uses))
    dealt = tuple(mo for mo in monos if mo and _lt_in(mo) is None)
    return Plan(tuple(words), tuple(uses), dealt)


def _ratio(rep: np.ndarray, c: np.ndarray) -> int | None:
    """k with c = k * rep (mod 2^64) everywhere, if rep has an odd (invertible) entry; else None."""
    odd = np.flatnonzero(rep & ONE)
    if odd.size == 0:
        return None
    i = odd[0]
    k = (int(c[i]) * pow(int(rep[i]), -1, 2**64)) % 2**64
    with np.errstate(over="ignore"):
        return k if np.array_equal(rep * np.uint64(k), c) else None


def evaluate(ctx: Engine, gate: Gate, x: SharedArray, frac: int, out_fracs: Sequence[int],
             label: str, compact: bool = False) -> list[SharedArray]:
    """Run `gate` on every element of x: one online round (two if `compact`: smaller keys, see
    Gate.spec). `frac` is the gate's shift parameter, and `out_fracs` the fractional bits of each output.
    Large batches are dealt in chunks of DCF_CHUNK."""
    flat = x.reshape(-1)
    n = flat.size
    bounds = [(lo, min(n, lo + DCF_CHUNK)) for lo in range(0, n, DCF_CHUNK)] or [(0, 0)]
    parts = [_chunk(ctx, gate, flat[lo:hi], frac, out_fracs, label, compact) for lo, hi in bounds]
    outs = parts[0] if len(parts) == 1 else [concatenate([p[k] for p in parts]) for k in range(len(out_fracs))]
    return [o.reshape(x.shape) for o in outs]


async def _compact_words(io: Exchange, gate: Gate, plan: Plan, mat: Material, xhat: np.ndarray) -> list[np.ndarray]:
    """Shares of lt * q for every point and payload word, from the compact key's XOR shares of each
    point's bit lt: opens e = lt ^ rho (one round, a bit per element and point) and combines the dealt
    shares of q and rho q."""
    n = xhat.size
    keys = dcf.BitKeys.from_words(DCF_BITS, mat.root, mat.keys)
    lts = [dcf.eval_bit(io.index, keys, (xhat - np.uint64(offset % 2**64)) & LOW63) for offset in gate.offsets]
    opened = await io.open(pack_bits(np.concatenate(lts)) ^ mat.rho, step=1, xor=True)
    e = unpack_bits(opened, n * len(gate.offsets)).reshape(len(gate.offsets), n)
    words = []
    for point, uses in enumerate(plan.uses):
        out = np.zeros((n, plan.width), dtype=np.uint64)
        flip = ONE - TWO * e[point]  # 1 - 2e mod 2^64
        for _, k in uses:
            out[:, k] = e[point] * mat.q[k] + flip * mat[f"rho_q{point}_{k}"]
        words.append(out)
    return words


def _chunk(ctx: Engine, gate: Gate, x: SharedArray, frac: int, out_fracs: Sequence[int],
           label: str, compact: bool) -> list[SharedArray]:
    n = x.size
    plan = gate.plan(frac)

    async def body(io: Exchange, mat: Material, xs: np.ndarray) -> tuple[np.ndarray, ...]:
        xhat = await io.open(xs + mat.r)
        if compact:
            words = await _compact_words(io, gate, plan, mat, xhat)
        else:
            keys = dcf.DcfKeys.from_words(DCF_BITS, plan.width, mat.root, mat.keys)
            words = [dcf.eval_dcf(io.index, keys, (xhat - np.uint64(offset % 2**64)) & LOW63) if n
                     else np.zeros((0, plan.width), np.uint64) for offset in gate.offsets]
        dealt = [mat.r if gate.is_mask(mono) else mat[f"dealt{k}"] for k, mono in enumerate(plan.dealt)]
        return tuple(gate.combine(xhat, frac, io.first, words, dealt))

    def plain(xv: np.ndarray) -> tuple[np.ndarray, ...]:
        # the gate's meaning: its formula with the mask r = 0 (then every DCF bit and dealt value is 0)
        zero_words = [np.zeros((n, plan.width), np.uint64) for _ in gate.offsets]
        zero_dealt = [np.zeros(n, np.uint64) for _ in plan.dealt]
        return tuple(gate.combine(np.asarray(xv, np.uint64).ravel(), frac, True, zero_words, zero_dealt))

    cost = Cost(2, 2, 8 * n + 8 * _packed_words(n * len(gate.offsets))) if compact else Cost(1, 1, 8 * n)
    return run_protocol(ctx, label, gate.spec(n, frac, compact), body, [x],
                        [((n,), f) for f in out_fracs], plain=plain, cost=cost)


# -- the gates ------------------------------------------------------------------------------------

def _msb(m: np.ndarray) -> Form:
    lt, mr = Form.sym("lt"), Form.sym("mr")
    return m + (ONE - TWO * m) * (mr + lt - TWO * mr * lt)


def _sign(xhat: np.ndarray, m: np.ndarray, frac: int) -> list[Form]:
    return [_msb(m)]


def _relu(xhat: np.ndarray, m: np.ndarray, frac: int) -> list[Form]:
    x = xhat - Form.sym("R")  # x = x^ - r in the ring
    return [(ONE - _msb(m)) * x]


def _sign_relu(xhat: np.ndarray, m: np.ndarray, frac: int) -> list[Form]:
    msb = _msb(m)
    return [msb, (ONE - msb) * (xhat - Form.sym("R"))]


def _relu_trunc(xhat: np.ndarray, m: np.ndarray, frac: int) -> list[Form]:
    lt, mr, shifted_r = Form.sym("lt"), Form.sym("mr"), Form.sym("R")
    msb = _msb(m)
    wrap = (ONE - m) * lt + (ONE - m) * mr - (ONE - TWO * m) * mr * lt
    k = np.uint64(1 << (64 - frac)) if frac else np.uint64(0)
    trunc = (xhat >> np.uint64(frac)) - shifted_r + k * (wrap - msb)
    return [(ONE - msb) * trunc]


SIGN = Gate("sign", _sign, uses_r_shift=False)
"""msb(x) = [x < 0]: 1 payload word."""
RELU = Gate("relu", _relu, uses_r_shift=False)
"""max(x, 0), exact for every ring value."""
SIGN_RELU = Gate("sign_relu", _sign_relu, uses_r_shift=False)
"""([x < 0], max(x, 0)) from one key (argmax's tree)."""
def _is_zero(xhat: np.ndarray, m: np.ndarray, frac: int) -> list[Form]:
    # x == 0 iff z == alpha (z = x^ mod 2^63, alpha = r mod 2^63) and m == m_r. [z == alpha] = [z - 1 < alpha]
    # - [z < alpha], except at z = 0, where [z - 1 < alpha] = [2^63 - 1 < alpha] = 0 and [0 == alpha] =
    # 1 - [0 < alpha]: so add the public [z == 0]. Then [m == m_r] = (1 - m) + (2m - 1) m_r.
    at_zero = ((xhat & LOW63) == 0).astype(np.uint64)
    eq_low = at_zero + Form.sym(lt_symbol(1)) - Form.sym(lt_symbol(0))
    return [eq_low * ((ONE - m) + (TWO * m - ONE) * Form.sym("mr"))]


def _sign_relu_trunc(xhat: np.ndarray, m: np.ndarray, frac: int) -> list[Form]:
    return [_msb(m), *_relu_trunc(xhat, m, frac)]


RELU_TRUNC = Gate("relu_trunc", _relu_trunc, uses_r_shift=True)
"""max(x, 0) >> f: floor, or one unit in the last place above; e.g. after a product kept at 2f bits."""
SIGN_RELU_TRUNC = Gate("sign_relu_trunc", _sign_relu_trunc, uses_r_shift=True)
"""([x < 0], max(x, 0) >> f) from one key: a layer's ReLU with its truncation, the bit kept for the backward
pass (protocols/applications/training.py)."""
IS_ZERO = Gate("eq", _is_zero, uses_r_shift=False, offsets=(0, 1))
"""[x == 0], exact for every ring value: one key (payload 1, m_r) at two points."""


# -- piecewise polynomials (splines): protocols/interface/functions.py -------------------------------------------

POWERS = ("", "R", "R2", "R3")
"""Dealer symbols r^e (e = 0..3): a spline piece of degree d <= 3 in t = x - c = (x^ - c) - r needs them."""


@dataclass(frozen=True)
class Piecewise:
    """Ring-encoded piecewise polynomials of one input, sharing their breakpoints.

    Interval j (0..K) is [a_j, a_(j+1)) with a_0 = -inf, a_(K+1) = +inf; on it output o is
    sum_i coeffs[o][j][i] * t^i with t = x - centers[j], all ring integers, so that the output's ring
    value is its real value times 2^scales[o] (the caller fitted and encoded them; protocols/interface/functions.py)."""

    name: str
    breaks: tuple[int, ...]
    centers: tuple[int, ...]
    coeffs: tuple[tuple[tuple[int, ...], ...], ...]
    scales: tuple[int, ...]

    @property
    def degree(self) -> int:
        return max(len(row) for out in self.coeffs for row in out) - 1


def shifted(coeffs: Sequence[int], shift: np.ndarray) -> list[np.ndarray]:
    """Coefficients of P(y + shift) in powers of y, mod 2^64: sum over i >= e of p_i C(i, e) shift^(i-e)."""
    d = len(coeffs) - 1
    with np.errstate(over="ignore"):
        pw = [np.ones_like(shift)]
        for _ in range(d):
            pw.append(pw[-1] * shift)
        out = []
        for e in range(d + 1):
            acc = np.zeros_like(shift)
            for i in range(e, d + 1):
                if coeffs[i]:
                    acc = acc + np.uint64((coeffs[i] * math.comb(i, e)) % 2**64) * pw[i - e]
            out.append(acc)
    return out


def _poly_in_r(coeffs: Sequence[int], v: np.ndarray) -> Form:
    """P(v - r) as a Form in the dealer symbols r^e (v public per element)."""
    form = Form()
    for e, c in enumerate(shifted(coeffs, v)):
        if not any(coeffs[e:]):
            break  # structurally zero: no payload word for it
        c = np.negative(c) if e % 2 else c  # (-r)^e
        form = form + (Form.const(c) if e == 0 else c * Form.sym(POWERS[e]))
    return form


def _piecewise(table: Piecewise, xhat: np.ndarray, m: np.ndarray, frac: int) -> list[Form]:
    # sum_j [x in interval j] P_j = P_K + sum_k [x < a_k] (P_(k-1) - P_k); [x < a_k] = msb(x - a_k), where
    # x - a_k = (x^ - a_k) - r is masked by the same r: the key's evaluation at offset a_k gives its lt.
    mr = Form.sym("mr")
    with np.errstate(over="ignore"):
        forms = []
        for coeffs in table.coeffs:
            last = len(table.breaks)
            out = _poly_in_r(coeffs[last], xhat - np.uint64(table.centers[last] % 2**64))
            for k, a in enumerate(table.breaks):
                below = _poly_in_r(coeffs[k], xhat - np.uint64(table.centers[k] % 2**64))
                above = _poly_in_r(coeffs[k + 1], xhat - np.uint64(table.centers[k + 1] % 2**64))
                mk = (xhat - np.uint64(a % 2**64)) >> TOP
                lt = Form.sym(lt_symbol(k))
                msb = mk + (ONE - TWO * mk) * (mr + lt - TWO * mr * lt)
                out = out + msb * (below - above)
            forms.append(out)
    return forms


@dataclass(frozen=True)
class PolyGate(Gate):
    """A spline gate: the dealer values are msb(r) and the powers r, r^2, r^3 (symbols R, R2, R3).

    Its payload is known in closed form: at every breakpoint the DCF bit enters only through
    msb = m + (1 - 2m)(mr + lt (1 - 2 mr)), so lt r^e and lt mr r^e always come as lt r^e (1 - 2 mr): one
    word per power of r (degree + 1 words), shared by all breakpoints. (Probing would miss the pairing
    wherever a coefficient is even: it needs an odd entry to find the ratio.)"""

    degree: int = 3

    def plan(self, frac: int) -> Plan:
        return _poly_plan(self, frac)

    def value(self, mono: Monomial, r: np.ndarray, frac: int) -> np.ndarray:
        out = np.ones_like(r)
        with np.errstate(over="ignore"):
            if "mr" in mono:
                out = out * (r >> TOP)
            for e, sym in enumerate(POWERS[1:], start=1):
                if sym in mono:
                    for _ in range(e):
                        out = out * r
        return out


def _power(e: int, *extra: str) -> Monomial:
    return frozenset([*extra, POWERS[e]] if e else extra)


@cache
def _poly_plan(gate: PolyGate, frac: int) -> Plan:
    words = tuple(((_power(e), 1), (_power(e, "mr"), 2**64 - 2)) for e in range(gate.degree + 1))
    uses = tuple(tuple((_power(e, lt_symbol(k)), e) for e in range(gate.degree + 1))
                 for k in range(len(gate.offsets)))
    return Plan(words, uses, _plan(gate, frac).dealt)


@cache
def spline_gate(table: Piecewise) -> PolyGate:
    """The one-round gate evaluating `table`: one DCF key per element, evaluated at every breakpoint."""
    return PolyGate(table.name, partial(_piecewise, table), uses_r_shift=False, offsets=table.breaks,
                    degree=table.degree)
