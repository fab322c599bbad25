"""The feedback app: people review a run's failure regions one at a time and give verdicts that land on the Hub.

``serve_space()`` is what the Space's ``app.py`` runs (configured by Space variables; a page explains what is
missing instead of crashing); ``fade-hub space serve`` builds the same ``FeedbackApp`` from flags. Everything
that comes from the run (model outputs, inputs, labels, even the model id) is shown through text components
(``Textbox``, ``Dataframe`` with ``str`` cells, dropdown labels, gallery captions) or escaped Markdown, never
as HTML or Markdown of its own. This module and its imports load no torch or transformers.

API: ``submit_feedback(item, verdict, correction="", note="")`` returns the stored record as a dict;
``withdraw_feedback(item)`` takes back the caller's verdict on an item (also a stored record). Clients written for
fade-hub 0.1 name the item ``target``; both calls still take it under that name.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gradio as gr

from ..cache import keep_library_caches_in_root
from ..errors import BadConfig, FadeHubError
from .assets import CSS, SCRIPT, theme
from .config import ENV, AppConfig
from .identity import ANONYMOUS, Identity, local_identity, profile_orgs
from .records import (
    FeedbackRecord,
    FeedbackWriter,
    InvalidFeedback,
    load,
    make_record,
    make_withdrawal,
)
from .review import ReviewState
from .ui import ReviewUI
from .variants import load_variants, published_for
from .view import RunView
from .words import plain

logger = logging.getLogger(__name__)
keep_library_caches_in_root()  # gradio imports matplotlib on every event: its config and font cache stay out of HOME

SIGN_IN = "sign in with your Hugging Face account (button at the top) to submit feedback"


class MissingToken(BadConfig):
    """A deployed Space that pushes feedback but has no HF_TOKEN secret."""


class FeedbackApp:
    """The Gradio Blocks app over one run, one feedback writer and the feedback given so far."""

    def __init__(self, config: AppConfig) -> None:
        config.validate()
        self.config = config
        self.reviewers = config.reviewer_list
        self.view = RunView.open(config.failures, token=config.token)
        if config.on_space:
            self.identity = Identity(None)
        else:
            self.identity = local_identity(config.token, config.reviewer, config.allow_anonymous)
        if self.identity.warning:
            logger.warning("%s", self.identity.warning)
        if self.identity.user and not self.reviewers.allows(self.identity.user, self.identity.orgs):
            logger.warning("%s is not among the reviewers (%s): submissions from here will be refused",
                           self.identity.user, self.reviewers.describe())
        self.writer = FeedbackWriter(
            config.staging_dir(), config.feedback_repo, every=config.push_every, token=config.token
        )
        if config.on_space and not config.feedback_repo:
            logger.warning("FADE_FEEDBACK_REPO is not set: feedback stays on this Space's disk (%s) and is lost "
                           "when the Space restarts", self.writer.folder.resolve())
        sources: list[Callable] = [self.writer.read]
        if config.feedback_repo:
            sources.append(lambda: load(config.feedback_repo, token=config.token))
        self.reviews = ReviewState(self.view.run_id, sources)
        self.variants, self.variant_problems = load_variants(self._variant_specs(), token=config.token)
        self.ui = ReviewUI(self)
        self.demo = self.ui.build()

    def _variant_specs(self) -> list[str]:
        """Adapters to show: the ``--adapters`` given, the one this run was made on, those published for it."""
        specs = list(self.config.adapters)
        lineage = self.view.meta.get("lineage") or {}
        if lineage.get("adapter"):
            specs.append(str(lineage["adapter"]))
        if self.config.find_adapters and self._uses_hub():
            specs += published_for([self.view.run_id], token=self.config.token)
        elif self.config.find_adapters:  # offline, the search would retry a Hub nobody named for ~25 s
            logger.info("the run and its feedback are local: not asking the Hub for adapters published for run %s "
                        "(pass them with --adapters)", self.view.run_id)
        return specs

    def _uses_hub(self) -> bool:
        """Whether this app was given anything on the Hub: a pushed run, a feedback repo, or a Space to run on."""
        return self.config.on_space or bool(self.config.feedback_repo) or not Path(self.config.failures).is_dir()

    # who submits -------------------------------------------------------------------------------------

    def who(self, profile: gr.OAuthProfile | None) -> tuple[str, tuple[str, ...]]:
        """(user, organisations) of a submission; InvalidFeedback when nobody is signed in and that is required."""
        if profile is not None:
            return str(profile.username), profile_orgs(profile)
        if self.identity.user:
            return self.identity.user, self.identity.orgs
        if self.config.allow_anonymous:
            return ANONYMOUS, ()
        raise InvalidFeedback(SIGN_IN)

    def whoami_line(self, profile: gr.OAuthProfile | None, warn: bool = True) -> str:
        """``Submitting as **alice**`` or what keeps this visitor from submitting (Markdown, escaped); ``warn``
        adds the warning about an unverified token."""
        try:
            user, orgs = self.who(profile)
        except InvalidFeedback:
            return "**Not signed in:** sign in with the button at the top to submit verdicts."
        line = f"Submitting as **{plain(user)}**"
        if not self.reviewers.allows(user, orgs):
            line += f" — but this app takes feedback from {plain(self.reviewers.describe())} only"
        if warn and self.identity.warning and profile is None:
            line += f"  \n⚠ {plain(self.identity.warning)}"
        return line

    def user_of(self, profile: gr.OAuthProfile | None) -> str | None:
        """The visitor's name, or None when nobody is signed in."""
        try:
            return self.who(profile)[0]
        except InvalidFeedback:
            return None

    # submissions -------------------------------------------------------------------------------------

    def store(self, action: str, item: Any, profile: gr.OAuthProfile | None,
              make: Callable[[str], FeedbackRecord]) -> FeedbackRecord:
        """Check who submits, build the record with ``make(user)``, store it durably; a refusal is one log line."""
        user = "?"
        try:
            user, orgs = self.who(profile)
            self.reviewers.check(user, orgs)
            record = make(user)
        except InvalidFeedback as err:
            logger.warning("refused %s by %s on %r: %s", action, user, str(item)[:40], err)
            raise
        self.writer.append(record)
        self.reviews.add(record)
        return record

    def record_verdict(self, item: str, verdict: str, correction: str = "", note: str = "",
                       profile: gr.OAuthProfile | None = None) -> FeedbackRecord:
        """Validate and store one verdict; InvalidFeedback (nothing stored) when it is refused."""

        def make(user: str) -> FeedbackRecord:
            record = make_record(self.view.run_id, item or "", verdict or "", correction or "", note or "", user)
            self.view.check(record.item, record.correction)
            return record

        return self.store("a verdict", item, profile, make)

    def record_withdrawal(self, item: str, profile: gr.OAuthProfile | None = None) -> FeedbackRecord:
        """Store the withdrawal of the visitor's verdict on ``item``; InvalidFeedback when there is none."""

        def make(user: str) -> FeedbackRecord:
            record = make_withdrawal(self.view.run_id, item or "", user)
            if self.reviews.my_verdict(user, record.item) is None:
                raise InvalidFeedback(f"you have no verdict on {record.item} to withdraw")
            return record

        return self.store("a withdrawal", item, profile, make)

    def submit(self, item: str = "", verdict: str = "", correction: str = "", note: str = "", target: str = "",
               profile: gr.OAuthProfile | None = None) -> dict:
        """Validate, store durably and return one feedback record; gr.Error (nothing stored) when invalid.
        ``target`` is ``item``'s name for fade-hub 0.1 clients (``item`` wins when both are given)."""
        try:
            return self.record_verdict(item or target, verdict, correction, note, profile).to_dict()
        except InvalidFeedback as err:
            raise gr.Error(str(err), print_exception=False) from None

    def withdraw(self, item: str = "", target: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Take back the caller's verdict on ``item`` (``target``: its name for fade-hub 0.1 clients); returns the
        stored withdrawal record."""
        try:
            return self.record_withdrawal(item or target, profile).to_dict()
        except InvalidFeedback as err:
            raise gr.Error(str(err), print_exception=False) from None

    def where_stored(self) -> str:
        """Where records go, in words."""
        if self.config.feedback_repo:
            return f"pushed to {self.config.feedback_repo} within {self.config.push_every:g} min"
        return f"kept in {self.writer.folder}"

    # lifecycle ---------------------------------------------------------------------------------------

    def launch(self, **kwargs: Any) -> tuple:
        """Start the server (``demo.launch`` arguments); pair with ``close()``."""
        logger.info("feedback app for run %s: writing to %s%s", self.view.run_id, self.writer.path,
                    f" (pushed to {self.config.feedback_repo})" if self.config.feedback_repo else "")
        return launch_blocks(self.demo, **kwargs)

    def serve(self, **kwargs: Any) -> None:
        """Serve until Ctrl-C or SIGTERM, then push the last feedback."""
        try:
            serve_blocks(self.demo, **kwargs)
        finally:
            self.close()

    def close(self) -> None:
        """Stop the server and push what is not on the Hub yet."""
        self.demo.close()
        self.writer.close()


def launch_blocks(demo: gr.Blocks, **kwargs: Any) -> tuple:
    """``demo.launch`` with the app's theme, stylesheet and keyboard shortcuts."""
    return demo.launch(theme=theme(), css=CSS, js=SCRIPT, **kwargs)


def serve_blocks(demo: gr.Blocks, **kwargs: Any) -> None:
    """Serve ``demo`` in this thread until Ctrl-C or SIGTERM."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        launch_blocks(demo, prevent_thread_lock=False, **kwargs)
    except KeyboardInterrupt:  # a stop that arrives while gradio is still starting (it handles later ones itself)
        demo.close()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def setup_page(problem: str, how: str = "") -> gr.Blocks:
    """A page that says why the app cannot start and what to do (shown on a Space instead of crashing)."""
    with gr.Blocks(title="fade-hub feedback: setup needed") as page:
        gr.Markdown("## This feedback Space needs one more setting", elem_id="setup-title")
        gr.Markdown(f"**What is missing:** {plain(problem)}", elem_id="setup-problem")
        if how:
            gr.Markdown(how, elem_id="setup-how")
    return page


def token_help(config: AppConfig, endpoint: str) -> str:
    """How to add the HF_TOKEN secret to a Space (Markdown; repo ids escaped)."""
    settings = f"{endpoint}/spaces/{config.space_id}/settings" if config.space_id else "the Space's Settings page"
    return (
        "The app writes every verdict to the feedback dataset "
        f"**{plain(config.feedback_repo)}**, so it needs a Hub token that may write there (and read the failure "
        "dataset, if it is private).\n\n"
        f"1. Create a token at {plain(endpoint)}/settings/tokens with write access to "
        f"{plain(config.feedback_repo)}.\n"
        f"2. Open {plain(settings)}, section *Variables and secrets*, click *New secret*, name it `HF_TOKEN` and "
        "paste the token.\n"
        "3. The Space restarts by itself and shows the failure regions.\n\n"
        "From a terminal instead: `python -c \"from huggingface_hub import HfApi; "
        f"HfApi().add_space_secret('{plain(config.space_id or 'USER/SPACE')}', 'HF_TOKEN', input('token: '))\"`"
    )


def serve_space(environ: Mapping[str, str] | None = None, **kwargs: Any) -> None:
    """Run the app as a Space does (settings from ``ENV`` variables); a setup page when something is missing."""
    from huggingface_hub import constants

    config = None
    try:
        config = AppConfig.from_env(environ)
        if config.on_space and config.feedback_repo and not config.token:
            raise MissingToken("the Space secret HF_TOKEN is not set")
        app = FeedbackApp(config)
    except FadeHubError as err:
        logger.error("the feedback app cannot start: %s", err)
        if isinstance(err, MissingToken) and config is not None:
            how = token_help(config, constants.ENDPOINT)
        else:
            how = ("Set the Space variables under *Settings → Variables and secrets*: "
                   + ", ".join(f"`{key}`" for key in ENV.values()) + " (see the Space's README).")
        serve_blocks(setup_page(str(err), how), **kwargs)
        return
    app.serve(**kwargs)
