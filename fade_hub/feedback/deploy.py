"""Serve the feedback app locally, or deploy it as a Hub Space that starts from its own files.

A deployed Space holds ``app.py``, ``README.md`` and ``requirements.txt`` from ``spaces/feedback/`` plus
a copy of the pure-Python ``fade_hub`` modules the app imports (``vendor.app_modules``): the Space then needs
neither this checkout nor fade-hub's heavy dependencies (torch, transformers, ...). Its configuration
travels as Space variables (``FADE_FAILURES``, ``FADE_FEEDBACK_REPO``); the write token is a Space
secret the operator adds, never uploaded by us.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NETWORK_ERRORS, BadConfig, HubUnreachable

from .vendor import PACKAGE_DIR, app_modules

SPACE_TEMPLATE = PACKAGE_DIR.parent / "spaces" / "feedback"
SPACE_FILES = ("app.py", "README.md", "requirements.txt")


@dataclass
class DeployConfig:
    """What ``fade-hub space deploy`` publishes and where."""

    failures: str
    feedback_repo: str
    space_id: str
    private: bool = False
    token: str | None = None


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
    if not SPACE_TEMPLATE.is_dir():
        raise BadConfig(
            f"the Space template {SPACE_TEMPLATE} is missing; deploy from a fade-hub checkout "
            "(it ships spaces/feedback)"
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

    if Path(config.failures).exists():
        raise BadConfig(
            f"--failures {config.failures} is a local path; a Space reads a dataset repo: push the run first "
            f"(fade-hub push {config.failures} USER/NAME) and pass that repo id"
        )
    Run.open(config.failures, token=config.token)  # RunNotFound unless it is a pushed run
    api = HfApi(token=config.token)
    variables = {"FADE_FAILURES": config.failures, "FADE_FEEDBACK_REPO": config.feedback_repo}
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


def serve(app_config, *, host: str = "127.0.0.1", port: int | None = None) -> None:
    """Run the feedback app in this process until Ctrl-C or SIGTERM; push the last feedback on the way out."""
    from .app import FeedbackApp

    app = FeedbackApp(app_config)
    try:
        app.serve(server_name=host, server_port=port)
    except OSError as err:
        if "port" not in str(err).lower():
            raise
        raise BadConfig(f"cannot listen on {host}:{port or 'default port'} ({err}); pass another --port") from None
