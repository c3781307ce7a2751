"""Distributed comparison function (DCF), batched over numpy arrays: no Python loop per element.

Boyle, Chandran, Gilboa, Gupta, Ishai, Kumar, Rathee, "Function Secret Sharing for Mixed-Mode and
Fixed-Point Secure Computation", Eurocrypt 2021 (ePrint 2020/1392), Fig. 1: a GGM-tree construction.
Gen(alpha, beta) gives two keys; Eval(b, key_b, x) gives additive shares (mod 2^64) of
    f(x) = beta if x < alpha else 0,      x, alpha in [0, 2^n), beta in Z_2^64 ^ w.
Both keys share the correction words; only the root seed differs.

The tree is walked from the most significant bit, one level at a time for the whole batch: each level
expands every seed with fixed-key AES in Matyas-Meyer-Oseas mode (G_j(s) = AES_k(s ^ j) ^ s ^ j, j the
block index) in a single ECB call over the batch. Per level and element: 2 + w AES blocks (seed and
control bit left and right, w payload words left and right); one more block at the leaf (Convert).

Key size per element and party: 16 (root seed) + n (16 + 8w) + 8w + 16 (control bits) bytes;
n = 63, w = 1: 1,552 B.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

# A fixed, public AES key: the PRG's security rests on the seeds, as in fixed-key MMO constructions.
_FIXED_KEY = bytes.fromhex("6d70632d6463662d66697865642d6b65")
_AES = Cipher(algorithms.AES(_FIXED_KEY), modes.ECB())
_TWEAKS = np.arange(64, dtype=np.uint64).repeat(2).reshape(64, 2) * np.array([1, 0], dtype=np.uint64)
# distinct from every expansion tweak: their high word is 1
_CONVERT_TWEAKS = _TWEAKS[:8] | np.array([0, 1], dtype=np.uint64)
ONE = np.uint64(1)
CLEAR_LSB = np.uint64(0xFFFF_FFFF_FFFF_FFFE)


@dataclass(frozen=True)
class DcfKeys:
    """A batch of N keys for one party: root seeds (N, 2) and the shared correction words.

    s_cw (n, N, 2), v_cw (n, N, w), t_cw (N, 2) with bit i of column 0 / 1 the left / right control
    correction of level i, final (N, w).
    """

    bits: int
    seeds: np.ndarray
    s_cw: np.ndarray
    v_cw: np.ndarray
    t_cw: np.ndarray
    final: np.ndarray

    @property
    def width(self) -> int:
        return self.final.shape[1]

    def correction_words(self) -> np.ndarray:
        """Everything but the root seed as one flat uint64 array for the wire, level-major so that
        each level's correction words are contiguous when read back."""
        return np.concatenate([self.s_cw.ravel(), self.v_cw.ravel(), self.t_cw.ravel(), self.final.ravel()])

    @staticmethod
    def from_words(bits: int, width: int, seeds: np.ndarray, words: np.ndarray) -> DcfKeys:
        n = seeds.shape[0]
        sizes = [bits * n * 2, bits * n * width, n * 2, n * width]
        if words.size != sum(sizes):
            raise ValueError(f"DCF correction words: {words.size} words, expected {sum(sizes)}")
        parts = np.split(words, np.cumsum(sizes)[:-1])
        return DcfKeys(bits, seeds, parts[0].reshape(bits, n, 2), parts[1].reshape(bits, n, width),
                       parts[2].reshape(n, 2), parts[3].reshape(n, width))


def words_per_key(bits: int, width: int) -> int:
    return bits * (2 + width) + 2 + width


def _aes_mmo(x: np.ndarray) -> np.ndarray:
    """AES_k(x) ^ x for every 128-bit row of x (..., 2) uint64, in one ECB call, without extra copies."""
    x = np.ascontiguousarray(x, dtype=np.uint64)
    if x.size == 0:
        return x.copy()
    out = np.empty(x.size + 2, dtype=np.uint64)  # update_into wants 15 spare bytes
    _AES.encryptor().update_into(memoryview(x).cast("B"), memoryview(out).cast("B"))
    res = out[: x.size].reshape(x.shape)
    res ^= x
    return res


