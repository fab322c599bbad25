"""The ``fade-hub`` command line: parses flags, calls the library, maps errors to exit codes."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import NoReturn, Sequence

from . import __version__
from .errors import EXIT_USER_ERROR, FadeHubError
from .interrupts import import_torch_whole
from .redact import redact_every_log_record

# what Ctrl-C prints; a command whose interruption leaves something else sets ``interrupted`` on its parser
INTERRUPTED = "interrupted: what was produced so far is kept; rerun with --resume to continue."
NOTHING_STARTED = "interrupted before the command started: nothing was written."

# Each command module exposes ``register(subparsers)``; it sets ``func`` on its parser, and ``loads_models=False``
# where the command never imports the model stack (torch is then not imported before it runs).
COMMAND_MODULES = ("explore", "rejudge", "report", "compare", "check", "push", "mitigate", "pull", "demo", "space",
                   "localhub")


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a usage error as one ``error:`` line pointing at ``--help`` (not the whole usage block)."""

    def error(self, message: str) -> NoReturn:
        """Print ``error: MESSAGE (see PROG --help)`` and exit with the usage-error status."""
        self.exit(EXIT_USER_ERROR, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every subcommand registered."""
    parser = ArgumentParser(
        prog="fade-hub",
        description=(
            "Discover where a Hugging Face model fails, publish the failure landscape "
            "to the Hub, and collect feedback to fade those failures."
        ),
    )
    parser.add_argument("--version", action="version", version=f"fade-hub {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="Show full tracebacks and debug logs instead of one-line errors."
    )
    parser.set_defaults(loads_models=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    from importlib import import_module

    for name in COMMAND_MODULES:
        import_module(f".commands.{name}", __package__).register(subparsers)
    return parser


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a Unix tool killed by SIGPIPE reports (`report | head -1`)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit status (quietly 141 when the reader of stdout went away)."""
    try:
        status = _main(argv)
        sys.stdout.flush()  # inside the try: a reader gone by now is a broken pipe too, not an exit-time message
        return status
    except BrokenPipeError:
        # stdout is closed (`| head -1`): stop quietly, as Unix tools do, and keep Python's exit-time flush quiet
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    """Parse the flags and run the command (errors as one line, exit status 2)."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except KeyboardInterrupt:  # Ctrl-C while the commands load: nothing has started
        print(NOTHING_STARTED, file=sys.stderr)
        return 130
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    redact_every_log_record()  # no user info or query string of a URL in any line (--debug included)
    # huggingface_hub prints its warnings through its own handler: passed on to ours too, each would show twice
    logging.getLogger("huggingface_hub").propagate = False
    if not args.debug:
        # library advice (e.g. transformers' "requires torchvision") must not turn a one-line error into two
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:  # torch imported whole first: a Ctrl-C during its native start-up would abort the process
        if args.loads_models:
            import_torch_whole()
    except KeyboardInterrupt:
        print(NOTHING_STARTED, file=sys.stderr)
        return 130
    try:
        return int(args.func(args) or 0)
    except FadeHubError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(getattr(args, "interrupted", INTERRUPTED), file=sys.stderr)
        return 130


def entry() -> NoReturn:
    """The ``fade-hub`` program: run the CLI and exit with its status. Once the command is done a Ctrl-C is ignored,
    so that one arriving while the interpreter shuts down (its finalizers run) prints no traceback."""
    status = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(status)


if __name__ == "__main__":
    entry()
