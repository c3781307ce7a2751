"""Secure operations on shared values and the correlated randomness they consume.

The names below are imported on first use (PEP 562): a dealer's worker process that runs DCF key
generation (protocols/primitives/dcf.py) does not import every protocol at start-up."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from protocols.applications.models import Model
    from protocols.interface.context import Context, run_local, secure
    from protocols.interface.run import Results, run, run_async
    from protocols.primitives.shared import SharedArray

_CONTEXT = "protocols.interface.context"
_RUN = "protocols.interface.run"
_HOME = {"Context": _CONTEXT, "run_local": _CONTEXT, "secure": _CONTEXT, "SharedArray": "protocols.primitives.shared",
         "run": _RUN, "run_async": _RUN, "Results": _RUN, "Model": "protocols.applications.models"}

# run/run_async: the entry points (a script; a notebook or any running event loop). run_local is the
# older name of run with the topology first, kept for existing code.
__all__ = ["Context", "Model", "Results", "SharedArray", "run", "run_async", "run_local", "secure"]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'protocols' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)
