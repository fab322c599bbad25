"""Leave one user's feedback out of ``resolved()`` without deleting it: the operator appends an exclusion record.

``exclude_user(ExcludeConfig(user="bob", feedback_repo="org/feedback"))`` is ``fade-hub space exclude bob
--feedback-repo org/feedback``; ``undo=True`` appends the record that brings bob's feedback back. Nothing is
written when there is nothing to do (bob already excluded, or not excluded for ``undo``), and the feedback must
already be there: a user without records in it is refused (a mistyped name or repo), and no repo is created.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import NETWORK_ERRORS, BadConfig, HubUnreachable
from ..options import ConfigTree, option, section
from ..paths import check_folder_target
from .config import ReviewOptions
from .identity import check_hub_name, local_identity
from .records import (
    USER,
    FeedbackRecord,
    FeedbackSet,
    FeedbackWriter,
    default_staging_dir,
    load,
    make_exclusion,
    read_records,
)


@dataclass(init=False)
class ExcludeConfig(ConfigTree):
    """Whose records to leave out, where the feedback lives, and who decides (``fade-hub space exclude --help``)."""

    user: str = option("", cli=False, help="The Hub username whose records to exclude.")
    review: ReviewOptions = section(ReviewOptions, group=None, only=("feedback_repo", "feedback_dir", "reviewer", "token"),
                                    helps={"feedback_repo": "The feedback dataset repo (never created here).",
                                           "feedback_dir": "The local feedback folder (with --feedback-repo: where the "
                                                           "record waits to be pushed).",
                                           "reviewer": "Your name as the operator (default: the user of your Hub "
                                                       "token).",
                                           "token": "Hub token (default: HF_TOKEN or the stored login)."})
    note: str = option("", help="Why (kept in the record).")
    undo: bool = option(False, help="Bring the user's records back instead (appends an 'include' record).")
    flag_order = ("user", "feedback_repo", "feedback_dir", "note", "undo")

    def validate(self) -> None:
        """BadConfig unless a possible user name and a usable destination are given."""
        if not self.user.strip():
            raise BadConfig("name the user whose feedback to exclude: fade-hub space exclude USER ...")
        check_hub_name(self.user, "USER", "pass the Hub username whose records to exclude")
        if not (self.feedback_repo or self.feedback_dir):
            raise BadConfig("say where the feedback is: --feedback-repo REPO_ID or --feedback-dir DIR")
        if self.feedback_dir:
            check_folder_target(Path(self.feedback_dir), "--feedback-dir", "holding feedback files")


@dataclass(frozen=True)
class Exclusion:
    """What ``exclude_user`` did: the record it stored (None when there was nothing to do) and a line saying so."""

    record: FeedbackRecord | None
    message: str


def exclude_user(config: ExcludeConfig) -> Exclusion:
    """Append (and push, with a repo) one exclusion record by the operator, unless it would change nothing.

    BadConfig when the feedback holds no record of the user (nothing written), or the repo does not exist.
    """
    config.validate()
    user = config.user.strip()
    operator = local_identity(config.token, config.reviewer).user
    current = _current(config)
    standing = {name.casefold(): record for name, record in current.exclusions().items()}.get(user.casefold())
    if config.undo and standing is None:
        return Exclusion(None, f"{user}'s feedback is not excluded in {_where(config)}: nothing to undo, nothing "
                               "written")
    if not config.undo and standing is not None:
        return Exclusion(None, f"{user}'s feedback is already left out of resolved() (by {standing.user} at "
                               f"{standing.timestamp}): nothing written")
    if not config.undo and not any(r.user.casefold() == user.casefold() and r.item_type != USER
                                   for r in current.records):
        reviewers = sorted({r.user for r in current.records if r.item_type != USER})
        raise BadConfig(f"{_where(config)} holds no feedback by {user!r} (reviewers there: "
                        f"{', '.join(reviewers[:10]) or 'none'}); check the user name and the feedback location")
    record = make_exclusion(user, operator, config.note, include=config.undo)
    _store(record, config)
    action = "brought back" if config.undo else "left out of resolved() (kept in the dataset)"
    return Exclusion(record, f"{user}'s feedback is {action}: record {record.feedback_id} by {record.user}")


def _where(config: ExcludeConfig) -> str:
    return config.feedback_repo or str(config.feedback_dir)


def _current(config: ExcludeConfig) -> FeedbackSet:
    """The feedback as it stands: the repo's (which must exist) and what waits in the local folder."""
    local = Path(config.feedback_dir) if config.feedback_dir else None
    records = read_records(local).records if local is not None and local.is_dir() else ()
    if config.feedback_repo:
        records = (*load(config.feedback_repo, token=config.token).records, *records)
    return FeedbackSet(tuple(records))


def _store(record: FeedbackRecord, config: ExcludeConfig) -> None:
    """Append the record durably, and push it when there is a repo."""
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
