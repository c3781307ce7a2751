"""Distributed comparison function (DCF), batched over numpy arrays: no Python loop per element.

Boyle, Chandran, Gilboa, Gupta, Ishai, Kumar, Rathee, "Function Secret Sharing for Mixed-Mode and
Fixed-Point Secure Computation", Eurocrypt 2021 (ePrint 2020/1392), Fig. 1: a GGM-tree construction.
Gen(alpha, beta) gives two keys; Eval(b, key_b, x) gives additive shares (mod 2^64) of
    f(x) = beta if x < alpha else 0,      x, alpha in [0, 2^n), beta in Z_2^64 ^ w.
Both keys share the correction words; only the root seed differs.

The tree is walked from the most significant bit, one level at a time for a block of keys: each level
expands every seed with fixed-key AES in Matyas-Meyer-Oseas mode (G_j(s) = AES_k(s ^ j) ^ s ^ j, j the
block index; a correlation-robust hash with a public key, the seeds being the secrets) in a single ECB
call over the block. Per level and element: 2 + w AES blocks (seed and control bit left and right, w
payload words left and right; one block holds both words when w = 1); one more block at the leaf.

Speed: keys are generated for both parties at once ((2, C, ...) arrays) in blocks of C keys small enough
to stay in cache, with selections written as masks (x ^ ((x ^ y) & -bit)) rather than np.where, and AES
through `update_into` on preallocated buffers. A block of keys is the unit of work, so a caller can stop
between blocks, and `generate` can split whole blocks across worker processes (AES holds the GIL).

Key size per element and party: n (16 + 8w) + 8w + 16 (control bits) bytes, plus a 16-byte root seed
each party derives from its PRG seed; n = 63, w = 1: 1,536 B. Control bits are stored at bit position
n - 1 - level, where x's bit for that level is, so evaluation selects all levels' bits in two passes.
Not smaller: early termination and 1-bit outputs yield XOR shares of the comparison bit, and the gates
here need arithmetic shares in the same round; the 8-byte payload correction per level and word is what
masks the difference of the parties' pseudorandom payload words, so it cannot be shortened.

Where XOR shares of [x < alpha] will do, `gen_bit` / `eval_bit` (below) are that compact variant: one AES
block per child (control bit, value bit and a 126-bit seed), the last 7 levels folded into one 128-bit
leaf block; 2 (n - 7) + 5 words per key, 936 B at n = 63, and about half the AES blocks of the above
(n = 63: gen 226 per key for both parties against 380, eval 57 against 127).
The construction (expansion, tweaks, corrections) is the one above; only the order of work and the
layout of the words differ from a per-party implementation, so its security argument is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mpc.workers import RangeFn, WorkerPool

# A fixed, public AES key: the PRG's security rests on the seeds, as in fixed-key MMO constructions.
_FIXED_KEY = bytes.fromhex("6d70632d6463662d66697865642d6b65")
_AES = Cipher(algorithms.AES(_FIXED_KEY), modes.ECB())
# Convert's tweaks (j, 1): distinct from every expansion tweak (j, 0), which is XORed into the low word.
_CONVERT_TWEAKS = np.stack([np.arange(8, dtype=np.uint64), np.ones(8, dtype=np.uint64)], axis=1)
ONE = np.uint64(1)
CLEAR_LSB = np.uint64(0xFFFF_FFFF_FFFF_FFFE)
# Keys per block of work: the working set (a few arrays of 2 x BLOCK x 3 AES blocks) stays in L2.
BLOCK = 8192


@dataclass(frozen=True)
class DcfKeys:
    """A batch of N keys for one party: root seeds (N, 2) and the correction words the parties share,
    one flat uint64 array as it travels (so neither the dealer nor a party copies it):

    s_cw (n, N, 2), then v_cw (n, w, N), t_cw (2, N) with bit n - 1 - i of row 0 / 1 the left / right
    control correction of level i, final (w, N).
    """

    bits: int
    width: int
    seeds: np.ndarray
    words: np.ndarray

    def __post_init__(self) -> None:
        want = self.seeds.shape[0] * words_per_key(self.bits, self.width)
        if self.words.size != want:
            raise ValueError(f"DCF correction words: {self.words.size} words, expected {want}")

    def _part(self, k: int) -> np.ndarray:
        return _layout(self.words, self.seeds.shape[0], self.bits, self.width)[k]

    @property
    def s_cw(self) -> np.ndarray:
        return self._part(0)

    @property
    def v_cw(self) -> np.ndarray:
        return self._part(1)

    @property
    def t_cw(self) -> np.ndarray:
        return self._part(2)

    @property
    def final(self) -> np.ndarray:
        return self._part(3)

    def correction_words(self) -> np.ndarray:
        """Everything but the root seed, as sent (level-major: each level's words are contiguous)."""
        return self.words

    @staticmethod
    def from_words(bits: int, width: int, seeds: np.ndarray, words: np.ndarray) -> DcfKeys:
        return DcfKeys(bits, width, seeds, words)


def words_per_key(bits: int, width: int) -> int:
    return bits * (2 + width) + 2 + width


def _layout(words: np.ndarray, n: int, bits: int, width: int) -> tuple[np.ndarray, ...]:
    """Views of n keys' flat words: s_cw (bits, n, 2), v_cw (bits, w, n), t_cw (2, n), final (w, n)."""
    sizes = [bits * n * 2, bits * width * n, 2 * n, width * n]
    shapes = [(bits, n, 2), (bits, width, n), (2, n), (width, n)]
    parts, lo = [], 0
    for size, shape in zip(sizes, shapes, strict=True):
        parts.append(words[lo:lo + size].reshape(shape))
        lo += size
    return tuple(parts)


class _Mmo:
    """AES_k(x) ^ x over 128-bit rows through one reused ECB encryptor (ECB is stateless, so one
    encryptor serves every call; one per thread, since an encryptor is not shared across threads)."""

    def __init__(self) -> None:
        self._enc = _AES.encryptor()

    def __call__(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """x (..., 2) uint64 C-contiguous; `out` a flat uint64 buffer of at least x.size + 2 words
        (update_into wants 15 spare bytes). Returns a view of `out` shaped like x."""
        if x.size == 0:
            return x.copy()
        self._enc.update_into(x.data.cast("B"), out.data.cast("B"))
        res = out[: x.size].reshape(x.shape)
        res ^= x
        return res


def _payload_blocks(width: int) -> int:
    """AES blocks holding one side's w payload words (both sides share one block when w = 1)."""
    if width != 1 and width % 2:
        raise ValueError("DCF payload width must be 1 or even")
    return 1 if width == 1 else width // 2


def _convert(mmo: _Mmo, seeds: np.ndarray, width: int) -> np.ndarray:
    """Leaf seeds (..., 2) to w pseudorandom ring words each (MMO blocks with tweaks distinct from the
    expansion's)."""
    blocks = max(1, (width + 1) // 2)
    x = seeds[..., None, :] ^ _CONVERT_TWEAKS[:blocks]
    out = mmo(x, np.empty(x.size + 2, dtype=np.uint64))
    return out.reshape(*seeds.shape[:-1], 2 * blocks)[..., :width]


def _dup(v: np.ndarray) -> np.ndarray:
    """(..., n) -> (..., n, 2) with both words equal: a per-element mask for 128-bit rows, built by
    two strided copies (broadcasting over a last axis of 2 is several times slower in numpy)."""
    out = np.empty((*v.shape, 2), dtype=np.uint64)
    out[..., 0] = v
    out[..., 1] = v
    return out


def gen(alpha: np.ndarray, beta: np.ndarray, bits: int, seed0: np.ndarray, seed1: np.ndarray,
        stop: Callable[[], None] | None = None, out: np.ndarray | None = None,
        workers: WorkerPool | None = None) -> tuple[DcfKeys, DcfKeys]:
    """Keys for f(x) = beta if x < alpha else 0. alpha (N,) < 2^bits, beta (N, w), seeds (N, 2) uint64.

    Works in blocks of BLOCK keys; `stop()` is called between blocks and may raise to abandon the work.
    `out`, if given, is the flat uint64 array of N * words_per_key(bits, w) words to write the correction
    words into (e.g. the front of a message buffer). With `workers`, the keys are generated in the pool's
    processes (see `generate`): the same words, byte for byte."""
    alpha = np.asarray(alpha, dtype=np.uint64)
    beta = np.asarray(beta, dtype=np.uint64)
    n_elems, width = beta.shape
    _payload_blocks(width)
    words = generate(_gen_range, n_elems, n_elems * words_per_key(bits, width), (alpha, beta, seed0, seed1),
                     (bits,), stop, out, workers)
    return DcfKeys(bits, width, seed0.copy(), words), DcfKeys(bits, width, seed1.copy(), words)


def generate(fill: RangeFn, n: int, n_words: int, inputs: tuple[np.ndarray, ...], params: tuple[object, ...],
             stop: Callable[[], None] | None, out: np.ndarray | None, workers: WorkerPool | None) -> np.ndarray:
    """The flat words of n keys from a block-wise generator, `fill(words, n, lo, hi, *inputs[lo:hi], *params,
    stop=None)`, which writes every word of keys lo:hi into `words` (all n keys' words, laid out as they
    travel) in blocks of BLOCK, calling stop() between blocks. Into `out` if given.

    Without workers, in this thread. With them, split into contiguous ranges of whole blocks, one per worker
    process, each writing its keys' words straight into the pool's shared memory (only the inputs are
    pickled), then copied once into `out` or a new array: a key's words do not depend on how the keys are
    split, so they are byte-identical. Stopping the run terminates the workers."""
    if workers is None or n <= BLOCK:  # one block: nothing to split, no round trip to the workers
        words = np.empty(n_words, dtype=np.uint64) if out is None else out
        fill(words, n, 0, n, *inputs, *params, stop=stop)
        return words
    if stop is not None:
        stop()
    return workers.fill(fill, n, n_words, inputs, params, align=BLOCK, out=out)


def _gen_range(words: np.ndarray, n: int, lo: int, hi: int, alpha: np.ndarray, beta: np.ndarray,
               seed0: np.ndarray, seed1: np.ndarray, bits: int, stop: Callable[[], None] | None = None) -> None:
    """Keys lo:hi of n into `words`, laid out as DcfKeys' words for all n keys; alpha, beta (C, w) and the
    seeds are keys lo:hi's only (a worker process gets just its range's inputs from `generate`)."""
    width = beta.shape[1]
    s_cws, v_cws, t_cw, final = _layout(words, n, bits, width)
    beta_t = np.ascontiguousarray(beta.T)
    t_cw[:, lo:hi] = 0
    mmo = _Mmo()
    for start in range(0, hi - lo, BLOCK):
        if stop is not None:
            stop()
        end = min(hi - lo, start + BLOCK)
        a, b = lo + start, lo + end  # in the whole batch's columns
        _gen_block(mmo, alpha[start:end], beta_t[:, start:end], bits, np.stack([seed0[start:end], seed1[start:end]]),
                   s_cws[:, a:b], v_cws[:, :, a:b], t_cw[:, a:b], final[:, a:b])


def _gen_block(mmo: _Mmo, alpha: np.ndarray, beta: np.ndarray, bits: int, seeds: np.ndarray,
               s_cws: np.ndarray, v_cws: np.ndarray, t_cw: np.ndarray, final: np.ndarray) -> None:
    """One block of C keys, both parties together: seeds (2, C, 2), beta (w, C); writes the correction
    words into the given views.

    Invariant per level (Boyle et al., Fig. 1): on alpha's path the parties' seeds differ and their
    control bits t0 ^ t1 = 1 (so only t0 is kept); off it seeds and bits are equal, so the subtree's
    outputs cancel. v_alpha
    is the difference of the payload sums the parties accumulated on the path so far."""
    width, n = beta.shape
    blocks = 2 + (1 if width == 1 else width)
    t0 = np.zeros(n, dtype=np.uint64)  # party 0's control bit on alpha's path; party 1's is t0 ^ 1
    v_alpha = np.zeros((width, n), dtype=np.uint64)
    x = np.empty((blocks, 2, n, 2), dtype=np.uint64)  # AES input: block j of every seed, s ^ j
    out = np.empty(x.size + 2, dtype=np.uint64)
    s = x[0]  # the current seeds (LSB cleared), written in place each level
    s[:] = seeds
    s[:, :, 0] &= CLEAR_LSB
    tweaks = np.arange(1, blocks, dtype=np.uint64)[:, None, None]
    left_one = np.array([[1], [0]], dtype=np.uint64)  # the left control correction has a ^ 1
    for level in range(bits):
        shift = np.uint64(bits - 1 - level)
        a = (alpha >> shift) & ONE
        am = np.negative(a)
        x[1:] = s
        x[1:, :, :, 0] ^= tweaks
        g = mmo(x, out)  # g[0] / g[1] left / right seed with its control bit as LSB, g[2:] payload words
        # lose = the child off alpha's path: right if a = 0, left if a = 1; keep = the other
        flip = g[0] ^ g[1]
        flip &= _dup(am)
        s_lose = g[1] ^ flip
        s_cw = np.bitwise_xor(s_lose[0], s_lose[1], out=s_cws[level])
        s_cw[:, 0] &= CLEAR_LSB
        tcw = g[:2, 0, :, 0] ^ g[:2, 1, :, 0]  # (side, C): t_side0 ^ t_side1 in the LSB
        if width == 1:
            v_l, v_r = g[2, :, :, 0][:, None], g[2, :, :, 1][:, None]  # (party, 1, C)
        else:
            half = width // 2  # blocks 2 .. 2 + w/2 hold the left words, then the right words
            v_l = g[2:2 + half].transpose(1, 0, 3, 2).reshape(2, width, n)
            v_r = g[2 + half:].transpose(1, 0, 3, 2).reshape(2, width, n)
        # party 1 minus party 0: d = (l1 - l0) - (r1 - r0); lose - keep = d if a else -d
        rd = v_r[1] - v_r[0]
        d = v_l[1] - v_l[0]
        d -= rd
        dm = d & am
        beta_a = beta & am  # the alpha-bit-1 case puts beta in the left (lose) subtree
        e = rd + dm
        e -= v_alpha
        e += beta_a
        m1 = t0 - ONE  # -t1: (-1)^t1 * e = (e ^ m1) - m1
        e ^= m1
        np.subtract(e, m1, out=v_cws[level])
        v_alpha = dm + dm
        v_alpha -= d
        v_alpha += beta_a
        tcw &= ONE
        tcw ^= a
        tcw ^= left_one
        t_cw |= tcw << shift
        tcw_keep = tcw[0] ^ ((tcw[0] ^ tcw[1]) & a)
        np.bitwise_xor(g[0], flip, out=s)  # keep = left ^ flip
        t_keep0 = s[0, :, 0] & ONE
        corr = s_cw & _dup(np.negative(t0))  # the correction goes to the party whose bit is 1
        s[0] ^= corr
        corr ^= s_cw
        s[1] ^= corr
        s[:, :, 0] &= CLEAR_LSB
        t0 &= tcw_keep
        t0 ^= t_keep0
    conv = _convert(mmo, s, width)  # (party, C, w)
    e = conv[1].T - conv[0].T - v_alpha
    m1 = t0 - ONE
    final[:] = (e ^ m1) - m1


def eval_dcf(party: int, keys: DcfKeys, x: np.ndarray) -> np.ndarray:
    """Party `party`'s (0 or 1) additive shares (N, w) of f(x) for public x (N,) < 2^bits.

    Expands only the child on x's path: 2 AES blocks per level and element for w = 1 (the seed block
    of that side, and the payload block holding both sides' words), 1 + w / 2 otherwise.
    """
    x = np.asarray(x, dtype=np.uint64)
    out = np.empty((keys.width, x.size), dtype=np.uint64)
    mmo = _Mmo()
    for lo in range(0, x.size, BLOCK):
        hi = min(x.size, lo + BLOCK)
        _eval_block(mmo, party, keys, lo, hi, x[lo:hi], out[:, lo:hi])
    return out.T


def _eval_block(mmo: _Mmo, party: int, keys: DcfKeys, lo: int, hi: int, x: np.ndarray, v: np.ndarray) -> None:
    """Keys lo:hi at x into v (w, C). The seeds live in the AES input itself (block 0, copied to the
    payload blocks): each level writes the next seeds there, word by word, with no other copy."""
    width, bits = keys.width, keys.bits
    s_cw, v_cw, t_cw, final = keys.s_cw, keys.v_cw, keys.t_cw, keys.final
    n = hi - lo
    per_side = _payload_blocks(width)
    block = np.empty((1 + per_side, n, 2), dtype=np.uint64)
    buf = np.empty(block.size + 2, dtype=np.uint64)
    s = block[0]
    s[:] = keys.seeds[lo:hi]
    s[:, 0] &= CLEAR_LSB
    t = np.full(n, party, dtype=np.uint64)
    v[:] = 0
    t_left, t_right = t_cw[0, lo:hi], t_cw[1, lo:hi]
    t_path = t_left ^ ((t_left ^ t_right) & x)  # bit n-1-level: the control correction of x's side
    tweaks = (2 + np.arange(per_side, dtype=np.uint64))[:, None]
    side = np.uint64(per_side)
    for level in range(bits):
        shift = np.uint64(bits - 1 - level)
        xb = (x >> shift) & ONE
        block[1:] = s
        s[:, 0] ^= xb  # the seed block of the chosen side: tweak 0 (left) or 1 (right)
        if width == 1:
            block[1, :, 0] ^= tweaks[0]  # one payload block holds both sides' words
        else:
            block[1:, :, 0] ^= tweaks + xb * side  # the chosen side's payload blocks: 2 + j (+ w/2)
        g = mmo(block, buf)
        tm = np.negative(t)
        if width == 1:
            left, right = g[1, :, 0], g[1, :, 1]
            v[0] += left ^ ((left ^ right) & np.negative(xb))
        else:
            v += g[1:].transpose(0, 2, 1).reshape(width, n)
        v += v_cw[level, :, lo:hi] & tm
        cw = s_cw[level, lo:hi]
        child_low = g[0, :, 0]
        t_child = child_low & ONE
        child_low &= CLEAR_LSB
        np.bitwise_xor(child_low, cw[:, 0] & tm, out=s[:, 0])
        np.bitwise_xor(g[0, :, 1], cw[:, 1] & tm, out=s[:, 1])
        t &= t_path >> shift
        t ^= t_child
    conv = _convert(mmo, s, width)
    v += conv.T
    v += final[:, lo:hi] & np.negative(t)
    if party == 1:
        np.negative(v, out=v)


# -- a compact DCF with XOR-shared 1-bit output and early termination ------------------------------------
#
# Boyle et al.'s DCF specialised to the group Z_2 (the payload is the output bit itself, one bit per
# level), with the last NU levels cut off: the leaf seed converts to a 128-bit block whose bit j is the
# output for low bits j (Boyle, Gilboa, Ishai, "Function Secret Sharing: Improvements and Extensions",
# CCS 2016, early termination). One AES-MMO block per child carries the control bit (bit 0), the value bit
# (bit 1) and the 126-bit child seed (bits 2..127), so generation costs 2 blocks per level and party and
# evaluation 1 block per level (x's side only), against 3 and 2 for the arithmetic DCF at w = 1.

NU = 7  # levels folded into the leaf: 2^7 = 128 output bits in one converted block
CLEAR_LOW2 = np.uint64(0xFFFF_FFFF_FFFF_FFFC)  # the two low bits of a 126-bit seed's low word
_LEAF_TWEAK = np.uint64(2)  # convert's tweak in the seed's free low bits: children use 0 and 1
SIX = np.uint64(6)
TWO = np.uint64(2)
LOW6 = np.uint64(63)


def _split(bits: int) -> tuple[int, int]:
    """(tree depth d, leaf bits): the top d bits of x walk the tree, the low ones index the leaf."""
    if not 1 <= bits <= 64:
        raise ValueError(f"compact DCF: bits must be in 1..64, got {bits}")
    low = min(bits, NU)
    return bits - low, low


def bit_words_per_key(bits: int) -> int:
    """uint64 correction words per key: s_cw per level (2), t_cw (2), v_cw (1), leaf correction (2)."""
    return 2 * _split(bits)[0] + 5


@dataclass(frozen=True)
class BitKeys:
    """A batch of N compact-DCF keys for one party: root seeds (N, 2) and the correction words the
    parties share, one flat uint64 array as it travels:

    s_cw (d, N, 2), then t_cw (2, N) with bit d - 1 - i of row 0 / 1 the left / right control correction
    of level i, v_cw (N,) with the value-bit correction of level i at bit d - 1 - i, leaf (N, 2).
    """

    bits: int
    seeds: np.ndarray
    words: np.ndarray

    def __post_init__(self) -> None:
        want = self.seeds.shape[0] * bit_words_per_key(self.bits)
        if self.words.size != want:
            raise ValueError(f"compact DCF correction words: {self.words.size} words, expected {want}")

    def _part(self, k: int) -> np.ndarray:
        n, depth = self.seeds.shape[0], _split(self.bits)[0]
        sizes = [depth * n * 2, 2 * n, n, 2 * n]
        shapes: list[tuple[int, ...]] = [(depth, n, 2), (2, n), (n,), (n, 2)]
        lo = sum(sizes[:k])
        return self.words[lo:lo + sizes[k]].reshape(shapes[k])

    @property
    def s_cw(self) -> np.ndarray:
        return self._part(0)

    @property
    def t_cw(self) -> np.ndarray:
        return self._part(1)

    @property
    def v_cw(self) -> np.ndarray:
        return self._part(2)

    @property
    def leaf(self) -> np.ndarray:
        return self._part(3)

    def correction_words(self) -> np.ndarray:
        """Everything but the root seed, as sent (level-major: each level's words are contiguous)."""
        return self.words

    @staticmethod
    def from_words(bits: int, seeds: np.ndarray, words: np.ndarray) -> BitKeys:
        return BitKeys(bits, seeds, words)


def _leaf_mask(alpha_low: np.ndarray) -> np.ndarray:
    """(N, 2): the 128-bit pattern with bit j = [j < alpha_low] (bit j in word j >> 6, alpha_low < 128).
    Word 0 is all ones once alpha_low >= 64; a shift is taken mod 64 only, never by 64."""
    hi = np.negative(alpha_low >> SIX)  # all ones if alpha_low >= 64
    below = (ONE << (alpha_low & LOW6)) - ONE
    out = np.empty((alpha_low.size, 2), dtype=np.uint64)
    np.bitwise_or(below, hi, out=out[:, 0])
    np.bitwise_and(below, hi, out=out[:, 1])
    return out


def _convert_leaf(mmo: _Mmo, seeds: np.ndarray) -> np.ndarray:
    """Leaf seeds (..., 2) (two low bits clear) to their 128-bit output blocks: MMO with tweak 2."""
    x = seeds.copy()
    x[..., 0] |= _LEAF_TWEAK
    return mmo(x, np.empty(x.size + 2, dtype=np.uint64))


def _parity(v: np.ndarray) -> np.ndarray:
    """Parity of each uint64's bits, in bit 0 (XOR folds: once per block, so no need for bitwise_count)."""
    v = v.copy()
    for k in (32, 16, 8, 4, 2, 1):
        v ^= v >> np.uint64(k)
    return v & ONE


def gen_bit(alpha: np.ndarray, bits: int, seed0: np.ndarray, seed1: np.ndarray,
            stop: Callable[[], None] | None = None, out: np.ndarray | None = None,
            workers: WorkerPool | None = None) -> tuple[BitKeys, BitKeys]:
    """Keys whose evaluations XOR to [x < alpha]. alpha (N,) < 2^bits (higher bits are ignored), seeds
    (N, 2) uint64, bits in 1..64.

    Works in blocks of BLOCK keys; `stop()` is called between blocks and may raise to abandon the work.
    `out`, if given, is the flat uint64 array of N * bit_words_per_key(bits) words to write the correction
    words into (e.g. the front of a message buffer). With `workers`, in the pool's processes (`generate`)."""
    alpha = np.asarray(alpha, dtype=np.uint64)
    n_elems = alpha.size
    if alpha.shape != (n_elems,) or seed0.shape != (n_elems, 2) or seed1.shape != (n_elems, 2):
        raise ValueError(f"compact DCF: alpha {alpha.shape}, seeds {seed0.shape} and {seed1.shape}")
    words = generate(_gen_bit_range, n_elems, n_elems * bit_words_per_key(bits), (alpha, seed0, seed1),
                     (bits,), stop, out, workers)
    return BitKeys(bits, seed0.copy(), words), BitKeys(bits, seed1.copy(), words)


def _gen_bit_range(words: np.ndarray, n: int, lo: int, hi: int, alpha: np.ndarray, seed0: np.ndarray,
                   seed1: np.ndarray, bits: int, stop: Callable[[], None] | None = None) -> None:
    """Keys lo:hi of n into `words`, laid out as BitKeys' words for all n keys; alpha and the seeds are keys
    lo:hi's only (as `_gen_range`)."""
    layout = BitKeys(bits, np.empty((n, 2), dtype=np.uint64), words)
    s_cws, t_cw, v_cw, leaf = layout.s_cw, layout.t_cw, layout.v_cw, layout.leaf
    mmo = _Mmo()
    for start in range(0, hi - lo, BLOCK):
        if stop is not None:
            stop()
        end = min(hi - lo, start + BLOCK)
        a, b = lo + start, lo + end
        _gen_bit_block(mmo, alpha[start:end], bits, np.stack([seed0[start:end], seed1[start:end]]),
                       s_cws[:, a:b], t_cw[:, a:b], v_cw[a:b], leaf[a:b])


def _gen_bit_block(mmo: _Mmo, alpha: np.ndarray, bits: int, seeds: np.ndarray, s_cws: np.ndarray,
                   t_cw: np.ndarray, v_cw: np.ndarray, leaf: np.ndarray) -> None:
    """One block of C keys, both parties together: seeds (2, C, 2); writes the correction words into the
    given views.

    Invariant per level: on alpha's path the parties' seeds differ and t0 ^ t1 = 1 (so only t0 is kept).
    Off the path after level i the seeds and control bits are equal, so everything below cancels and the
    output is what the parties hold on leaving: v_alpha ^ v_lose0 ^ v_lose1 ^ v_cw = a_i, which is
    [x < alpha] for an x that leaves alpha's path at level i (v_alpha: the XOR of the value bits both
    parties accumulated on the path). At alpha's leaf the correction turns the blocks' XOR into
    [j < alpha_low].

    The loop keeps only what the next level needs (seeds, t0); the per-level (t, v) pairs of the keep and
    lose children (XORed over the parties) are stacked 2 bits a level and the control and value
    corrections follow from them and alpha's bits for all levels at once, in `_bit_corrections`."""
    depth, low = _split(bits)
    n = alpha.size
    high = alpha >> np.uint64(low)
    t0 = np.zeros(n, dtype=np.uint64)  # party 0's control bit on alpha's path; party 1's is t0 ^ 1
    chunks = (depth + 31) // 32  # (t, v) pairs of 32 levels per word
    lose_tv = np.zeros((chunks, n), dtype=np.uint64)
    keep_tv = np.zeros((chunks, n), dtype=np.uint64)
    three = np.uint64(3)
    x = np.empty((2, 2, n, 2), dtype=np.uint64)  # AES input: (keep / lose child, party, key, word)
    buf = np.empty(x.size + 2, dtype=np.uint64)
    s = x[0]  # the current seeds (two low bits clear), written in place each level
    s[:] = seeds
    s[:, :, 0] &= CLEAR_LOW2
    for level in range(depth):
        a = (high >> np.uint64(depth - 1 - level)) & ONE
        # keep = the child on alpha's path, lose = the other: tweaking each seed with alpha's bit orders
        # the AES output by keep / lose directly, so no per-element selection of 128-bit blocks is needed
        x[1] = s
        x[0, :, :, 0] |= a
        x[1, :, :, 0] |= a ^ ONE
        g = mmo(x, buf)  # (keep / lose, party, C, 2): t in bit 0, v in bit 1, the child seed above
        s_cw = np.bitwise_xor(g[1, 0], g[1, 1], out=s_cws[level])
        lose, keep = lose_tv[level // 32], keep_tv[level // 32]
        lose <<= TWO
        lose |= s_cw[:, 0] & three  # t_lose0 ^ t_lose1 (bit 0), v_lose0 ^ v_lose1 (bit 1)
        s_cw[:, 0] &= CLEAR_LOW2
        k = g[0, 0, :, 0] ^ g[0, 1, :, 0]
        k &= three
        keep <<= TWO
        keep |= k
        # t0 = t_keep0 ^ (t0 & t_keep_cw), the keep side's correction being t_keep0 ^ t_keep1 ^ 1
        t_keep0 = g[0, 0, :, 0] & ONE
        corr = s_cw & _dup(np.negative(t0))  # the correction goes to the party whose bit is 1
        np.bitwise_xor(g[0, 0], corr, out=s[0])
        corr ^= s_cw
        np.bitwise_xor(g[0, 1], corr, out=s[1])
        s[:, :, 0] &= CLEAR_LOW2
        k = np.invert(k, out=k)
        t0 &= k
        t0 ^= t_keep0
    v_alpha = _bit_corrections(high, depth, lose_tv, keep_tv, t_cw, v_cw)
    conv = _convert_leaf(mmo, s)  # (party, C, 2)
    mask = _leaf_mask(alpha & np.uint64((1 << low) - 1))
    np.bitwise_xor(conv[0], conv[1], out=leaf)
    leaf ^= mask
    leaf ^= _dup(np.negative(v_alpha))


def _bit_corrections(high: np.ndarray, depth: int, lose_tv: np.ndarray, keep_tv: np.ndarray,
                     t_cw: np.ndarray, v_cw: np.ndarray) -> np.ndarray:
    """The packed control and value corrections of every level from the stacked (t, v) pairs, into
    t_cw (2, C) and v_cw (C,); returns v_alpha after the last level (C,). Level i's bit is at d - 1 - i,
    where alpha's high bits hold its bit a_i, so each formula below is one pass over all levels:
        t_lose_cw = t_lose0 ^ t_lose1,  t_keep_cw = t_keep0 ^ t_keep1 ^ 1,  left is lose iff a_i = 1;
        v_alpha after level i = v_lose ^ v_keep ^ a_i (over both parties), v_alpha before level 0 = 0;
        v_cw_i = v_lose0 ^ v_lose1 ^ (v_alpha before level i) ^ a_i."""
    t_lose, v_lose = _unstack(lose_tv, depth)
    t_keep, v_keep = _unstack(keep_tv, depth)
    levels = np.uint64((1 << depth) - 1)
    a = high & levels
    t_keep ^= levels
    np.bitwise_xor(t_keep, (t_keep ^ t_lose) & a, out=t_cw[0])
    t_keep ^= t_lose
    np.bitwise_xor(t_cw[0], t_keep, out=t_cw[1])
    v_after = v_lose ^ v_keep
    v_after ^= a
    np.bitwise_xor(v_lose, v_after >> ONE, out=v_cw)  # v_alpha before level i: bit d - i of v_after
    v_cw ^= a
    return v_after & ONE


def _unstack(tv: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """(chunks, C) words of 2-bit (t, v) pairs, 32 levels a word with the latest level lowest, to the
    packed t and v bits (C,) with level i at bit d - 1 - i: the even / odd bits of each word gathered
    (a fixed sequence of masks and shifts), the chunks' bits concatenated."""
    t = np.zeros(tv.shape[1], dtype=np.uint64)
    v = np.zeros(tv.shape[1], dtype=np.uint64)
    for chunk in range(tv.shape[0]):
        m = np.uint64(min(32, depth - 32 * chunk))
        for bit, out in ((0, t), (1, v)):
            w = (tv[chunk] >> np.uint64(bit)) & _GATHER[0]
            for step, mask in enumerate(_GATHER[1:]):
                w |= w >> np.uint64(1 << step)
                w &= mask
            out <<= m
            out |= w
    return t, v


_GATHER = [np.uint64(m) for m in (0x5555_5555_5555_5555, 0x3333_3333_3333_3333, 0x0F0F_0F0F_0F0F_0F0F,
                                  0x00FF_00FF_00FF_00FF, 0x0000_FFFF_0000_FFFF, 0x0000_0000_FFFF_FFFF)]


def eval_bit(party: int, keys: BitKeys, x: np.ndarray) -> np.ndarray:
    """(N,) uint64 in {0, 1}: party's XOR share of [x < alpha], for public x (N,) < 2^bits.

    One AES block per level (the child on x's path) and one at the leaf, which holds the last NU levels'
    outputs in its 128 bits."""
    x = np.asarray(x, dtype=np.uint64)
    if x.shape != (keys.seeds.shape[0],):
        raise ValueError(f"compact DCF: {keys.seeds.shape[0]} keys, x of shape {x.shape}")
    out = np.empty(x.size, dtype=np.uint64)
    mmo = _Mmo()
    for lo in range(0, x.size, BLOCK):
        hi = min(x.size, lo + BLOCK)
        _eval_bit_block(mmo, party, keys, lo, hi, x[lo:hi], out[lo:hi])
    return out


def _eval_bit_block(mmo: _Mmo, party: int, keys: BitKeys, lo: int, hi: int, x: np.ndarray,
                    y: np.ndarray) -> None:
    """Keys lo:hi at x into y (C,). The seeds live in the AES input itself, tweaked in place (their low
    bits are clear). Value bits accumulate unmasked in bit 1 of `acc`; the v_cw terms are gathered as the
    mask of levels where t was 1 and folded in once at the end (a parity of mask & v_cw)."""
    depth, low = _split(keys.bits)
    n = hi - lo
    s_cw = keys.s_cw
    high = x >> np.uint64(low)
    s = np.empty((n, 2), dtype=np.uint64)
    buf = np.empty(s.size + 2, dtype=np.uint64)
    s[:] = keys.seeds[lo:hi]
    s[:, 0] &= CLEAR_LOW2
    t = np.full(n, party, dtype=np.uint64)
    acc = np.zeros(n, dtype=np.uint64)
    t_levels = np.zeros(n, dtype=np.uint64)  # bit d - 1 - i: t before level i
    t_left, t_right = keys.t_cw[0, lo:hi], keys.t_cw[1, lo:hi]
    t_path = t_left ^ ((t_left ^ t_right) & high)  # bit d-1-level: the control correction of x's side
    for level in range(depth):
        shift = np.uint64(depth - 1 - level)
        s[:, 0] |= (high >> shift) & ONE  # the chosen child's tweak: 0 (left) or 1 (right)
        g = mmo(s, buf)
        child_low = g[:, 0]
        acc ^= child_low
        np.left_shift(t_levels, ONE, out=t_levels)
        t_levels |= t
        tm = np.negative(t)
        cw = s_cw[level, lo:hi]
        t &= t_path >> shift
        t ^= child_low
        t &= ONE
        child_low &= CLEAR_LOW2
        np.bitwise_xor(child_low, cw[:, 0] & tm, out=s[:, 0])
        np.bitwise_xor(g[:, 1], cw[:, 1] & tm, out=s[:, 1])
    block = _convert_leaf(mmo, s)
    block ^= keys.leaf[lo:hi] & _dup(np.negative(t))
    j = x & np.uint64((1 << low) - 1)
    word = block[:, 0] ^ ((block[:, 0] ^ block[:, 1]) & np.negative(j >> SIX))
    np.right_shift(word, j & LOW6, out=y)
    y ^= acc >> ONE
    y ^= _parity(t_levels & keys.v_cw[lo:hi])
    y &= ONE
