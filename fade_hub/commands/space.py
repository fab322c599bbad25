"""`fade-hub space`: serve the feedback app locally, deploy it as a Hub Space, or exclude a reviewer's records."""

from __future__ import annotations

import argparse

from ..feedback.config import AppConfig
from ..feedback.deploy import DeployConfig
from ..feedback.exclude import ExcludeConfig
from ..options import add_options, build_config
from . import help_and_fail


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `space` subcommand with its `serve`, `deploy` and `exclude` actions."""
    parser = subparsers.add_parser(
        "space",
        help="Collect human feedback on a run's failure regions (local app or Hub Space).",
        description=(
            "The feedback app shows a run's failure regions one at a time, with their figures in plain words, the "
            "failing examples (the clean seed beside the perturbed input), the region's cells and a heatmap; people "
            "give a verdict (fix / acceptable / not_a_failure) per region, or per cell or example inside one, with an "
            "optional correction and note, and may change or withdraw it later. Each "
            "submission is appended to a JSON-lines file and pushed to a feedback dataset repo; read it back with "
            "fade_hub.feedback.load(REPO_ID).resolved(). Mitigated variants of the run are shown beside it."
        ),
    )
    parser.set_defaults(func=lambda args: help_and_fail(parser))
    actions = parser.add_subparsers(dest="space_command", metavar="ACTION")

    serve = actions.add_parser(
        "serve",
        help="Run the feedback app in this process until Ctrl-C.",
        description=(
            "Serve the feedback app for a run directory or a pushed run. Feedback is recorded as the user of your "
            "Hub token (or --reviewer NAME; without either the app refuses to start unless --allow-anonymous), "
            "written to --feedback-dir, and pushed to --feedback-repo if given (every --push-every minutes and "
            "when the app stops)."
        ),
    )
    add_options(serve, AppConfig)
    serve.set_defaults(func=run_serve)

    deploy = actions.add_parser(
        "deploy",
        help="Create or update a Hub Space running the feedback app.",
        description=(
            "Create the Space (gradio SDK) and the feedback dataset repo if missing, upload the app with the "
            "fade_hub modules it needs (it starts from its own files), and set FADE_FAILURES and "
            "FADE_FEEDBACK_REPO (and FADE_REVIEWERS, FADE_ADAPTERS, FADE_ALLOW_ANONYMOUS when given) as Space "
            "variables. No token is uploaded: add one with write access to the feedback repo as the Space secret "
            "HF_TOKEN (printed instructions; until then the Space shows them too)."
        ),
    )
    add_options(deploy, DeployConfig)
    deploy.set_defaults(func=run_deploy)

    exclude = actions.add_parser(
        "exclude",
        help="Leave one user's feedback out of resolved() without deleting it.",
        description=(
            "Append an exclusion record (by you, the operator) to the feedback: fade_hub.feedback.load(...)."
            "resolved() then leaves out every record of USER, for every run, while the records stay in the "
            "dataset. --undo appends the record that brings them back. Nothing is written when USER is already "
            "excluded (or, with --undo, not excluded), and a USER without records there is refused; the feedback repo "
            "must exist (it is never created here)."
        ),
    )
    exclude.add_argument("user", metavar="USER", help="The Hub username whose records to exclude.")
    add_options(exclude, ExcludeConfig)
    exclude.set_defaults(func=run_exclude)


def run_serve(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    from ..errors import BadConfig
    from ..feedback.deploy import serve

    config = build_config(AppConfig, args)
    if not (config.feedback_repo or config.feedback_dir):
        raise BadConfig(
            "say where feedback goes: --feedback-repo REPO_ID (pushed to the Hub) or --feedback-dir DIR (kept local)"
        )
    config.validate()
    serve(config)
    return 0


def run_deploy(args: argparse.Namespace) -> int:
    """Deploy and print the Space URL and how to add its token."""
    from ..feedback.deploy import deploy

    deployment = deploy(build_config(DeployConfig, args))
    print(f"Space: {deployment.url}")
    for key, value in deployment.variables.items():
        print(f"variable {key}={value}")
    print(deployment.instructions())
    return 0


def run_exclude(args: argparse.Namespace) -> int:
    """Append the exclusion (unless it would change nothing) and say what happened."""
    from ..feedback.exclude import exclude_user

    print(exclude_user(build_config(ExcludeConfig, args)).message)
    return 0