def _payload_blocks(width: int) -> int:
    """AES blocks holding one side's w payload words (both sides share one block when w = 1)."""
    if width != 1 and width % 2:
        raise ValueError("DCF payload width must be 1 or even")
    return 1 if width == 1 else width // 2


def _expand(seeds: np.ndarray, width: int) -> tuple[np.ndarray, ...]:
    """G(s) -> (s_L, t_L, s_R, t_R, v_L, v_R) for a batch of seeds (N, 2).

    Blocks: 0 = left seed (its low bit the control bit), 1 = right seed, then the payload words: for
    w = 1 one block (left word, right word), else w/2 blocks for the left words and w/2 for the right."""
    blocks = 2 + (1 if width == 1 else width)
    g = _aes_mmo(seeds[:, None, :] ^ _TWEAKS[:blocks])  # (N, blocks, 2)
    s_left, s_right = g[:, 0].copy(), g[:, 1].copy()
    t_left, t_right = s_left[:, 0] & ONE, s_right[:, 0] & ONE
    s_left[:, 0] &= CLEAR_LSB
    s_right[:, 0] &= CLEAR_LSB
    words = g[:, 2:].reshape(len(seeds), 2 * (blocks - 2))
    if width == 1:
        return s_left, t_left, s_right, t_right, words[:, :1], words[:, 1:2]
    return s_left, t_left, s_right, t_right, words[:, :width], words[:, width:2 * width]


