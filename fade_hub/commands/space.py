"""`fade-hub space`: serve the feedback app locally, or deploy it as a Hub Space."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from ..options import add_options, build_config, check_ranges, option
from ..paths import check_repo_id
from . import help_and_fail

MAX_PUSH_MINUTES = 7 * 24 * 60


@dataclass
class ServeOptions:
    """How ``fade-hub space serve`` runs the app (its numbers are range-checked before anything starts)."""

    push_every: float = option(5.0, low=0.0, low_open=True, high=MAX_PUSH_MINUTES, metavar="MIN",
                               help="Minutes between pushes to --feedback-repo.")
    host: str = option("127.0.0.1", help="Interface to listen on (0.0.0.0 for all).")
    port: int | None = option(None, low=1, high=65535,
                              help="Port (default: gradio's, 7860 or the next free one).")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `space` subcommand with its `serve` and `deploy` actions."""
    parser = subparsers.add_parser(
        "space",
        help="Collect human feedback on a run's failure modes (local app or Hub Space).",
        description=(
            "The feedback app shows a run's ranked failure modes, its landscape and the failing examples; "
            "people give a verdict (fix / acceptable / not_a_failure) per mode or example, with an optional "
            "correction and note. Each submission is appended to a JSON-lines file and pushed to a feedback "
            "dataset repo; read it back with fade_hub.feedback.load(REPO_ID)."
        ),
    )
    parser.set_defaults(func=lambda args: help_and_fail(parser))
    actions = parser.add_subparsers(dest="space_command", metavar="ACTION")

    serve = actions.add_parser(
        "serve",
        help="Run the feedback app in this process until Ctrl-C.",
        description=(
            "Serve the feedback app for a run directory or a pushed run. Feedback is recorded as the user of "
            "your Hub token (or 'local') and written to --feedback-dir, and pushed to --feedback-repo if given "
            "(every --push-every minutes and when the app stops)."
        ),
    )
    serve.add_argument("--failures", required=True, metavar="RUN_DIR|REPO_ID",
                       help="A run directory or the dataset repo it was pushed to.")
    serve.add_argument("--feedback-repo", metavar="REPO_ID",
                       help="Dataset repo to push feedback to (created if missing).")
    serve.add_argument("--feedback-dir", metavar="DIR",
                       help="Folder for feedback files (with --feedback-repo: where they wait to be pushed; "
                            "default: one folder per Hub endpoint and repo under CACHE/feedback, CACHE being "
                            "$FADE_HUB_CACHE, else HF_HOME/fade-hub). Only files written for this Hub and repo "
                            "are pushed; files waiting for another are listed at start.")
    add_options(serve, ServeOptions)
    serve.set_defaults(func=run_serve)

    deploy = actions.add_parser(
        "deploy",
        help="Create or update a Hub Space running the feedback app.",
        description=(
            "Create the Space (gradio SDK) and the feedback dataset repo if missing, upload the app with the "
            "fade_hub modules it needs (it starts from its own files), and set FADE_FAILURES and "
            "FADE_FEEDBACK_REPO as Space variables. No token is uploaded: add one with write access to the "
            "feedback repo as the Space secret HF_TOKEN (printed instructions)."
        ),
    )
    deploy.add_argument("--failures", required=True, metavar="REPO_ID", help="The pushed run (a dataset repo id).")
    deploy.add_argument("--feedback-repo", required=True, metavar="REPO_ID", help="Dataset repo feedback is pushed to.")
    deploy.add_argument("--space-id", required=True, metavar="REPO_ID", help="The Space, e.g. user/model-feedback.")
    deploy.add_argument("--private", action="store_true", help="Create the Space and the feedback repo as private.")
    deploy.set_defaults(func=run_deploy)


def run_serve(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    from ..errors import BadConfig

    if not (args.feedback_repo or args.feedback_dir):
        raise BadConfig(
            "say where feedback goes: --feedback-repo REPO_ID (pushed to the Hub) or --feedback-dir DIR (kept local)"
        )
    options = build_config(ServeOptions, args)
    check_ranges(options)
    if args.feedback_repo:
        check_repo_id(args.feedback_repo, "--feedback-repo")
    from ..feedback.app import AppConfig  # gradio: imported once the flags are known to be good
    from ..feedback.deploy import serve

    config = AppConfig(
        failures=args.failures, feedback_repo=args.feedback_repo, feedback_dir=args.feedback_dir,
        push_every=options.push_every,
    )
    serve(config, host=options.host, port=options.port)
    return 0


def run_deploy(args: argparse.Namespace) -> int:
    """Deploy and print the Space URL and how to add its token."""
    for flag, repo_id in (("--feedback-repo", args.feedback_repo), ("--space-id", args.space_id)):
        check_repo_id(repo_id, flag)
    from ..feedback.deploy import DeployConfig, deploy

    deployment = deploy(DeployConfig(args.failures, args.feedback_repo, args.space_id, private=args.private))
    print(f"Space: {deployment.url}")
    for key, value in deployment.variables.items():
        print(f"variable {key}={value}")
    print(deployment.instructions())
    return 0
