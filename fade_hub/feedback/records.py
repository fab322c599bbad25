"""Human feedback on failure modes: the record schema, a crash-safe writer, and the reader.

A *feedback record* is one JSON object per line::

    {"feedback_id": "3f0c...", "run_id": "c5b488fedaf3", "item": "42", "item_type": "mode",
     "verdict": "fix", "correction": "", "note": "", "user": "alice", "timestamp": "2026-01-01T12:00:00.000000Z"}

``item`` (what the verdict is about) is a failure region's ``region_id`` (``"rotation=-30,30&brightness=0.2"``,
``item_type="region"``; a verdict on a region applies to its cells), a failure-mode cell's ``action_id`` (``"42"``,
``item_type="mode"``;
inside a region it overrides the region's verdict for that cell) or a failing query's example id (``"q123"`` = query
123, ``item_type="example"``). ``verdict`` is ``fix`` (must be fixed),
``acceptable`` (a failure we live with) or ``not_a_failure`` (the judge was wrong). ``correction`` is the
right label, a preferred text, or ``accept`` / ``reject`` for a generated image; ``""`` when none.

Two more kinds of record share the schema, so that the files stay append-only and old readers still parse them:

- a *withdrawal*: ``verdict="withdrawn"`` on an item takes back that user's verdict on it;
- an *exclusion*: ``item_type="user"``, ``item`` the excluded user, ``verdict="exclude"`` (or ``"include"``
  to undo it), ``user`` the operator who wrote it, ``run_id`` empty: it covers every run in the feedback set.

Storage: every process appends to its own ``feedback-{uuid}.jsonl`` (flushed and fsync'ed before the
submitter is answered) inside a folder; with a Hub repo, a ``CommitScheduler`` pushes that file to the
dataset repo's ``data/`` every few minutes and when the process exits. The local file is the source of
truth: after a crash, the next process for the same Hub endpoint and repo pushes the files left behind,
and only those (``fade_hub.feedback.queue``: by default one folder per endpoint and repo under the cache
root, and a sidecar per file naming its Hub). Files are append-only and named per process, so nothing
is pushed twice. ``load`` reads every record back and ``resolved()`` keeps the latest verdict per
(run, user, item), leaving out withdrawn verdicts and the records of excluded users (nothing is deleted).

Items are stored in the run reader's canonical form (``fade_hub.run.canonical_item``): ``" 021 "`` is
stored as ``"21"``, and anything but ASCII digits is refused. Reading is as strict as writing: a line that is no
usable record (torn by a crash, not UTF-8, an unknown verdict or item type, a malformed item, a timestamp that
is not ISO 8601) is skipped wherever records are read (``load``, the app, ``mitigate``), all such lines of a read
named in one warning; records written by older versions still read: items such as ``" 021 "``, and the subject under its old keys
``target`` / ``target_type`` (where a line has both forms, ``item`` / ``item_type`` win); new lines are written
with ``item`` / ``item_type`` only. This module
imports no UI and no model code.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from ..cache import note_legacy_roots
from ..errors import NETWORK_ERRORS, BadConfig, FadeHubError, HubUnreachable
from ..jsonio import to_json
from ..run import ITEM_TYPES, BadItem, canonical_item, item_type
from .queue import (
    PATH_IN_REPO,
    claim,
    migrate_legacy,
    normalize_endpoint,
    queue_dir,
    waiting_elsewhere,
    waiting_line,
    write_meta,
)

logger = logging.getLogger(__name__)

VERDICTS = ("fix", "acceptable", "not_a_failure")
WITHDRAWN = "withdrawn"  # the verdict of a withdrawal record
EXCLUDE, INCLUDE = "exclude", "include"  # the verdicts of an exclusion record (item_type USER)
USER = "user"  # item_type of an exclusion record
MAX_TEXT = 4000  # characters of a correction or a note
MAX_PROBLEMS_SHOWN = 3  # unusable lines named in the one warning of a read

CARD = """---
license: other
tags:
- fade-hub
- feedback
configs:
- config_name: default
  data_files: "data/*.jsonl"
---
# Feedback on failure modes

