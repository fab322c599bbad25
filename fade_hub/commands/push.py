"""`fade-hub push`: publish a finished run directory as a Hub dataset."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `push` subcommand."""
    p = subparsers.add_parser(
        "push",
        help="Push a finished run (as a dataset) or a mitigated variant (as a model) to the Hub.",
        description="Push FOLDER to REPO_ID (created if needed): a run directory becomes a dataset repo, an adapter "
        "folder written by `fade-hub mitigate` a model repo. The token comes from HF_TOKEN or `hf auth login` and "
        "is never written anywhere. Pushing unchanged content again is a no-op.",
    )
    p.add_argument("run_dir", metavar="FOLDER", help="A run directory (explore) or an adapter folder (mitigate).")
    p.add_argument("repo_id", help="Target repo, e.g. user/my-model-failures or user/my-model-faded.")
    p.add_argument("--private", action="store_true", help="Create the repo as private.")
    p.add_argument("--public", action="store_true", help="Push in public even when the run's model or seeds are "
                   "private or gated on the Hub (such runs are pushed private otherwise).")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Push and print the dataset URL."""
    from pathlib import Path

    from ..hub import push_run
    from ..mitigate.outputs import EVAL_FILE
    from ..mitigate.publish import push_adapter

    folder = Path(args.run_dir)
    # an adapter folder: a peft adapter's config, or the figures beside a diffusers LoRA
    if (folder / "adapter_config.json").is_file() or (folder / EVAL_FILE).is_file():
        print(push_adapter(args.run_dir, args.repo_id, private=args.private))
    else:
        print(push_run(args.run_dir, args.repo_id, private=args.private, public=args.public))
    return 0
