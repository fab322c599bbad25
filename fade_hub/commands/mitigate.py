"""`fade-hub mitigate`: train a LoRA adapter that fades a run's failure modes, measure it, publish it."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..mitigate.config import MitigateConfig
from ..options import add_options


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `mitigate` subcommand."""
    p = subparsers.add_parser(
        "mitigate",
        help="Train a LoRA adapter on the feedback that fades a run's failure modes (a mitigated variant).",
        description=(
            "Read RUN (a run directory or its dataset repo) and the reviewers' verdicts, train a peft LoRA adapter "
            "on the base model that fades the modes marked fix, measure the failure rates before and after on "
            "seeds never trained on, and write the adapter folder (a Hub model repo on disk: adapter, "
            "fade_eval.json, plots, model card); --push-to-hub publishes it."
        ),
    )
    p.add_argument("run", nargs="?", default=argparse.SUPPRESS, help="Run directory or dataset repo ID.")
    p.add_argument("--config", default=None, help="YAML file of options (same names as the flags); flags override it.")
    add_options(p, MitigateConfig)
    p.set_defaults(func=run, interrupted="interrupted: the adapter folder was not written; run the same command "
                   "again to start over (nothing to clean up).")


def run(args: argparse.Namespace) -> int:
    """Mitigate and print the before/after table (relaunched under ``accelerate launch`` for --num-processes)."""
    config = MitigateConfig.from_args(args)
    if config.num_processes > 1:
        return launch(config)
    from ..mitigate import format_shift, mitigate

    result = mitigate(config)
    if not result.figures:  # a worker process of a multi-process run: the main process reports
        return 0
    print(format_shift(result.figures))
    if config.recheck:
        from ..recheck import recheck_dir, recheck_lines

        print("", *recheck_lines(result.figures), f"variant's run: {recheck_dir(result.path)}", sep="\n")
    print(f"\nadapter: {result.path}")
    if result.url:
        print(f"pushed:  {result.url}")
    return 0


def launch(config: MitigateConfig) -> int:
    """Run the same mitigation under ``accelerate launch`` with ``config.num_processes`` processes."""
    import subprocess
    import sys
    import tempfile

    import torch
    import yaml

    config.validate()
    options = {**config.flat(), "num_processes": 1}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(options, handle)
    cpu = config.device == "cpu" or not torch.cuda.is_available()
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(config.num_processes),
               *(["--cpu"] if cpu else []), "-m", "fade_hub.cli", "mitigate", "--config", handle.name]
    try:
        return subprocess.run(command, check=False).returncode
    finally:
        Path(handle.name).unlink(missing_ok=True)
