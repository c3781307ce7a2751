"""The programming interface: the Context a program receives, numpy dispatch, smooth functions, the
registry of operations and emulation. Imports only point down, to protocols.primitives and mpc."""
