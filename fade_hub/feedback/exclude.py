"""Leave one user's feedback out of ``resolved()`` without deleting it: the operator appends an exclusion record.

``exclude_user(ExcludeConfig(user="bob", feedback_repo="org/feedback"))`` is ``fade-hub space exclude bob
--feedback-repo org/feedback``; ``undo=True`` appends the record that brings bob's feedback back.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import NETWORK_ERRORS, BadConfig, HubUnreachable
from ..options import option
from .identity import local_identity
from .records import FeedbackRecord, FeedbackWriter, default_staging_dir, make_exclusion


@dataclass
class ExcludeConfig:
    """Whose records to leave out, where the feedback lives, and who decides (``fade-hub space exclude --help``)."""

    user: str = option("", cli=False, help="The Hub username whose records to exclude.")
    feedback_repo: str | None = option(None, metavar="REPO_ID", help="The feedback dataset repo.")
    feedback_dir: str | None = option(None, metavar="DIR", help=(
        "The local feedback folder (with --feedback-repo: where the record waits to be pushed)."))
    note: str = option("", help="Why (kept in the record).")
    undo: bool = option(False, help="Bring the user's records back instead (appends an 'include' record).")
    reviewer: str | None = option(None, metavar="NAME", help=(
        "Your name as the operator (default: the user of your Hub token)."))
    token: str | None = option(None, cli=False, help="Hub token (default: HF_TOKEN or the stored login).")

    def validate(self) -> None:
        """BadConfig unless a user and a destination are given."""
        if not self.user.strip():
            raise BadConfig("name the user whose feedback to exclude: fade-hub space exclude USER ...")
        if not (self.feedback_repo or self.feedback_dir):
            raise BadConfig("say where the feedback is: --feedback-repo REPO_ID or --feedback-dir DIR")


def exclude_user(config: ExcludeConfig) -> FeedbackRecord:
    """Append (and push, with a repo) one exclusion record by the operator; returns it."""
    config.validate()
    operator = local_identity(config.token, config.reviewer).user
    record = make_exclusion(config.user, operator, config.note, include=config.undo)
    folder = config.feedback_dir or default_staging_dir(config.feedback_repo)
    writer = FeedbackWriter(folder, config.feedback_repo, token=config.token)
    try:
        writer.append(record)
        writer.flush()
    except (*NETWORK_ERRORS, OSError) as err:
        raise HubUnreachable(f"the exclusion is stored in {writer.path} but could not be pushed "
                             f"({type(err).__name__}); it is pushed at the next start for {config.feedback_repo}") from None
    finally:
        writer.close()
    return record
