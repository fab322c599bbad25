"""`fade-hub explore`: find where a model fails and write the run directory (optionally push it)."""

from __future__ import annotations

import argparse
import logging
import sys

from ..explore import budget
from ..explore.config import ExploreConfig
from ..explore.precheck import check_inputs
from ..options import add_options
from ..store import RunStore


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `explore` subcommand."""
    p = subparsers.add_parser(
        "explore",
        help="Discover a model's failure modes over a concept space.",
        description=(
            "Wrap MODEL (a Hub model ID or a local folder) as an environment, perturb seed inputs along a "
            "concept space, judge each answer, and search for failures with reinforcement learning (ppo) or a "
            "baseline. Writes a run directory laid out as a Hub dataset."
        ),
    )
    p.add_argument("model", nargs="?", default=argparse.SUPPRESS, help="Hub model ID (user/name) or local model folder.")
    p.add_argument("--config", default=None, help="YAML file of options (same names as the flags); flags override it.")
    p.add_argument("--list-builtins", action="store_true", default=False,
                   help="List the built-in seed sets and concept spaces, then exit.")
    add_options(p, ExploreConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the config from YAML and flags, explore, report where the run is."""
    if args.list_builtins:
        return list_builtins()
    config = ExploreConfig.from_args(args)
    config.validate()  # before torch is imported: a bad flag, output folder or input file is reported at once
    RunStore(config.run_dir).check_output(config.resume)
    check_inputs(config)
    show_plan()
    from ..explore.runner import explore
    from ..region_text import region_line

    result = explore(config)
    print(f"run: {result.path}  ({result.meta['queries']} queries, {result.meta['failures']} failures)")
    if result.meta.get("usage"):  # a remote model: what the endpoint or provider was asked for, over all sessions
        used = ", ".join(f"{value} {name.replace('_', ' ')}" for name, value in result.meta["usage"].items() if value)
        print(f"endpoint usage: {used}")
    converged = result.meta.get("converged")
    if converged:  # --stop-when-converged stopped the search early
        print(f"converged after {converged['explore_queries']} explore queries: the screened regions stayed the same "
              f"for the last {converged['window']}; {converged['budget'] - converged['explore_queries']} of the "
              f"budget of {converged['budget']} not spent")
    regions = result.regions
    print("failure regions:" if len(regions) else "no failure region: nothing fails more often than clean inputs")
    for row in regions.itertuples():
        print(f"  {region_line(row)}")
    print(f"(fade-hub report {result.path} --cells: the cells behind them)")
    if config.push_to_hub:
        from ..hub import push_run

        url = push_run(result.path, config.push_to_hub, private=config.private, public=config.public)
        print(f"pushed: {url}")
    return 0


class _StderrLines(logging.Handler):
    """Writes each record as a plain line to the current ``sys.stderr``."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr)


def show_plan() -> None:
    """Print the run's planned model calls (the library logs them) on stderr, as plain lines."""
    plan_logger = logging.getLogger(budget.__name__)
    if not any(isinstance(handler, _StderrLines) for handler in plan_logger.handlers):
        plan_logger.addHandler(_StderrLines())
    plan_logger.setLevel(logging.INFO)
    plan_logger.propagate = False


def list_builtins() -> int:
    """Print the built-in seed sets and concept spaces."""
    from ..perturb import list_builtin_spaces
    from ..seeds import list_builtin_seeds

    print("seed sets (--seeds builtin:NAME):")
    for name, text in list_builtin_seeds().items():
        print(f"  {name:<20} {text}")
    print("concept spaces (--concepts builtin:NAME):")
    for name, text in list_builtin_spaces().items():
        print(f"  {name:<20} {text}")
    return 0
