"""Which library a party runs, for the hello: mpc's version and a digest of its code.

Two parties on different versions (or one with a local edit) could speak the same wire format and still
compute different things: a changed protocol, cost model or spline table gives garbage, not an error. So
the parties compare the version and a SHA-256 of every source file of the installed packages (mpc and the
packages installed with it) at the hello, and stop naming the difference.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from functools import cache
from pathlib import Path

from mpc.version import __version__

DISTRIBUTION = "mpc"


def _packages() -> list[str]:
    """The top-level packages installed with mpc (from its metadata), or mpc alone."""
    try:
        text = importlib.metadata.distribution(DISTRIBUTION).read_text("top_level.txt") or ""
    except importlib.metadata.PackageNotFoundError:
        text = ""
    names = sorted({line.strip() for line in text.splitlines() if line.strip()} | {"mpc"})
    return [n for n in names if importlib.util.find_spec(n) is not None]


@cache
def code_digest() -> str:
    """SHA-256 over every .py file of the installed packages, by path relative to the package (computed
    once per process: about 100 files)."""
    digest = hashlib.sha256()
    for name in _packages():
        spec = importlib.util.find_spec(name)
        for location in (spec.submodule_search_locations or []) if spec else []:
            root = Path(location)
            for path in sorted(root.rglob("*.py")):
                digest.update(f"{name}/{path.relative_to(root).as_posix()}\0".encode())
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def library_agreement() -> dict[str, str]:
    """The hello's entry for the library: its version and code digest."""
    return {"mpc": f"{__version__} (code sha256 {code_digest()[:16]})"}