Verdicts people gave on the failure modes of a [fade-hub](https://huggingface.co/fade-hub) run, collected
by its feedback Space. One JSON line per submission, appended; never rewritten. Lines written by fade-hub 0.1 name
the subject `target` / `target_type`; readers take those as `item` / `item_type`.

| field | meaning |
|---|---|
| `feedback_id` | unique id of the submission (uuid4 hex) |
| `run_id` | the run whose failures were reviewed (empty for an exclusion: it covers every run) |
| `item` | what the verdict is about: a region's `region_id` (`"brightness=0.2"`), a cell's `action_id` (`"42"`), a failing query (`"q123"`), or the excluded user |
| `item_type` | `region`, `mode`, `example`, or `user` for an exclusion |
| `verdict` | `fix`, `acceptable` or `not_a_failure`; `withdrawn` takes back the user's verdict on the item; `exclude` / `include` (by the operator) leave a user's records out of `resolved()` or bring them back |
| `correction` | the right label, a preferred text, or `accept` / `reject` for a generated image; may be empty |
| `note` | free text; may be empty |
| `user` | Hub username of the submitter (`anonymous` where the Space allows it) |
| `timestamp` | ISO 8601, UTC |

`fade_hub.feedback.load(REPO_ID).resolved()` keeps the latest verdict per run, user and item, without withdrawn
verdicts and without the records of excluded users. Nothing is ever deleted: a later record wins.
"""


class InvalidFeedback(FadeHubError, ValueError):
    """A submission that breaks the feedback schema (unknown verdict or item, text too long)."""


@dataclass(frozen=True)
class FeedbackRecord:
    """One submission, as stored."""

    feedback_id: str
    run_id: str
    item: str
    item_type: str
    verdict: str
    correction: str
    note: str
    user: str
    timestamp: str

    def to_dict(self) -> dict[str, str]:
        """The record as a JSON-ready dict, in schema order."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> FeedbackRecord:
        """Build a record from a stored dict; InvalidFeedback naming a missing or unusable field (see ``check``)."""
        if not isinstance(data, dict):
            raise InvalidFeedback(f"a {type(data).__name__}, not a JSON object")
        data = {**{new: data[old] for old, new in OLD_KEYS.items() if old in data}, **data}  # item wins over target
        if missing := [f.name for f in fields(cls) if f.name not in data]:
            raise InvalidFeedback(f"feedback record lacks field(s) {missing}")
        values = {}
        for name in (f.name for f in fields(cls)):
            value = "" if data[name] is None and name in _MAY_BE_NULL else data[name]
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise InvalidFeedback(f"{name} is {_shown(value)}, not text")
            values[name] = str(value)
        record = cls(**values)
        record.check()
        if record.item_type in ITEM_TYPES:  # an old spelling (" 021 ") read as written today ("21")
            record = replace(record, item=canonical_item(record.item))
        return record

    def check(self) -> None:
        """InvalidFeedback naming what no reader can use: an unknown verdict or item type, a malformed item,
        an empty run id, user or feedback id, or a timestamp that is not ISO 8601."""
        for name in ("feedback_id", "user"):
            if not getattr(self, name).strip():
                raise InvalidFeedback(f"{name} is empty")
        if self.item_type == USER:
            if self.verdict not in (EXCLUDE, INCLUDE):
                raise InvalidFeedback(f"unknown verdict {_shown(self.verdict)} of an exclusion, not {EXCLUDE} or "
                                      f"{INCLUDE}")
            if not self.item.strip() or any(char.isspace() for char in self.item):
                raise InvalidFeedback(f"the excluded user {_shown(self.item)} is not a user name")
        elif self.item_type in ITEM_TYPES:
            if self.verdict not in (*VERDICTS, WITHDRAWN):
                raise InvalidFeedback(f"unknown verdict {_shown(self.verdict)}, not {', '.join(VERDICTS)} or "
                                      f"{WITHDRAWN}")
            kind = item_type(_canonical(self.item))
            if kind != self.item_type:
                raise InvalidFeedback(f"item {_shown(self.item)} names an {kind}, not a {self.item_type}")
            if not self.run_id.strip():
                raise InvalidFeedback("run_id is empty")
        else:
            raise InvalidFeedback(f"unknown item_type {_shown(self.item_type)}, not {', '.join(ITEM_TYPES)} "
                                  f"or {USER}")
        try:
            _parse_time(self.timestamp)
        except ValueError:
            raise InvalidFeedback(f"timestamp {_shown(self.timestamp)} is not an ISO 8601 time") from None


RECORD_FIELDS = tuple(f.name for f in fields(FeedbackRecord))
OLD_KEYS = {"target": "item", "target_type": "item_type"}  # the subject's keys in records of fade-hub 0.1
_MAY_BE_NULL = ("correction", "note")  # read as "" when null; every other field must hold text


def _shown(value: Any, limit: int = 40) -> str:
    """``value`` quoted for a message, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def utc_now() -> str:
    """The current time as ISO 8601 UTC with microseconds, e.g. ``2026-01-01T12:00:00.000000Z``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _new(run_id: str, item: str, kind: str, verdict: str, correction: Any, note: Any, user: str) -> FeedbackRecord:
    """A record with a fresh id and timestamp, texts stripped and bounded; InvalidFeedback without a user."""
    correction, note = str(correction or "").strip(), str(note or "").strip()
    for name, text in (("correction", correction), ("note", note)):
        if len(text) > MAX_TEXT:
            raise InvalidFeedback(f"the {name} has {len(text)} characters; keep it under {MAX_TEXT}")
    if not str(user or "").strip():
        raise InvalidFeedback("a feedback record needs a user")
    return FeedbackRecord(
        feedback_id=uuid.uuid4().hex,
        run_id=str(run_id),
        item=item,
        item_type=kind,
        verdict=verdict,
        correction=correction,
        note=note,
        user=str(user).strip(),
        timestamp=utc_now(),
    )


def _canonical(item: Any) -> str:
    try:
        return canonical_item(item)
    except BadItem as err:
        raise InvalidFeedback(str(err)) from None


def make_record(run_id: str, item: str, verdict: str, correction: str, note: str, user: str) -> FeedbackRecord:
    """A new record with a fresh id and timestamp; InvalidFeedback on an unknown verdict or a bad item."""
    verdict = str(verdict or "").strip()
    if not verdict:
        raise InvalidFeedback(f"choose a verdict first: {', '.join(VERDICTS)}")
    if verdict not in VERDICTS:
        raise InvalidFeedback(f"unknown verdict {verdict!r}; use one of: {', '.join(VERDICTS)}")
    item = _canonical(item)
    return _new(run_id, item, item_type(item), verdict, correction, note, user)


def make_withdrawal(run_id: str, item: str, user: str, note: str = "") -> FeedbackRecord:
    """A record that takes back ``user``'s verdict on ``item`` (a later verdict counts again)."""
    item = _canonical(item)
    return _new(run_id, item, item_type(item), WITHDRAWN, "", note, user)


def make_exclusion(excluded: str, operator: str, note: str = "", *, include: bool = False) -> FeedbackRecord:
    """A record by ``operator`` that leaves ``excluded``'s records out of ``resolved()`` (``include``: undoes it)."""
    excluded = str(excluded or "").strip()
    if not excluded or any(char.isspace() for char in excluded):
        raise InvalidFeedback(f"{excluded!r} is not a user name; pass the Hub username whose records to exclude")
    return _new("", excluded, USER, INCLUDE if include else EXCLUDE, "", note, operator)


def default_staging_dir(repo_id: str, endpoint: str | None = None) -> Path:
    """Where submissions for ``repo_id`` on the Hub at ``endpoint`` (default: ``HF_ENDPOINT``'s) wait to be pushed.

    ``CACHE/feedback/<host>-<hash of the endpoint>/<org>--<name>``, ``CACHE`` being ``$FADE_HUB_CACHE``, else
    ``HF_HOME/fade-hub`` (see ``fade_hub.feedback.queue``).
    """
    if endpoint is None:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    return queue_dir(repo_id, endpoint)


class FeedbackWriter:
    """Append records to this process's JSON-lines file; push it to a dataset repo if one is given.

    With a repo, the file gets a sidecar naming the Hub endpoint and the repo; at start the writer also pushes
    the files of that endpoint and repo that earlier processes left unpushed in ``folder``, and lists in one
    warning line those waiting for another Hub or repo, which it never pushes.
    """

    def __init__(
        self,
        folder: str | Path,
        repo_id: str | None = None,
        *,
        every: float = 5.0,
        private: bool | None = None,
        token: str | None = None,
    ) -> None:
        self.folder = Path(folder)
        if repo_id:  # first: a Hub that cannot be reached or refuses the repo leaves nothing behind
            ensure_feedback_repo(repo_id, private=private, token=token)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / f"feedback-{uuid.uuid4().hex}.jsonl"
        self.repo_id = repo_id
        self.endpoint: str | None = None
        self.leftovers: list[Path] = []  # files earlier processes left for this Hub and repo, pushed by this writer
        self._scheduler = None
        self._lock = threading.Lock()
        if repo_id:
            self._start_pushing(repo_id, every=every, token=token)

    def _start_pushing(self, repo_id: str, *, every: float, token: str | None) -> None:
        from huggingface_hub import HfApi

        from .scheduler import QueueScheduler

        api = HfApi(token=token)
        self.endpoint = normalize_endpoint(api.endpoint)
        if self.folder == default_staging_dir(repo_id, self.endpoint):
            note_legacy_roots()
            migrate_legacy(self.folder, repo_id, api)
        self.leftovers, waiting = claim(self.folder, self.endpoint, repo_id)
        waiting += waiting_elsewhere(repo_id, self.endpoint)
        if waiting:
            logger.warning(waiting_line(self.endpoint, waiting))
        # Pushes right away (files a crashed process left for this Hub and repo), then every `every` minutes and at exit.
        self._scheduler = QueueScheduler(
            files=[*self.leftovers, self.path],
            endpoint=self.endpoint,
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=self.folder,
            path_in_repo=PATH_IN_REPO,
            every=every,
            hf_api=api,
        )
        self._lock = self._scheduler.lock  # a push snapshots file sizes under this lock

    def append(self, record: FeedbackRecord) -> None:
        """Write one record and make it durable before returning."""
        line = to_json(record.to_dict(), ensure_ascii=False) + "\n"
        with self._lock:
            if self.endpoint and not self.path.exists():  # the sidecar first: no file is ever without its Hub
                write_meta(self.path, self.endpoint, str(self.repo_id))
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())

    def read(self) -> FeedbackSet:
        """The records held locally for this writer's destination: its folder without a repo, else its own file
        and the leftovers it pushes."""
        if not self.repo_id:
            return read_records(self.folder)
        return read_files([*self.leftovers, self.path])

    def flush(self) -> None:
        """Push what is not on the Hub yet and wait for it (no-op without a repo)."""
        if self._scheduler is not None:
            self._scheduler.trigger().result()

    def close(self) -> None:
        """Push the last records and stop the scheduler; a failed push leaves them for the next start."""
        if self._scheduler is None:
            return
        try:
            self.flush()
        except Exception as err:  # the Hub is down or refuses: the local file stays the source of truth
            logger.error("could not push feedback to %s (%s); it stays in %s and is pushed at the next start",
                         self.repo_id, str(err).splitlines()[0] if str(err) else type(err).__name__, self.folder)
        finally:
            self._scheduler.stop()
            self._scheduler = None


