"""`fade-hub report`: the failure-mode table of a local or pushed run."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from ..options import add_options, build_config, check_ranges, option


@dataclass
class ReportOptions:
    """What ``fade-hub report`` shows."""

    top: int = option(10, low=1, help="How many failure modes to show.")
    json: bool = option(False, help="Print JSON (the modes' landscape rows) instead of a table.")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `report` subcommand."""
    p = subparsers.add_parser(
        "report",
        help="Print the ranked failure modes of a run.",
        description="Print the ranked failure modes of RUN (a local run directory or a pushed dataset repo ID).",
    )
    p.add_argument("run", help="Run directory or dataset repo ID.")
    add_options(p, ReportOptions)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the run and print its top failure modes."""
    options = build_config(ReportOptions, args)
    check_ranges(options)
    from ..jsonio import to_json
    from ..landscape import format_mode_table
    from ..run import Run

    run = Run.open(args.run)
    meta = run.meta
    model = run.model_text
    modes = run.modes.head(options.top)
    if options.json:
        rows = json.loads(modes.to_json(orient="records"))
        print(to_json({"run_id": meta["run_id"], "model_id": model, "clean": meta.get("clean"), "modes": rows},
                      indent=2))
        return 0
    print(f"{model_line(model, meta)}: {meta.get('queries')} queries, "
          f"{meta.get('failures')} failures ({meta['algorithm']}, budget {meta['budget']}, seed {meta['seed']})")
    clean = meta.get("clean") or {}
    if clean.get("queries"):
        print(f"clean failure rate {clean['failures']}/{clean['queries']} = {clean['rate']:.2f} "
              f"[{clean['ci_low']:.2f}, {clean['ci_high']:.2f}]: a failure mode fails significantly more often")
    print(format_mode_table(modes, run.space, max_rows=options.top))
    return 0


def model_line(model: str, meta: dict) -> str:
    """The model as the report's first line names it: its revision, and where it was served when remote."""
    sha = str(meta.get("model_commit_sha") or "")[:7]
    served = (f"served at {meta['endpoint']}" if meta.get("endpoint") else
              f"served by provider {meta['provider']}" if meta.get("provider") else "")  # fmt: skip
    if served:
        return f"{model} @ {sha} ({served})" if sha else f"{model} ({served})"
    return f"{model} @ {sha or 'local'}"
