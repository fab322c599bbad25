"""`fade-hub compare`: which failure regions of one run another run fixed, kept or added."""

from __future__ import annotations

import argparse

from ..comparison import CompareConfig
from ..options import add_options, build_config


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `compare` subcommand."""
    p = subparsers.add_parser(
        "compare",
        help="Compare two runs over the same concept space: regions fixed, persisting and new, and the clean rate.",
        description=(
            "Compare RUN_B with RUN_A (run directories or dataset repos over the same concept space and task: two "
            "models, two versions of one model, a base model and its mitigated variant). Each failure region of A "
            "is fixed (B fails significantly less there and no longer above its clean rate), persisting (a failure "
            "region of B overlaps it) or unresolved; a failure region of B is new when it overlaps none of A's or B "
            "fails significantly more there. Paired on the seeds both runs asked at the same cells, independent "
            "otherwise; 95% intervals; Holm's adjustment across regions."
        ),
    )
    p.add_argument("run_a", metavar="RUN_A", help="The reference run (e.g. the base model's).")
    p.add_argument("run_b", metavar="RUN_B", help="The run compared with it (e.g. the mitigated variant's).")
    add_options(p, CompareConfig)
    p.set_defaults(func=run, loads_models=False)


def run(args: argparse.Namespace) -> int:
    """Compare and print the regions by status (and write the JSON and the picture when asked)."""
    from ..comparison import compare
    from ..comparison_text import comparison_text

    config = build_config(CompareConfig, args)
    comparison = compare(config)
    print(comparison_text(comparison))
    for what, path in (("JSON", config.json), ("picture", config.plot)):
        if path:
            print(f"{what}: {path}")
    return 0