def ensure_feedback_repo(repo_id: str, *, private: bool | None = None, token: str | None = None) -> None:
    """Create the feedback dataset repo if missing and give it a card describing the schema."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if not api.file_exists(repo_id, "README.md", repo_type="dataset"):
            api.upload_file(
                path_or_fileobj=CARD.encode(), path_in_repo="README.md", repo_id=repo_id, repo_type="dataset",
                commit_message="Describe the feedback records",
            )
    except NETWORK_ERRORS as err:
        raise HubUnreachable(
            f"could not reach the Hub at {api.endpoint} to open the feedback repo {repo_id} ({type(err).__name__}); "
            "nothing was written: start again once it is reachable, or collect feedback locally with --feedback-dir "
            "alone"
        ) from None
    except HfHubHTTPError as err:
        raise HubUnreachable(
            f"cannot write the feedback repo {repo_id}: {str(err).splitlines()[0]}; give the app a token with write "
            "access to it (HF_TOKEN; on a Space, a secret)"
        ) from None


@dataclass(frozen=True)
class FeedbackSet:
    """All feedback records read from a folder or repo, in file order, and their resolution."""

    records: tuple[FeedbackRecord, ...]
    skipped_lines: int = 0

    def __len__(self) -> int:
        return len(self.records)

    def _in_order(self) -> list[FeedbackRecord]:
        """The records by timestamp, ties broken by file order."""
        order = sorted(range(len(self.records)), key=lambda i: (_parse_time(self.records[i].timestamp), i))
        return [self.records[i] for i in order]

    def exclusions(self) -> dict[str, FeedbackRecord]:
        """The users whose records are excluded now, each with the operator's latest exclusion record."""
        latest: dict[str, FeedbackRecord] = {}
        for record in self._in_order():
            if record.item_type == USER:
                latest[record.item.casefold()] = record
        return {record.item: record for record in latest.values() if record.verdict == EXCLUDE}

    def resolved(self) -> list[FeedbackRecord]:
        """The latest verdict per (run, user, item), ties broken by file order; withdrawn verdicts and the
        records of excluded users left out."""
        excluded = {user.casefold() for user in self.exclusions()}
        latest: dict[tuple[str, str, str], FeedbackRecord] = {}
        for record in self._in_order():
            if record.item_type != USER and record.user.casefold() not in excluded:
                latest[(record.run_id, record.user, record.item)] = record
        kept = [record for record in latest.values() if record.verdict != WITHDRAWN]
        return sorted(kept, key=lambda r: (r.run_id, r.item, r.user))

    def to_frame(self, resolved: bool = True) -> pd.DataFrame:
        """The resolved (or all) records as a DataFrame with the schema's columns."""
        rows = self.resolved() if resolved else list(self.records)
        return pd.DataFrame([r.to_dict() for r in rows], columns=list(RECORD_FIELDS))


