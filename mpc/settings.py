"""Settings with a fixed set of values, declared once for the topology, the CLI and the protocols."""

from __future__ import annotations

from enum import StrEnum


class Comparison(StrEnum):
    """How comparisons, ReLU and splines run: `dcf` one round, one DCF key per element (two compute
    parties); `compact` two rounds with keys of 936 B instead of 1,536 B and up (two compute parties);
    `bits` 8 rounds, no keys (any number); `auto` chosen per batch by the cost model of
    protocols/primitives/comparison.py."""

    AUTO = "auto"
    DCF = "dcf"
    COMPACT = "compact"
    BITS = "bits"

    @property
    def one_key(self) -> bool:
        """Whether the method evaluates one DCF key per element (the gates of protocols/primitives/gates.py)."""
        return self in (Comparison.DCF, Comparison.COMPACT)


class Truncation(StrEnum):
    """How fixed-point products are truncated: `dealer` 1 round (any number of compute parties), `local`
    0 rounds (two compute parties, a rare large error: see the README)."""

    DEALER = "dealer"
    LOCAL = "local"


def choices(enum: type[StrEnum]) -> str:
    """'a | b | c', for messages."""
    return " | ".join(e.value for e in enum)


def check_parties(n_compute: int, comparison: str | None = None, truncation: str | None = None) -> str | None:
    """Why a method cannot run with n_compute compute parties (None if it can). The one place this
    rule lives: the topology loader, the CLI and the protocols all ask here."""
    if comparison in (Comparison.DCF, Comparison.COMPACT) and n_compute != 2:
        return (f"comparison '{comparison}' works with exactly two compute parties (here {n_compute}); "
                "use 'bits' or 'auto'")
    if truncation == Truncation.LOCAL and n_compute != 2:
        return (f"truncation 'local' is only sound for two compute parties (here {n_compute}); "
                "use 'dealer'")
    return None


MIN_FRAC_BITS, MAX_FRAC_BITS = 10, 16
"""The fixed-point fractional bits every shipped function supports (protocols/interface/functions.py: a
cubic spline's terms need 3 f + a few bits below 2^61; fewer than 10 bits leave too little precision)."""
