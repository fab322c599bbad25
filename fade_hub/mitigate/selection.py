"""What to fade: the regions and cells reviewers want fixed, the corrections they agree on, and what they disputed.

Each reviewer's latest verdict counts (``FeedbackSet.resolved()``). Feedback names three kinds of item:

- a **region** (``item_type: "region"``, its ``region_id`` in the run's ``regions`` table): the verdict applies to
  every cell of the region, on the seed classes the region holds on;
- a **cell** (``"mode"``, its action id): inside a region a reviewer gave a verdict on, the reviewer's cell verdict
  overrides their region verdict for that cell; elsewhere it stands alone, on every seed;
- an **example** (``"q123"``): its correction, when every reviewer who corrected it gave the same one.

A region's cell is targeted when most of the reviewers with a verdict on it (their cell verdict, else their region
verdict) chose ``fix`` (a tie is not targeted); a cell most called ``not_a_failure`` is a judge error, left out of
training and evaluation. Feedback of several runs is read together when they share a lineage (a run made on a
mitigated variant and the run of its base): the targets are the union of each run's own majority. Feedback with
cell and example verdicts only resolves exactly as before regions existed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import pandas as pd

from ..errors import BadConfig
from ..feedback import FeedbackRecord
from ..run import Run

MAX_NAMED = 3  # region ids named in an error line


@dataclass(frozen=True)
class Correction:
    """A reviewer-agreed right answer for one failing example of a run."""

    run_id: str
    query_id: int
    answer: str


@dataclass(frozen=True)
class TargetRegion:
    """A region reviewers want faded: the cells to fade (those a cell verdict took out are left out) and the seed
    classes it holds on (empty: any class)."""

    run_id: str
    region_id: str
    description: str
    cells: tuple[int, ...]
    classes: tuple[str, ...] = ()
    votes: dict[str, int] = field(default_factory=dict)  # the reviewers' verdicts on the region itself
    overridden: tuple[int, ...] = ()  # cells of the region whose own verdicts left them out

    def summary(self) -> dict[str, Any]:
        """The region as ``fade_eval.json`` names it."""
        return {"run_id": self.run_id, "region_id": self.region_id, "description": self.description,
                "cells": list(self.cells), "classes": list(self.classes), "votes": dict(self.votes),
                "overridden_cells": list(self.overridden)}


@dataclass
class Selection:
    """The targeted cells and regions and what the feedback said, for training and for the model card."""

    targeted: list[int]  # every cell to fade: the cells of the targeted regions and the cells marked fix
    votes: dict[int, Counter] = field(default_factory=dict)
    regions: list[TargetRegion] = field(default_factory=list)
    judge_errors: list[int] = field(default_factory=list)
    disagreements: list[dict[str, Any]] = field(default_factory=list)
    corrections: list[Correction] = field(default_factory=list)
    records: int = 0
    reviewers: int = 0
    verdicts: Counter = field(default_factory=Counter)
    source: str = "feedback"

    def summary(self) -> dict[str, Any]:
        """The feedback part of ``fade_eval.json`` and the card."""
        return {
            "source": self.source,
            "records": self.records,
            "reviewers": self.reviewers,
            "verdicts": dict(self.verdicts),
            "judge_errors": [str(cell) for cell in self.judge_errors],
            "disagreements": self.disagreements,
            "corrections": len(self.corrections),
            "regions": len(self.regions),
        }


def _majority(counts: Counter) -> str | None:
    """The verdict more than half of the reviewers gave, or None."""
    verdict, count = counts.most_common(1)[0]
    return verdict if count * 2 > sum(counts.values()) else None


RegionTables = Callable[[str], "pd.DataFrame | None"]  # run id -> its regions table (None: the run cannot be read)


def _region_rows(records: list[FeedbackRecord], regions_of: RegionTables) -> dict[tuple[str, str], pd.Series]:
    """The ``regions`` row of every region the records name; BadConfig when a run has no regions or lacks one."""
    rows: dict[tuple[str, str], pd.Series] = {}
    for run_id in sorted({record.run_id for record in records}):
        named = sorted({record.item for record in records if record.run_id == run_id})
        table = regions_of(run_id)
        if table is None:  # a lineage run that cannot be read here: said by regions_of
            continue
        if table.empty:
            raise BadConfig(f"the feedback holds verdicts on region(s) {_named(named)} of run {run_id}, which has no "
                            "failure region; give verdicts on its cells or examples instead")
        known = {str(row["region_id"]): row for _, row in table.iterrows()}
        missing = [region_id for region_id in named if region_id not in known]
        if missing:
            raise BadConfig(f"the feedback names region {_named(missing)}, which run {run_id} does not have (its "
                            f"regions: {_named(sorted(known))}); review the run's own regions in the feedback Space")
        rows.update({(run_id, region_id): known[region_id] for region_id in named})
    return rows


def _names(classes: Any) -> tuple[str, ...]:
    """A region's classes (a list or an array read from parquet; empty or None: any class) as a tuple."""
    return () if classes is None else tuple(str(name) for name in classes)