def _convert(seeds: np.ndarray, width: int) -> np.ndarray:
    """Leaf seeds to w pseudorandom ring words (MMO blocks with tweaks distinct from the expansion's)."""
    blocks = max(1, (width + 1) // 2)
    tweaks = _CONVERT_TWEAKS[:blocks]
    return _aes_mmo(seeds[:, None, :] ^ tweaks).reshape(len(seeds), 2 * blocks)[:, :width]


def _bit(values: np.ndarray, bits: int, level: int) -> np.ndarray:
    return (values >> np.uint64(bits - 1 - level)) & ONE


def _neg_if(flag: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(-1)^flag * v, row-wise; flag (N,) of 0/1 uint64, v (N, w)."""
    return np.where(flag[:, None].astype(bool), np.negative(v), v)


def gen(alpha: np.ndarray, beta: np.ndarray, bits: int, seed0: np.ndarray, seed1: np.ndarray) -> tuple[DcfKeys,
                                                                                                        DcfKeys]:
    """Keys for f(x) = beta if x < alpha else 0. alpha (N,) < 2^bits, beta (N, w), seeds (N, 2) uint64."""
    alpha = np.asarray(alpha, dtype=np.uint64)
    beta = np.asarray(beta, dtype=np.uint64)
    n_elems, width = beta.shape
    s0 = seed0.copy()
    s1 = seed1.copy()
    s0[:, 0] &= CLEAR_LSB
    s1[:, 0] &= CLEAR_LSB
    t0 = np.zeros(n_elems, dtype=np.uint64)
    t1 = np.ones(n_elems, dtype=np.uint64)
    v_alpha = np.zeros((n_elems, width), dtype=np.uint64)
    s_cws = np.empty((bits, n_elems, 2), dtype=np.uint64)
    v_cws = np.empty((bits, n_elems, width), dtype=np.uint64)
    t_cw = np.zeros((n_elems, 2), dtype=np.uint64)
    for level in range(bits):
        a = _bit(alpha, bits, level)
        a_mask = a.astype(bool)
        sL0, tL0, sR0, tR0, vL0, vR0 = _expand(s0, width)
        sL1, tL1, sR1, tR1, vL1, vR1 = _expand(s1, width)
        am2 = a_mask[:, None]
        # alpha bit 0: keep left, lose right; alpha bit 1: keep right, lose left
        s_lose0, s_lose1 = np.where(am2, sL0, sR0), np.where(am2, sL1, sR1)
        s_keep0, s_keep1 = np.where(am2, sR0, sL0), np.where(am2, sR1, sL1)
        v_lose0, v_lose1 = np.where(am2, vL0, vR0), np.where(am2, vL1, vR1)
        v_keep0, v_keep1 = np.where(am2, vR0, vL0), np.where(am2, vR1, vL1)
        s_cw = s_lose0 ^ s_lose1
        v_cw = _neg_if(t1, v_lose1 - v_lose0 - v_alpha)
        v_cw = np.where(am2, v_cw + _neg_if(t1, beta), v_cw)  # lose = left: beta goes to the left subtree
        v_alpha = v_alpha - v_keep1 + v_keep0 + _neg_if(t1, v_cw)
        tcw_left = tL0 ^ tL1 ^ a ^ ONE
        tcw_right = tR0 ^ tR1 ^ a
        tcw_keep = np.where(a_mask, tcw_right, tcw_left)
        s_cws[level], v_cws[level] = s_cw, v_cw
        t_cw[:, 0] |= tcw_left << np.uint64(level)
        t_cw[:, 1] |= tcw_right << np.uint64(level)
        keep_t0 = np.where(a_mask, tR0, tL0)
        keep_t1 = np.where(a_mask, tR1, tL1)
        s0 = s_keep0 ^ (s_cw * t0[:, None])
        s1 = s_keep1 ^ (s_cw * t1[:, None])
        t0 = keep_t0 ^ (t0 & tcw_keep)
        t1 = keep_t1 ^ (t1 & tcw_keep)
    final = _neg_if(t1, _convert(s1, width) - _convert(s0, width) - v_alpha)
    k0 = DcfKeys(bits, seed0.copy(), s_cws, v_cws, t_cw, final)
    k1 = DcfKeys(bits, seed1.copy(), s_cws, v_cws, t_cw, final)
    return k0, k1


def eval_dcf(party: int, keys: DcfKeys, x: np.ndarray) -> np.ndarray:
    """Party `party`'s (0 or 1) additive shares (N, w) of f(x) for public x (N,) < 2^bits.

    Expands only the child on x's path: 2 AES blocks per level and element (the seed block of that
    side, and the payload block), against 2 + w for a full expansion.
    """
    x = np.asarray(x, dtype=np.uint64)
    width, bits = keys.width, keys.bits
    s = keys.seeds.copy()
    s[:, 0] &= CLEAR_LSB
    n_elems = s.shape[0]
    t = np.full(n_elems, party, dtype=np.uint64)
    v = np.zeros((n_elems, width), dtype=np.uint64)
    per_side = _payload_blocks(width)
    block = np.empty((n_elems, 1 + per_side, 2), dtype=np.uint64)
    t_left, t_right = keys.t_cw[:, 0], keys.t_cw[:, 1]
    for level in range(bits):
        xb = _bit(x, bits, level)
        right = xb.astype(bool)
        block[:] = s[:, None, :]
        block[:, 0, 0] ^= xb  # the seed block of the chosen side: block 0 (left) or 1 (right)
        if width == 1:
            block[:, 1, 0] ^= np.uint64(2)  # one payload block holds both sides' words
        else:
            for j in range(per_side):  # the chosen side's payload blocks
                block[:, 1 + j, 0] ^= np.uint64(2 + j) + xb * np.uint64(per_side)
        g = _aes_mmo(block)
        child = g[:, 0]
        t_child = child[:, 0] & ONE
        child[:, 0] &= CLEAR_LSB
        if width == 1:
            payload = np.where(right[:, None], g[:, 1, 1:], g[:, 1, :1])
        else:
            payload = g[:, 1:].reshape(n_elems, width)
        tcw = (np.where(right, t_right, t_left) >> np.uint64(level)) & ONE
        v += payload + keys.v_cw[level] * t[:, None]
        s = child ^ (keys.s_cw[level] * t[:, None])
        t = t_child ^ (t & tcw)
    v += _convert(s, width) + keys.final * t[:, None]
    return np.negative(v) if party == 1 else v
