"""`fade-hub pull`: download a mitigated variant, or write it as a plain model with the LoRA merged."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_INTERRUPTED = 130


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `pull` subcommand."""
    p = subparsers.add_parser(
        "pull",
        help="Download a mitigated variant (optionally merged into a plain model).",
        description="Download the adapter repo (or folder) SOURCE into --output. With --merge, load its base model, "
        "merge the LoRA weights into it and save a plain model folder that loads without peft. --output appears "
        "only once complete: an interrupted pull leaves nothing there, and the same command runs again as it is.",
    )
    p.add_argument("source", help="Adapter repo ID or folder written by fade-hub mitigate.")
    p.add_argument("--output", required=True, help="Empty or new folder to write to.")
    p.add_argument("--merge", action="store_true", help="Write a plain model with the LoRA merged in (no peft needed).")
    p.add_argument("--base", default=None, help="With --merge: apply the adapter to this copy of its base model (ID "
                   "or folder) instead of the one named in adapter_config.json.")
    p.add_argument("--no-progress", dest="show_progress", action="store_false",
                   help="Hide the download and model-loading progress bars.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Pull and print where it went."""
    from ..pull_variant import pull

    try:
        print(pull(args.source, args.output, merge=args.merge, base=args.base, show_progress=args.show_progress))
    except KeyboardInterrupt:  # --output appears complete in one rename, or not at all
        done = Path(args.output).is_dir() and any(Path(args.output).iterdir())
        print(f"interrupted after the variant was written to {args.output}" if done else
              f"interrupted: nothing was written to {args.output}; run the same command again to pull", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0
