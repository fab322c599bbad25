"""Serve the feedback app locally, or deploy it as a Hub Space that starts from its own files.

A deployed Space holds ``app.py``, ``README.md`` and ``requirements.txt`` from ``spaces/feedback/`` plus
a copy of the pure-Python ``fade_hub`` modules the app imports (``vendor.app_modules``): the Space then needs
neither this checkout nor fade-hub's heavy dependencies (torch, transformers, ...). Its configuration
travels as Space variables (``FADE_FAILURES``, ``FADE_FEEDBACK_REPO``, and ``FADE_REVIEWERS``,
``FADE_ADAPTERS``, ``FADE_ALLOW_ANONYMOUS`` when given); the write token is a Space secret the operator adds,
never uploaded by us.

The template ships inside the package: ``fade_hub/feedback/space_template`` is a link to the top-level
``spaces/feedback`` folder in a checkout (the one place its files are edited), and a built wheel or sdist holds
real copies of them, so ``space deploy`` works from a pip install too.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NETWORK_ERRORS, BadConfig, HubUnreachable
from ..config.output import OutputOptions
from ..options import ConfigTree, section
from ..paths import check_repo_id
from .config import ENV, ReviewOptions
from .identity import Reviewers
from .vendor import PACKAGE_DIR, app_modules

SPACE_TEMPLATE = PACKAGE_DIR / "feedback" / "space_template"
SPACE_FILES = ("app.py", "README.md", "requirements.txt")
OPTIONAL_VARIABLES = ("reviewers", "adapters", "allow_anonymous")  # set when given, removed when not


@dataclass(init=False)
class DeployConfig(ConfigTree):
    """What ``fade-hub space deploy`` publishes and where (``fade-hub space deploy --help``): the review the Space
    runs, and whether its repos are private."""

    review: ReviewOptions = section(ReviewOptions, group=None, only=(
        "failures", "feedback_repo", "space_id", "reviewers", "adapters", "allow_anonymous", "token"), helps={
        "failures": "The pushed run (a dataset repo id).",
        "feedback_repo": "Dataset repo feedback is pushed to (created if missing).",
        "space_id": "The Space, e.g. user/model-feedback.",
        "reviewers": "Only these users and members of these organisations may submit (the Space variable "
                     "FADE_REVIEWERS).",
        "adapters": "Mitigated variants to show beside the base model, in addition to those whose card names the run.",
        "allow_anonymous": "Accept feedback without signing in (recorded as 'anonymous').",
        "token": "Hub token (default: HF_TOKEN or the stored login)."},
        meta={"failures": {"metavar": "REPO_ID"}, "space_id": {"metavar": "REPO_ID", "cli": True},
              "adapters": {"metavar": "REPO"}})
    result: OutputOptions = section(OutputOptions, group=None, only=("private",),
                                    helps={"private": "Create the Space and the feedback repo as private."})
    flag_order = ("failures", "feedback_repo", "space_id", "private")

    def validate(self) -> None:
        """BadConfig naming the missing or contradictory option."""
        for name in ("failures", "feedback_repo", "space_id"):
            if not getattr(self, name):
                raise BadConfig(f"pass --{name.replace('_', '-')} REPO_ID")
        check_repo_id(self.feedback_repo, "--feedback-repo")
        check_repo_id(self.space_id, "--space-id")
        reviewers = Reviewers.parse(self.reviewers)  # a name no Hub user has is refused before anything is created
        if self.allow_anonymous and reviewers:
            raise BadConfig("--allow-anonymous and --reviewers contradict each other; drop one of them")

    def variables(self) -> dict[str, str]:
        """The Space variables of this deployment (unset optional ones left out)."""
        values = {"failures": self.failures, "feedback_repo": self.feedback_repo,
                  "reviewers": ",".join(self.reviewers), "adapters": ",".join(self.adapters),
                  "allow_anonymous": "1" if self.allow_anonymous else ""}
        return {ENV[name]: value for name, value in values.items() if value}


@dataclass
class Deployment:
    """Where the deployed Space lives and what the operator still has to do."""

    space_id: str
    url: str
    settings_url: str
    variables: dict[str, str] = field(default_factory=dict)

    def instructions(self) -> str:
        """How to give the Space its write token (we never upload one)."""
        return (
            f"The Space needs a token with write access to {self.variables['FADE_FEEDBACK_REPO']} "
            "(and read access to the failure dataset if it is private).\n"
            f"Add it as the Space secret HF_TOKEN on {self.settings_url} (Variables and secrets), or run:\n"
            f"  python -c \"from huggingface_hub import HfApi; "
            f"HfApi().add_space_secret('{self.space_id}', 'HF_TOKEN', input('token: '))\""
        )


def stage_space(folder: str | Path) -> Path:
    """Write the Space's files into ``folder``: the app template plus the vendored fade_hub modules."""
    folder = Path(folder)
    missing = [name for name in SPACE_FILES if not (SPACE_TEMPLATE / name).is_file()]
    if missing:
        raise BadConfig(
            f"the Space template {SPACE_TEMPLATE} lacks {', '.join(missing)}; reinstall fade-hub (the package ships "
            "spaces/feedback as fade_hub/feedback/space_template)"
        )
    for name in SPACE_FILES:
        shutil.copy2(SPACE_TEMPLATE / name, folder / name)
    for source in app_modules():
        target = folder / "fade_hub" / source.relative_to(PACKAGE_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return folder


def deploy(config: DeployConfig) -> Deployment:
    """Create or update the Space and the feedback repo; set the Space variables; return where it lives."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    from ..run import Run
    from .records import ensure_feedback_repo

    config.validate()
    if Path(config.failures).exists():
        raise BadConfig(
            f"--failures {config.failures} is a local path; a Space reads a dataset repo: push the run first "
            f"(fade-hub push {config.failures} USER/NAME) and pass that repo id"
        )
    Run.open(config.failures, token=config.token)  # RunNotFound unless it is a pushed run
    api = HfApi(token=config.token)
    variables = config.variables()
    stale = [ENV[name] for name in OPTIONAL_VARIABLES if ENV[name] not in variables]
    try:
        space = api.create_repo(
            config.space_id, repo_type="space", space_sdk="gradio", private=config.private, exist_ok=True
        )
        ensure_feedback_repo(config.feedback_repo, private=config.private, token=config.token)
        with tempfile.TemporaryDirectory(prefix="fade-space-") as folder:
            api.upload_folder(
                repo_id=space.repo_id,
                repo_type="space",
                folder_path=stage_space(folder),
                delete_patterns=["fade_hub/**"],  # drop vendored modules that no longer exist
                commit_message=f"fade-hub feedback app for {config.failures}",
            )
        for key, value in variables.items():
            api.add_space_variable(space.repo_id, key, value)
        existing = api.get_space_variables(space.repo_id)
        for key in stale:
            if key in existing:
                api.delete_space_variable(space.repo_id, key)
    except NETWORK_ERRORS as err:
        raise HubUnreachable(
            f"could not reach the Hub at {constants.ENDPOINT} ({type(err).__name__}); nothing was half-deployed "
            "that a rerun of the same command would not fix"
        ) from None
    except HfHubHTTPError as err:
        raise HubUnreachable(
            f"the Hub refused the deployment: {str(err).splitlines()[0]}; check that the token may write to "
            f"{config.space_id} and {config.feedback_repo}, then rerun"
        ) from None
    url = f"{constants.ENDPOINT}/spaces/{space.repo_id}"
    return Deployment(space_id=space.repo_id, url=url, settings_url=f"{url}/settings", variables=variables)


def serve(app_config, *, host: str | None = None, port: int | None = None) -> None:
    """Run the feedback app in this process until Ctrl-C or SIGTERM; push the last feedback on the way out.

    ``host`` and ``port`` override the config's.
    """
    from .app import FeedbackApp

    app = FeedbackApp(app_config)
    host, port = host or app_config.host, port or app_config.port
    try:
        app.serve(server_name=host, server_port=port)
    except OSError as err:
        if "port" not in str(err).lower():
            raise
        raise BadConfig(f"cannot listen on {host}:{port or 'default port'} ({err}); pass another --port") from None
