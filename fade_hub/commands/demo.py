"""`fade-hub demo`: the whole loop on a small real model, offline, in a few minutes."""

from __future__ import annotations

import argparse
import time

from ..demo.run import DemoConfig
from ..options import add_options, build_config


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `demo` subcommand."""
    p = subparsers.add_parser(
        "demo",
        help="Explore a small demo model with ppo and publish its failures (offline).",
        description=(
            "Train (once, cached) a small image classifier on generated shapes, publish it to an embedded "
            "local Hub, explore it with ppo over rotation x brightness x saturation, push the run as a "
            "dataset and print the failure modes. No account or network needed; --hub-endpoint and a "
            "token (HF_TOKEN or `hf auth login`) use a real Hub instead."
        ),
    )
    add_options(p, DemoConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo and print the failure modes and where to look."""
    from ..demo import run_demo

    started = time.perf_counter()
    result = run_demo(build_config(DemoConfig, args))
    import pandas as pd

    from ..landscape import failure_modes, format_mode_table
    from ..perturb import ConceptSpace

    meta = result.meta
    landscape = pd.read_parquet(result.run_dir / "data" / "landscape.parquet")
    print(f"\nfade-hub demo: {meta['queries']} queries to {result.model_repo}, {meta['failures']} failures "
          f"in {meta['failure_cells']} cells ({time.perf_counter() - started:.0f} s)\n")
    print(format_mode_table(failure_modes(landscape, top_k=5), ConceptSpace.from_dict(meta["space"])))
    print(f"\nrun directory:  {result.run_dir.resolve()}")
    print(f"dataset card:   {(result.run_dir / 'README.md').resolve()}")
    print(f"pictures:       {(result.run_dir / 'plots').resolve()}")
    print(f"pushed dataset: {result.dataset_url}")
    if result.hub_root is not None:
        print(f"\nThe embedded Hub stopped with the demo; serve it again with:\n"
              f"  fade-hub hub serve --root {result.hub_root.resolve()}\n"
              f"then: HF_ENDPOINT=<printed endpoint> HF_HUB_DISABLE_XET=1 fade-hub report {result.dataset_repo}")
    return 0
