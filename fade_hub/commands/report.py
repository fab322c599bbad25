"""`fade-hub report`: the failure regions of a local or pushed run, in words (``--cells``: the cell table too)."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from ..options import add_options, build_config, check_ranges, option


@dataclass
class ReportOptions:
    """What ``fade-hub report`` shows."""

    top: int = option(10, low=1, help="How many regions (and with --cells, failure-mode cells) to show.")
    cells: bool = option(False, help="Also show the failure-mode cells: the drill-down behind the regions.")
    json: bool = option(False, help="Print JSON (the regions' rows, and the cells' landscape rows) instead of text.")
    feedback: str | None = option(None, metavar="FOLDER|REPO_ID", help="Reviewers' feedback on the run: also show "
                                  "the judge's agreement with them (share and Cohen's kappa with 95%% intervals, "
                                  "overall and per region) and the regions they call judge errors.")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `report` subcommand."""
    p = subparsers.add_parser(
        "report",
        help="Print the failure regions of a run (and its failure-mode cells).",
        description="Print the failure regions of RUN (a local run directory or a pushed dataset repo ID): each in "
                    "words with its failure rate, the clean rate it beats and how sure that is; --cells adds the "
                    "cells behind them.",
    )
    p.add_argument("run", help="Run directory or dataset repo ID.")
    add_options(p, ReportOptions)
    p.set_defaults(func=run, loads_models=False)


def run(args: argparse.Namespace) -> int:
    """Load the run and print its regions (and cells)."""
    options = build_config(ReportOptions, args)
    check_ranges(options)
    from ..jsonio import to_json
    from ..landscape import format_mode_table
    from ..region_text import region_line
    from ..run import Run

    run = Run.open(args.run)
    meta = run.meta
    model = run.model_text
    regions = run.regions.head(options.top)
    modes = run.modes.head(options.top)
    check = judge_check(run, options.feedback) if options.feedback else None
    if options.json:
        document = {"run_id": meta["run_id"], "model_id": model, "clean": meta.get("clean"),
                    "confirmation": meta.get("confirmation"), "regions_computed": run.regions_computed,
                    "regions": json.loads(regions.to_json(orient="records"))}
        if options.cells:
            document["cells"] = json.loads(modes.to_json(orient="records"))
        if check is not None:
            document["judge_agreement"] = {"overall": vars(check.overall) if check.overall else None,
                                           "regions": {k: vars(v) for k, v in check.regions.items()},
                                           "judge_errors": check.judge_errors}
        print(to_json(document, indent=2))
        return 0
    print(f"{model_line(model, meta)}: {meta.get('queries')} queries, "
          f"{meta.get('failures')} failures ({meta['algorithm']}, budget {meta['budget']}, seed {meta['seed']})")
    clean = meta.get("clean") or {}
    if clean.get("queries"):
        print(f"clean failure rate {clean['failures']}/{clean['queries']} seeds = {clean['rate']:.2f} "
              f"[{clean['ci_low']:.2f}, {clean['ci_high']:.2f}]: a failure region fails significantly more often")
    if run.regions_computed:
        print("(recorded before fade-hub reported regions: regions computed from its queries, screening only)")
    print("\nfailure regions:" if len(regions) else "\nno failure region: nothing fails more often than clean inputs")
    for row in regions.itertuples():
        print(f"  {region_line(row)}")
    if options.cells:
        print("\nfailure-mode cells (drill-down):")
        print(format_mode_table(modes, run.space, max_rows=options.top))
    else:
        print("\n(--cells shows the cells behind the regions)")
    if options.feedback:
        from ..agreement import agreement_lines

        lines = agreement_lines(check)
        print("\n" + "\n".join(lines) if lines else "\nno reviewed example of this run in the feedback")
    return 0


def judge_check(run, feedback: str):
    """The run's judge checked against the resolved feedback at ``feedback`` (a folder or a repo id)."""
    from ..feedback.records import load
    from ..agreement import check_judge

    return check_judge(run.queries, run.regions, load(feedback).resolved(), run.meta["run_id"])


def model_line(model: str, meta: dict) -> str:
    """The model as the report's first line names it: its revision, and where it was served when remote."""
    sha = str(meta.get("model_commit_sha") or "")[:7]
    served = (f"served at {meta['endpoint']}" if meta.get("endpoint") else
              f"served by provider {meta['provider']}" if meta.get("provider") else "")  # fmt: skip
    if served:
        return f"{model} @ {sha} ({served})" if sha else f"{model} ({served})"
    return f"{model} @ {sha or 'local'}"
