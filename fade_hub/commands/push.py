"""`fade-hub push`: not implemented yet."""

from __future__ import annotations

import argparse

from ..errors import NotImplementedYet


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `push` subcommand."""
    parser = subparsers.add_parser("push", help="(not implemented yet)", description="Not implemented yet.")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Say that the command has not landed yet."""
    raise NotImplementedYet("`fade-hub push` is not implemented yet; follow the project's issues for its release.")
