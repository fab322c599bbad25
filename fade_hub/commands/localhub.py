"""`fade-hub localhub`: run LocalHub, a Hugging Face Hub-compatible server over a folder (offline tests and demos)."""

from __future__ import annotations

import argparse
import errno
import signal
import sys
import threading
from pathlib import Path

from ..config.server import ServeOptions
from ..errors import BadConfig
from ..options import add_options, build_config, check_ranges
from ..paths import check_folder_target
from . import help_and_fail, renamed


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `localhub` subcommand and its `serve` action, and `hub`, its old name (hidden, deprecated)."""
    _add(subparsers, "localhub", help="Run LocalHub, a local Hugging Face Hub-compatible server (offline tests and demos).")
    _add(subparsers, "hub", renamed_to="localhub")


def _add(subparsers: argparse._SubParsersAction, name: str, renamed_to: str | None = None, **shown: str) -> None:
    parser = subparsers.add_parser(
        name,
        **shown,
        description=(
            "LocalHub serves model, dataset and Space repos stored in a folder through the Hub's HTTP API, "
            "so the unmodified huggingface_hub, datasets, transformers, peft and gradio clients work offline "
            "once HF_ENDPOINT points at it and HF_HUB_DISABLE_XET=1 is set."
        ),
    )
    parser.set_defaults(func=lambda args: help_and_fail(parser), loads_models=False)
    actions = parser.add_subparsers(dest="hub_command", metavar="ACTION")
    serve = actions.add_parser(
        "serve",
        help="Serve a folder as a Hub until Ctrl-C.",
        description=(
            "Serve the repos under --root (created if missing) until Ctrl-C or SIGTERM. Prints the endpoint and "
            "the environment variables clients need. Any token is accepted; repos created without an "
            "organization belong to 'local-user'."
        ),
    )
    serve.add_argument("--root", type=Path, required=True, help="Folder holding the repos (created if missing).")
    add_options(serve, ServeOptions)
    serve.set_defaults(func=renamed(run_serve, name, renamed_to) if renamed_to else run_serve, loads_models=False)


def run_serve(args: argparse.Namespace) -> int:
    """Serve ``args.root`` until interrupted; return 0 after a clean stop."""
    from ..localhub import LocalHub

    options = build_config(ServeOptions, args)
    check_ranges(options)
    check_folder_target(args.root, "--root", "to keep the repos in")
    hub = LocalHub(args.root, port=options.port, host=options.host)
    try:
        hub.start()
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise BadConfig(f"port {options.port} is already in use; pass another --port or omit it.") from None
        raise BadConfig(f"cannot listen on {options.host}:{options.port or 'a free port'}: {err.strerror}.") from None
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    print(f"LocalHub serving {args.root.resolve()} at {hub.endpoint}")
    print("Point the Hugging Face clients at it (any HF_TOKEN value is accepted):")
    print(f"export HF_ENDPOINT={hub.endpoint} HF_HUB_DISABLE_XET=1")
    print("Press Ctrl-C to stop.", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        hub.stop()
    print("LocalHub stopped.", file=sys.stderr)
    return 0
