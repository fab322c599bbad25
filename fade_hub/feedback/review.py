"""The review state of one app: every feedback record it knows, and what follows from them per reviewer.

Records come from the feedback repo on the Hub (read at start and on ``refresh``), from the local files of this
app's writer, and from this process's own submissions as they are stored. They are merged by ``feedback_id``
and resolved as ``FeedbackSet.resolved()`` does (latest verdict per run, user and item; withdrawals and
excluded users left out), so that progress, "my verdicts" and disagreements agree with what ``load()`` gives.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from ..errors import FadeHubError
from .records import FeedbackRecord, FeedbackSet

logger = logging.getLogger(__name__)

FILTER_CHOICES = [("not reviewed by you", "unreviewed"), ("confirmed", "confirmed"), ("all", "all")]
REFRESH_SECONDS = 60.0


class ReviewState:
    """Thread-safe records of one run's feedback, with per-user progress, verdicts and disagreements."""

    def __init__(self, run_id: str, sources: Sequence[Callable[[], FeedbackSet]] = ()) -> None:
        self.run_id = run_id
        self._sources = list(sources)
        self._records: dict[str, FeedbackRecord] = {}
        self._lock = threading.Lock()
        self._resolved: list[FeedbackRecord] | None = None
        self._refreshed = 0.0
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        """Read the sources again (at most every ``REFRESH_SECONDS`` unless ``force``); a failing source is logged."""
        if not force and time.monotonic() - self._refreshed < REFRESH_SECONDS:
            return
        self._refreshed = time.monotonic()
        for source in self._sources:
            try:
                self.add_all(source().records)
            except (FadeHubError, OSError) as err:
                logger.warning("could not read earlier feedback (%s); progress shows this session's only",
                               str(err).splitlines()[0] if str(err) else type(err).__name__)

    def add(self, record: FeedbackRecord) -> None:
        """Take in one stored record."""
        self.add_all([record])

    def add_all(self, records: Iterable[FeedbackRecord]) -> None:
        """Take in stored records (duplicates by ``feedback_id`` are ignored)."""
        with self._lock:
            for record in records:
                if record.feedback_id not in self._records:
                    self._records[record.feedback_id] = record
                    self._resolved = None

    def resolved(self) -> list[FeedbackRecord]:
        """The resolved records of every run known here (see ``FeedbackSet.resolved``)."""
        with self._lock:
            if self._resolved is None:
                self._resolved = FeedbackSet(tuple(self._records.values())).resolved()
            return self._resolved

    def _mine(self, user: str | None) -> list[FeedbackRecord]:
        if not user:
            return []
        return [r for r in self.resolved() if r.run_id == self.run_id and r.user.casefold() == user.casefold()]

    def my_verdicts(self, user: str | None) -> list[FeedbackRecord]:
        """``user``'s standing verdicts on this run, newest first."""
        return sorted(self._mine(user), key=lambda r: r.timestamp, reverse=True)

    def my_verdict(self, user: str | None, item: str) -> FeedbackRecord | None:
        """``user``'s standing verdict on ``item``, or None."""
        return next((r for r in self._mine(user) if r.item == item), None)

    def reviewed(self, user: str | None) -> set[str]:
        """The regions (items) ``user`` has a standing verdict on."""
        return {r.item for r in self._mine(user) if r.item_type == "region"}

    def items(self, user: str | None) -> set[str]:
        """Every item (region, cell or example) ``user`` has a standing verdict on."""
        return {r.item for r in self._mine(user)}

    def votes(self) -> dict[str, Counter]:
        """Per item of this run (region, cell or example): how many reviewers gave each verdict."""
        counts: dict[str, Counter] = {}
        for record in self.resolved():
            if record.run_id == self.run_id:
                counts.setdefault(record.item, Counter())[record.verdict] += 1
        return counts

    def disagreements(self, regions: Sequence[str]) -> list[str]:
        """The regions (in the order given) on which reviewers gave different verdicts."""
        votes = self.votes()
        return [region for region in regions if len(votes.get(region, ())) > 1]

    def progress(self, user: str | None, regions: Sequence[str]) -> str:
        """``4 of 16 regions reviewed by you`` (or a hint to sign in)."""
        if not user:
            return f"{len(regions)} regions to review: sign in to record and count your verdicts"
        done = len(self.reviewed(user) & set(regions))
        text = f"{done} of {len(regions)} regions reviewed by you"
        return text + (": all done, thank you!" if regions and done == len(regions) else "")

    def queue(self, user: str | None, regions: Sequence[str], confirmed: set[str], which: str) -> list[str]:
        """The regions a filter shows, in rank order: ``unreviewed`` (by ``user``), ``confirmed`` or ``all``."""
        if which == "unreviewed":
            done = self.reviewed(user)
            return [region for region in regions if region not in done]
        if which == "confirmed":
            return [region for region in regions if region in confirmed]
        return list(regions)

    def next_region(self, user: str | None, regions: Sequence[str], current: str | None) -> str | None:
        """The next region after ``current`` (in rank order, wrapping) that ``user`` has not reviewed, or None."""
        done = self.reviewed(user)
        start = regions.index(current) + 1 if current in regions else 0
        for region in [*regions[start:], *regions[:start]]:
            if region not in done and region != current:
                return region
        return None