def _parse_time(stamp: str) -> datetime:
    value = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def read_records(folder: str | Path) -> FeedbackSet:
    """Every usable record under ``folder`` (``*.jsonl`` files at any depth, in name order); see ``read_files``."""
    root = Path(folder)
    return read_files(sorted(root.rglob("*.jsonl"), key=lambda p: p.relative_to(root).as_posix()))


def read_files(paths: list[Path]) -> FeedbackSet:
    """Every usable record of the given JSON-lines files, in that order (missing files are skipped).

    A line no reader can use (torn by a crash mid-write, not UTF-8, not a record, or a record ``check`` refuses)
    and a path that cannot be read as a file are skipped, all of them named in one warning (file:line and why).
    """
    records: list[FeedbackRecord] = []
    problems: list[str] = []
    for path in paths:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as err:  # a folder named *.jsonl, a file we may not read
            problems.append(f"{path}: {'a folder, not a file' if path.is_dir() else err.strerror or err}")
            continue
        for number, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(FeedbackRecord.from_dict(json.loads(line.decode("utf-8"))))
            except UnicodeDecodeError:
                problems.append(f"{path}:{number}: not UTF-8")
            except (ValueError, RecursionError) as err:  # not JSON, a number past int's digits, nested too deep
                problems.append(f"{path}:{number}: {_line_problem(err)}")
    if problems:
        shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
        more = f"; and {len(problems) - MAX_PROBLEMS_SHOWN} more" if len(problems) > MAX_PROBLEMS_SHOWN else ""
        logger.warning("skipped %d unusable feedback line%s (the files are left as they are): %s%s", len(problems),
                       "" if len(problems) == 1 else "s", shown, more)
    return FeedbackSet(tuple(records), len(problems))


