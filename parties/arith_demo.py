"""The arithmetic demo: both banks' inputs combined by a product, a matrix product and a fixed-point
expression, each opened and compared with the plaintext result.

The demo's data is synthetic and drawn from a public seed, so every party can also compute the plaintext
reference for the comparison; in a real run no party knows the other's input.
"""

from __future__ import annotations

import numpy as np

from protocols.interface.context import Context


def demo_data(seed: int, n: int) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {
        "bank_a": {"counts": rng.integers(-1000, 1000, n), "matrix": rng.uniform(-2, 2, (n, 3)),
                   "amounts": rng.uniform(-100, 100, n)},
        "bank_b": {"counts": rng.integers(-1000, 1000, n), "matrix": rng.uniform(-2, 2, (3, 4)),
                   "rates": rng.uniform(0, 1, n)},
    }


async def arith(ctx: Context, n: int = 5, seed: int = 1) -> dict[str, object]:
    """Secure: counts_a * counts_b (integers), M_a @ M_b (fixed point), 0.5*amounts*rates + amounts - 2."""
    a_name, b_name = ctx.compute_parties[0], ctx.compute_parties[1]
    data = demo_data(seed, n)
    mine = {a_name: data["bank_a"], b_name: data["bank_b"]}.get(ctx.name, {})

    def own(owner: str, key: str):
        return ctx.input(owner, mine.get(key) if ctx.name == owner else None)

    counts_a, counts_b = await own(a_name, "counts"), await own(b_name, "counts")
    m_a, m_b = await own(a_name, "matrix"), await own(b_name, "matrix")
    amounts, rates = await own(a_name, "amounts"), await own(b_name, "rates")

    product = counts_a * counts_b
    matmul = m_a @ m_b
    expression = amounts * rates * 0.5 + amounts - 2.0
    opened = [await ctx.reveal(v) for v in (product, matmul, expression)]
    if ctx.is_dealer:
        return {"role": "dealt the randomness; saw shapes only"}

    a, b = data["bank_a"], data["bank_b"]
    plain = [a["counts"] * b["counts"], a["matrix"] @ b["matrix"], a["amounts"] * b["rates"] * 0.5 + a["amounts"] - 2]
    tolerances = [0.0, 1e-3, 1e-3]
    out: dict[str, object] = {}
    for name, got, want, tol in zip(("product", "matmul", "expression"), opened, plain, tolerances, strict=True):
        assert got is not None
        err = float(np.max(np.abs(got - want))) if got.size else 0.0
        out[name] = {"secure": np.round(got, 4).tolist(), "plaintext": np.round(want, 4).tolist(),
                     "max_error": err, "match": err <= tol}
    return out
