"""Secure operations on shared values and the correlated randomness they consume."""

from protocols.context import Context, run_local, secure
from protocols.shared import SharedArray

__all__ = ["Context", "SharedArray", "run_local", "secure"]
