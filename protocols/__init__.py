"""Secure operations on shared values and the correlated randomness they consume."""