def _named(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(region_id) for region_id in ids[:MAX_NAMED])
    return shown + (f" and {len(ids) - MAX_NAMED} more" if len(ids) > MAX_NAMED else "")


def _regions(records: list[FeedbackRecord], cell_verdicts: dict[tuple[str, str, int], str],
             regions_of: RegionTables) -> tuple[list[TargetRegion], dict[tuple[str, int], Counter], list[dict]]:
    """The targeted regions, each region cell's votes (a reviewer's cell verdict over their region verdict) keyed by
    (run id, cell), and the regions reviewers disagreed on."""
    rows = _region_rows(records, regions_of)
    by_region: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for record in records:
        if (record.run_id, record.item) in rows:
            by_region[(record.run_id, record.item)][record.user] = record.verdict
    regions, cell_votes, disputes = [], {}, []
    for (run_id, region_id), users in sorted(by_region.items()):
        row = rows[(run_id, region_id)]
        fixed, overridden = [], []
        for cell in (int(cell) for cell in row["cells"]):
            votes = Counter(cell_verdicts.get((run_id, user, cell), verdict) for user, verdict in users.items())
            votes.update(verdict for (run, user, other), verdict in cell_verdicts.items()
                         if run == run_id and other == cell and user not in users)
            cell_votes[(run_id, cell)] = cell_votes.get((run_id, cell), Counter()) + votes
            (fixed if _majority(votes) == "fix" else overridden).append(cell)
        region_votes = Counter(users.values())
        if len(region_votes) > 1:
            disputes.append({"run_id": run_id, "item": region_id, "votes": dict(region_votes)})
        if fixed:
            regions.append(TargetRegion(run_id, region_id, str(row.get("description", region_id)), tuple(fixed),
                                        _names(row.get("classes")), dict(region_votes),
                                        tuple(cell for cell in overridden if _majority(region_votes) == "fix")))
    return regions, cell_votes, disputes