def _line_problem(err: Exception) -> str:
    """Why a line is no record, in a few words."""
    if isinstance(err, json.JSONDecodeError):
        return f"not JSON: {err.msg} at column {err.colno}"
    return str(err) if isinstance(err, InvalidFeedback) else f"not a record: {type(err).__name__}"


def load(source: str | Path, *, token: str | None = None) -> FeedbackSet:
    """Read all feedback from a local folder or a feedback dataset repo on the Hub."""
    if Path(source).is_dir():
        return read_records(source)
    if Path(source).exists():
        raise BadConfig(f"{source} is a file; pass the folder that holds the feedback-*.jsonl files, or a feedback "
                        "dataset repo id")
    from huggingface_hub import HfApi, constants, snapshot_download
    from huggingface_hub.errors import HFValidationError, RepositoryNotFoundError

    try:
        # one request that is not retried: a Hub that is down says so at once (list_repo_files retries for ~25 s)
        files = [sibling.rfilename for sibling in HfApi(token=token).dataset_info(str(source)).siblings or []]
        if not any(name.startswith(f"{PATH_IN_REPO}/") and name.endswith(".jsonl") for name in files):
            return FeedbackSet((), 0)  # a feedback repo nobody has submitted to yet
        folder = snapshot_download(
            str(source), repo_type="dataset", allow_patterns=[f"{PATH_IN_REPO}/*.jsonl"], token=token
        )
    except (RepositoryNotFoundError, HFValidationError):
        raise BadConfig(f"{source!s} is neither a local folder nor a feedback dataset repo on the Hub at "
                        f"{constants.ENDPOINT}") from None
    except NETWORK_ERRORS as err:
        raise HubUnreachable(f"could not reach the Hub at {constants.ENDPOINT} to read the feedback repo {source} "
                             f"({type(err).__name__}); retry once it is reachable") from None
    return read_records(Path(folder) / PATH_IN_REPO)
