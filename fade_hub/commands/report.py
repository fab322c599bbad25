"""`fade-hub report`: the failure-mode table of a local or pushed run."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `report` subcommand."""
    p = subparsers.add_parser(
        "report",
        help="Print the ranked failure modes of a run.",
        description="Print the ranked failure modes of RUN (a local run directory or a pushed dataset repo ID).",
    )
    p.add_argument("run", help="Run directory or dataset repo ID.")
    p.add_argument("--top", type=int, default=10, help="How many failure modes to show.")
    p.add_argument("--json", action="store_true", help="Print JSON (the modes' landscape rows) instead of a table.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the run and print its top failure modes."""
    from ..landscape import format_mode_table
    from ..run import Run

    run = Run.open(args.run)
    meta = run.meta
    modes = run.modes.head(args.top)
    if args.json:
        print(json.dumps({"run_id": meta["run_id"], "model_id": meta["model_id"], "clean": meta.get("clean"),
                          "modes": json.loads(modes.to_json(orient="records"))}, indent=2))
        return 0
    print(f"{meta['model_id']} @ {str(meta.get('model_commit_sha') or 'local')[:7]}: {meta.get('queries')} queries, "
          f"{meta.get('failures')} failures ({meta['algorithm']}, budget {meta['budget']}, seed {meta['seed']})")
    clean = meta.get("clean") or {}
    if clean.get("queries"):
        print(f"clean failure rate {clean['failures']}/{clean['queries']} = {clean['rate']:.2f} "
              f"[{clean['ci_low']:.2f}, {clean['ci_high']:.2f}]: a failure mode fails significantly more often")
    print(format_mode_table(modes, run.space, max_rows=args.top))
    return 0
