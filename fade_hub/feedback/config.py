"""AppConfig: where the feedback app reads the run and writes feedback, who may review, which variants to show.

Its fields are the ``fade-hub space serve`` flags; on a Space each comes from a Space variable (``ENV``), and the
token from the ``HF_TOKEN`` secret.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.server import ServeOptions
from ..errors import BadConfig
from ..options import ConfigTree, base_type, check_ranges, csv_list, option, option_fields, section
from ..paths import check_folder_target, check_repo_id
from .identity import Reviewers
from .records import default_staging_dir

MAX_PUSH_MINUTES = 7 * 24 * 60  # a week
LOCAL_DIR = "fade-feedback"  # where feedback goes when no Hub repo is configured
_WHERE, _WHO, _SERVER = "feedback destination", "reviewers", "server"

# Space variable of each field that a Space sets (``fade-hub space deploy`` writes them)
ENV = {
    "failures": "FADE_FAILURES",
    "feedback_repo": "FADE_FEEDBACK_REPO",
    "feedback_dir": "FADE_FEEDBACK_DIR",
    "push_every": "FADE_FEEDBACK_EVERY",
    "allow_anonymous": "FADE_ALLOW_ANONYMOUS",
    "reviewers": "FADE_REVIEWERS",
    "adapters": "FADE_ADAPTERS",
}


def _truthy(value: str | None) -> bool:
    return str(value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class ReviewOptions:
    """The review of a run: the run, where feedback goes, who may review, which variants to show, and the Space it
    runs on (the help texts are ``space serve``'s; ``space deploy`` and ``space exclude`` give theirs)."""

    failures: str = option("", metavar="RUN_DIR|REPO_ID", help="A run directory or the dataset repo it was pushed to.")
    feedback_repo: str | None = option(None, group=_WHERE, metavar="REPO_ID",
                                       help="Dataset repo to push feedback to (created if missing).")
    feedback_dir: str | None = option(None, group=_WHERE, metavar="DIR", help=(
        "Folder for feedback files (with --feedback-repo: where they wait to be pushed; default: one folder per Hub "
        "endpoint and repo under CACHE/feedback, CACHE being $FADE_HUB_CACHE, else HF_HOME/fade-hub). Only files "
        "written for this Hub and repo are pushed; files waiting for another are listed at start."))
    push_every: float = option(5.0, group=_WHERE, metavar="MIN", low=0.0, low_open=True, high=MAX_PUSH_MINUTES,
                               help="Minutes between pushes to --feedback-repo.")
    reviewer: str | None = option(None, group=_WHO, metavar="NAME", help=(
        "Record your feedback under this name (default: the user of your Hub token). Needed when the token "
        "cannot be verified (offline, another Hub)."))
    allow_anonymous: bool = option(False, group=_WHO, help=(
        "Accept feedback from nobody in particular: locally when no user is known, on a Space without signing in "
        "(recorded as 'anonymous')."))
    reviewers: list[str] = option(group=_WHO, csv=True, default_factory=list, metavar="USER,org:ORG,...", help=(
        "Only these users and members of these organisations may submit (on a Space: the Space variable "
        "FADE_REVIEWERS). Default: anyone who can sign in."))
    adapters: list[str] = option(group="mitigated variants", many=True, default_factory=list, metavar="REPO_OR_DIR",
                                 help=("Mitigated variants (adapter repos or folders written by fade-hub mitigate) to "
                                       "show beside the base model, in addition to those published for this run."))
    find_adapters: bool = option(True, group="mitigated variants", flag="--no-find-adapters", help=(
        "Do not look for adapters on the Hub whose model card names this run (fade_hub.run_id); they are looked for "
        "only when the run or --feedback-repo is on the Hub."))
    space_id: str | None = option(None, cli=False, help="The Space's repo id (SPACE_ID), for its settings link.")
    token: str | None = option(None, cli=False, help="Hub token (HF_TOKEN); None: the stored login.")


@dataclass(init=False)
class AppConfig(ConfigTree):
    """Settings of the feedback app (``fade-hub space serve --help`` shows each with its default): the review, and
    where the app listens."""

    review: ReviewOptions = section(ReviewOptions)
    server: ServeOptions = section(ServeOptions, group=_SERVER, meta={"port": {"low": 1}}, helps={
        "host": "Interface to listen on (0.0.0.0 for all).", "port": "Port (default: gradio's, 7860 or the next free "
                                                                       "one)."})
    on_space: bool = option(False, cli=False, help="Running on a Hub Space (sign-in with OAuth).")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AppConfig:
        """Read the Space variables of ``ENV``, SPACE_ID and HF_TOKEN; BadConfig when FADE_FAILURES is missing."""
        env = os.environ if environ is None else environ
        fields = {field.name: field for _, field in option_fields(cls)}
        values: dict[str, Any] = {}
        for name, key in ENV.items():
            text = str(env.get(key) or "").strip()
            if text:
                values[name] = _parse(fields[name], key, text)
        if not values.get("failures"):
            raise BadConfig("FADE_FAILURES is not set: set it (a Space variable) to the failure dataset's repo id "
                            "or a run directory")
        space_id = str(env.get("SPACE_ID") or "").strip()
        return cls(**values, on_space=bool(space_id), space_id=space_id or None, token=env.get("HF_TOKEN") or None)

    def validate(self) -> None:
        """Check required values, ranges and contradictions; raise BadConfig naming the option."""
        if not self.failures:
            raise BadConfig("no run given: pass --failures RUN_DIR|REPO_ID")
        check_ranges(self)
        if self.feedback_repo:
            check_repo_id(self.feedback_repo, "--feedback-repo")
        if self.feedback_dir:
            check_folder_target(Path(self.feedback_dir), "--feedback-dir", "holding feedback files")
        reviewers = self.reviewer_list  # parsed here: a name no Hub user has is refused before anything starts
        if self.allow_anonymous and reviewers:
            raise BadConfig("--allow-anonymous and --reviewers contradict each other: anonymous feedback cannot be "
                            "restricted to named reviewers; drop one of them")

    @property
    def reviewer_list(self) -> Reviewers:
        """The allowed reviewers (empty: everyone)."""
        return Reviewers.parse(self.reviewers)

    def staging_dir(self) -> Path:
        """The folder this app appends feedback files to."""
        if self.feedback_dir:
            return Path(self.feedback_dir)
        return default_staging_dir(self.feedback_repo) if self.feedback_repo else Path(LOCAL_DIR)


def _parse(field: dataclasses.Field, key: str, text: str) -> Any:
    """A Space variable's text as the field's type."""
    kind = base_type(field)
    if kind == "bool":
        return _truthy(text)
    if kind == "list":
        if not csv_list(text):
            raise BadConfig(f"{key}={text!r} names nothing; remove the variable or list values separated by commas")
        return csv_list(text)
    if kind == "float":
        try:
            return float(text)
        except ValueError:
            raise BadConfig(f"{key}={text!r} is not a number") from None
    return text
