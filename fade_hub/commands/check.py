"""`fade-hub check`: a CI gate over a run (exit 0 pass, 1 fail, 2 bad input), optionally against a base run."""

from __future__ import annotations

import argparse

from ..gate import CheckConfig
from ..options import add_options, build_config

EXIT_FAILED = 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `check` subcommand."""
    p = subparsers.add_parser(
        "check",
        help="Gate a run for CI: exit 1 when a failure region fails too often (or, with --against, is new).",
        description=(
            "Exit 0 when no failure region of RUN (a run directory or dataset repo) fails more often than clean "
            "inputs by more than --max-excess and the clean failure rate is under --max-clean (when given); exit 1 "
            "otherwise, naming the regions that fail the gate; exit 2 for bad input. --against BASE makes it a "
            "regression gate: exit 1 when RUN has a region `fade-hub compare BASE RUN` reports new. --junit FILE "
            "writes a JUnit XML report with one test case per region."
        ),
    )
    p.add_argument("run", metavar="RUN", help="Run directory or dataset repo ID.")
    add_options(p, CheckConfig)
    p.set_defaults(func=run, loads_models=False)


def run(args: argparse.Namespace) -> int:
    """Gate the run, print each test case, and return 0 (pass) or 1 (fail)."""
    from ..gate import check

    config = build_config(CheckConfig, args)
    result = check(config)
    failed = len(result.failed)
    verdict = "passed" if result.passed else f"FAILED ({failed} of {len(result.cases)} test cases)"
    print(f"fade-hub check {config.run}: {verdict}")
    for case in result.cases:
        print(f"  {'pass' if case.passed else 'FAIL'}  {case.name}: {case.message}")
    if config.junit:
        print(f"JUnit report: {config.junit}")
    return 0 if result.passed else EXIT_FAILED