def from_feedback(records: Sequence[FeedbackRecord], run_ids: Sequence[str],
                  regions_of: RegionTables | None = None) -> Selection:
    """Targeted regions and cells, judge errors, disagreements and agreed corrections from resolved feedback of
    ``run_ids``; ``regions_of(run_id)`` gives a run's ``regions`` table (needed when the feedback names regions)."""
    mine = [record for record in records if record.run_id in set(run_ids)]
    if not mine:
        found = sorted({record.run_id for record in records}) or ["none"]
        raise BadConfig(
            f"the feedback holds no verdicts on run {run_ids[0]} (it has runs {', '.join(found)}); pass the feedback "
            "collected for this run (fade-hub space serve --failures RUN)"
        )
    cell_verdicts = {(record.run_id, record.user, int(record.item)): record.verdict
                     for record in mine if record.item_type == "mode"}
    region_records = [record for record in mine if record.item_type == "region"]
    regions, region_cell_votes, disputes = _regions(region_records, cell_verdicts, regions_of or _no_regions)
    mode_votes: dict[tuple[str, int], Counter] = defaultdict(Counter)
    answers: dict[tuple[str, int], Counter] = defaultdict(Counter)
    for record in mine:
        if record.item_type == "mode" and (record.run_id, int(record.item)) not in region_cell_votes:
            mode_votes[(record.run_id, int(record.item))][record.verdict] += 1
        elif record.item_type == "example" and record.correction and record.verdict != "not_a_failure":
            answers[(record.run_id, int(record.item[1:]))][record.correction] += 1
    votes: dict[int, Counter] = defaultdict(Counter)
    targeted, errors = [cell for region in regions for cell in region.cells], []
    for (run_id, cell), counts in sorted(region_cell_votes.items()):
        votes[cell].update(counts)
        if _majority(counts) == "not_a_failure" and cell not in errors:
            errors.append(cell)
    for (run_id, cell), counts in sorted(mode_votes.items()):
        votes[cell].update(counts)
        decided = _majority(counts)
        if decided == "fix" and cell not in targeted:
            targeted.append(cell)
        if decided == "not_a_failure" and cell not in errors:
            errors.append(cell)
        if len(counts) > 1:
            disputes.append({"run_id": run_id, "item": str(cell), "votes": dict(counts)})
    corrections = []
    for (run_id, query_id), counts in sorted(answers.items()):
        if len(counts) == 1:
            corrections.append(Correction(run_id, query_id, next(iter(counts))))
        else:
            disputes.append({"run_id": run_id, "item": f"q{query_id}", "corrections": dict(counts)})
    targeted = list(dict.fromkeys(cell for cell in targeted if cell not in errors))
    regions = [_without(region, errors) for region in regions]
    if not targeted and not corrections:
        raise BadConfig(
            f"no region or failure mode has a majority of 'fix' verdicts and no example has an agreed correction "
            f"({len(mine)} verdicts on run {run_ids[0]}); mark the regions to fade as fix in the feedback Space"
        )
    return Selection(
        targeted=targeted,
        votes=dict(votes),
        regions=[region for region in regions if region.cells],
        judge_errors=errors,
        disagreements=disputes,
        corrections=corrections,
        records=len(mine),
        reviewers=len({record.user for record in mine}),
        verdicts=Counter(record.verdict for record in mine),
    )


def _without(region: TargetRegion, errors: list[int]) -> TargetRegion:
    """``region`` without the cells that are judge errors (another run's reviewers said so)."""
    kept = tuple(cell for cell in region.cells if cell not in errors)
    if kept == region.cells:
        return region
    return TargetRegion(region.run_id, region.region_id, region.description, kept, region.classes, region.votes,
                        region.overridden + tuple(cell for cell in region.cells if cell in errors))


def _no_regions(run_id: str) -> pd.DataFrame:
    raise BadConfig(f"the feedback names regions of run {run_id}, but no regions table was given to resolve them")


def from_confirmed(run: Run) -> Selection:
    """Every confirmed failure region of the run (``--modes confirmed``, without feedback); for a run whose regions
    were never confirmed (recorded before regions existed), its confirmed failure-mode cells."""
    confirmed = run.regions[run.regions["confirmed"].astype(bool)] if len(run.regions) else run.regions
    regions = [TargetRegion(run.run_id, str(row["region_id"]), str(row["description"]),
                            tuple(int(cell) for cell in row["cells"]), _names(row["classes"]))
               for _, row in confirmed.iterrows()]
    cells = [cell for region in regions for cell in region.cells]
    if not cells:
        cells = [int(cell) for cell in run.modes.loc[run.modes["confirmed"].astype(bool), "action_id"]]
    if not cells:
        raise BadConfig(
            f"run {run.run_id} has no confirmed failure region to fade; review its regions in the feedback Space and "
            "pass --feedback, or explore with more --confirm-seeds"
        )
    return Selection(targeted=list(dict.fromkeys(cells)), regions=regions,
                     source="confirmed regions" if regions else "confirmed modes")
