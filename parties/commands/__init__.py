"""The `mpc` subcommands, one module each; parties/cli.py lists them and common.py holds what they share."""
