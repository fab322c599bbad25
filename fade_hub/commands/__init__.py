"""Subcommands of the ``fade-hub`` CLI, one module each, each exposing ``register(subparsers)``."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ..errors import EXIT_USER_ERROR


def help_and_fail(parser: argparse.ArgumentParser) -> int:
    """Print a command group's help (it was called without an action) and return the usage-error status."""
    parser.print_help()
    return EXIT_USER_ERROR


def renamed(func: Callable[[argparse.Namespace], int], old: str, new: str) -> Callable[[argparse.Namespace], int]:
    """A command's function under its old name: one deprecation line, then the command."""

    def run(args: argparse.Namespace) -> int:
        from ..options import deprecation

        deprecation(f"fade-hub {old}", f"fade-hub {new}")
        return func(args)

    return run
