"""The library's version, in one place: read by the package (`mpc.__version__`) and the hello (mpc/library.py)."""

__version__ = "0.1.0"
