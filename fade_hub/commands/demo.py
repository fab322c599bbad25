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
        help="The whole loop on a small demo model: explore, publish, review, mitigate, reload (offline).",
        description=(
            "Take the small image classifier that ships with fade-hub (a ResNet for generated shapes: the same "
            "weights on every machine), publish it to an embedded local Hub, explore it with ppo over rotation x brightness x saturation, push the run as a dataset, "
            "let a simulated reviewer mark the confirmed failure regions fix through the feedback app, train a LoRA "
            "adapter on that feedback over every cell of the regions, publish it as a mitigated variant, reload it "
            "with stock peft and print the before/after table (the regions, the clean seeds and the collateral on "
            "perturbations never trained on, with 95% intervals). No account or network needed; --hub-endpoint "
            "and a token (HF_TOKEN or `hf auth login`) use a real Hub instead."
        ),
    )
    add_options(p, DemoConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo and print the failure regions, the mitigation's before/after table and where to look."""
    from ..demo import run_demo

    started = time.perf_counter()
    result = run_demo(build_config(DemoConfig, args))  # first: it starts the embedded Hub before the Hub client loads
    from ..mitigate import format_shift
    from ..recheck import recheck_lines
    from ..region_text import region_line
    from ..run import Run

    run = Run.open(result.run_dir)
    meta = run.meta
    regions = run.regions[run.regions["is_mode"].astype(bool)].head(3)
    print(f"\nfade-hub demo: {meta['queries']} queries to {result.model_repo}, {meta['failures']} failures, "
          f"{meta.get('failure_regions', 0)} failure region(s)\n")
    for row in regions.itertuples():
        print(region_line(row))
    if result.reviewed:
        print(f"\nsimulated reviewer (not a person): marked the {len(result.reviewed)} confirmed region(s) 'fix' "
              f"through the feedback app's API, one verdict per region ({', '.join(result.reviewed)})")
        faded = sum(len(region["cells"]) for region in result.figures["regions"])
        print(f"mitigated variant, trained on every cell of the region(s) ({faded} cells) and measured on "
              f"{result.figures['eval_seeds']['count']} seeds it never saw:\n")
        print(format_shift(result.figures))
        print("", *recheck_lines(result.figures), sep="\n")
        same, total = result.reloaded
        print(f"\nreloaded with stock peft (PeftModel.from_pretrained): {same} of {total} evaluation examples give "
              "the mitigated answer")
    else:
        print("\nno confirmed failure region to review, so no mitigation (raise --budget)")
    print(f"\nrun directory:  {result.run_dir.resolve()}")
    print(f"dataset card:   {(result.run_dir / 'README.md').resolve()}")
    print(f"pushed dataset: {result.dataset_url}")
    if result.adapter_dir:
        print(f"adapter:        {result.adapter_dir.resolve()}")
        print(f"pushed variant: {result.adapter_url}")
    print(f"total time:     {time.perf_counter() - started:.0f} s")
    if result.hub_root is not None:
        print(f"\nThe embedded Hub stopped with the demo; serve it again with:\n"
              f"  fade-hub localhub serve --root {result.hub_root.resolve()}\n"
              f"then: HF_ENDPOINT=<printed endpoint> HF_HUB_DISABLE_XET=1 fade-hub report {result.dataset_repo}")
    return 0
