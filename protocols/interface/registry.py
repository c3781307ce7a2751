"""The registry of secure operations: each operation declared once, everything else derived from it.

An `Operation` names the function that computes it (`run(ctx, *args, **kwargs)`), whether it takes a
comparison method, its numpy aliases (how numpy's dispatch reaches it), its documented online rounds, and a
`Sample`: inputs of a given size, the secure call on their shares and the numpy meaning with its tolerance.
From the registry come the Context's operation methods (`ctx.<name>`), numpy's dispatch table (built once),
`mpc bench --op` and its help, and the test matrix that runs every operation with every method on 2 and 3
compute parties, securely and emulated, against numpy (tests/test_operations.py). docs/ARCHITECTURE.md,
"Adding an operation", shows the whole path.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protocols.primitives.shared import SharedArray

Inputs = Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]
Secure = Callable[[Any, SharedArray, SharedArray, "str | None"], SharedArray]
Reference = Callable[[np.ndarray, np.ndarray], np.ndarray]
Adapter = Callable[..., Any]
"""numpy's call on shared values: ufuncs get (ctx, *inputs), functions (ctx, args, kwargs)."""


@dataclass(frozen=True)
class Sample:
    """What an operation computes on sample data: `inputs(rng, n)` gives two public arrays (the second
    operand may be unused), `secure(ctx, x, y, method)` the operation on their shares, `reference(a, b)`
    numpy's answer; the opened result must lie within `tolerance` (real units) + `relative` |reference|.
    Bench data only: every party draws the same arrays from a public seed."""

    inputs: Inputs
    secure: Secure
    reference: Reference
    tolerance: float = 0.0
    relative: float = 0.0
    count: Callable[[np.ndarray], int] = np.size  # what n counts (elements; accounts, rows)
    steps: Callable[[int], int] | None = None  # training: SGD steps for n rows (per-step figures)
    methods: bool = False  # takes a comparison method (dcf, compact, bits, auto)

    def close(self, opened: np.ndarray, want: np.ndarray) -> bool:
        if self.tolerance == 0 and self.relative == 0:
            return bool(np.array_equal(opened, want))
        return bool(opened.shape == np.shape(want) and
                    np.all(np.abs(opened - want) <= self.tolerance + self.relative * np.abs(want)))


@dataclass(frozen=True)
class Operation:
    """One secure operation, declared once."""

    name: str  # ctx.<name>
    run: Callable[..., Any]  # run(ctx, *args, **kwargs); its docstring is ctx.<name>'s
    sample: Sample
    bench: str = ""  # its name in `mpc bench --op` (default: name)
    ufuncs: Mapping[Any, Adapter] = field(default_factory=dict)  # numpy ufunc -> adapter(ctx, *inputs)
    functions: Mapping[str, Adapter] = field(default_factory=dict)  # numpy function name -> adapter(ctx, args, kw)
    rounds: Mapping[str, int] = field(default_factory=dict)  # online rounds of the sample by method ("": no method)
    max_parties: int | None = None  # compute parties it supports (None: any number, as the bits method)
    rounds_vary: bool = False
    """The rounds depend on the data (a sort's quicksort levels, after a random shuffle): `rounds` then gives
    the rounds per level, the test matrix checks values only, and emulation predicts the expected rounds."""

    @property
    def bench_name(self) -> str:
        return self.bench or self.name

    @property
    def methods(self) -> bool:
        return self.sample.methods

    @property
    def doc(self) -> str:
        return (self.run.__doc__ or "").strip()


class Registry:
    """The operations by name; immutable once built."""

    def __init__(self, operations: Sequence[Operation]):
        self._by_name: dict[str, Operation] = {}
        self._by_bench: dict[str, Operation] = {}
        for op in operations:
            for table, key in ((self._by_name, op.name), (self._by_bench, op.bench_name)):
                if key in table:
                    raise ValueError(f"operation {key!r} registered twice")
                table[key] = op

    def __iter__(self) -> Iterator[Operation]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def get(self, name: str) -> Operation | None:
        return self._by_name.get(name)

    def by_bench_name(self, name: str) -> Operation | None:
        return self._by_bench.get(name)

    def names(self) -> list[str]:
        return list(self._by_name)

    def bench_names(self) -> list[str]:
        return list(self._by_bench)

    def ufunc_table(self) -> dict[Any, Adapter]:
        return {u: adapter for op in self for u, adapter in op.ufuncs.items()}

    def function_table(self) -> dict[str, Adapter]:
        return {f: adapter for op in self for f, adapter in op.functions.items()}

    def unknown(self, name: str, what: str = "operation") -> str:
        """The error for a name that is not registered, with the closest names."""
        close = difflib.get_close_matches(name, self.names(), n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        return f"no {what} {name!r}{hint} (operations: {', '.join(self.names())})"


def bound(op: Operation, ctx: Any) -> Callable[..., Any]:
    """ctx.<name>: the operation's function with the context bound, carrying its name and docstring."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return op.run(ctx, *args, **kwargs)

    call.__name__ = call.__qualname__ = op.name
    call.__doc__ = op.run.__doc__
    return call
