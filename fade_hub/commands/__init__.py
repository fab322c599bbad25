"""Subcommands of the ``fade-hub`` CLI, one module each, each exposing ``register(subparsers)``."""

from __future__ import annotations

import argparse

from ..errors import EXIT_USER_ERROR


def help_and_fail(parser: argparse.ArgumentParser) -> int:
    """Print a command group's help (it was called without an action) and return the usage-error status."""
    parser.print_help()
    return EXIT_USER_ERROR
