"""`fade-hub push`: publish a finished run directory as a Hub dataset."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `push` subcommand."""
    p = subparsers.add_parser(
        "push",
        help="Push a finished run directory to the Hub as a dataset.",
        description="Push RUN_DIR to the dataset repo REPO_ID (created if needed). The token comes from HF_TOKEN "
        "or `hf auth login` and is never written anywhere. Pushing unchanged content again is a no-op.",
    )
    p.add_argument("run_dir", help="A run directory written by `fade-hub explore`.")
    p.add_argument("repo_id", help="Target dataset repo, e.g. user/my-model-failures.")
    p.add_argument("--private", action="store_true", help="Create the repo as private.")
    p.add_argument("--public", action="store_true", help="Push in public even when the run's model or seeds are "
                   "private or gated on the Hub (such runs are pushed private otherwise).")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Push and print the dataset URL."""
    from ..hub import push_run

    print(push_run(args.run_dir, args.repo_id, private=args.private, public=args.public))
    return 0
