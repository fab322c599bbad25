"""What to fade: the failure modes reviewers want fixed, the corrections they agree on, and what they disputed.

Each reviewer's latest verdict counts (``FeedbackSet.resolved()``). A mode is targeted when most of those who
reviewed it chose ``fix`` (a tie is not targeted); a mode most called ``not_a_failure`` is a judge error, left
out of training. A correction of an example counts only when every reviewer who corrected it gave the same one.
Feedback of several runs is read together when they share a lineage (a run made on a mitigated variant and the
run of its base): the targeted modes are the union of each run's own majority.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..errors import BadConfig
from ..feedback import FeedbackRecord
from ..run import Run


@dataclass(frozen=True)
class Correction:
    """A reviewer-agreed right answer for one failing example of a run."""

    run_id: str
    query_id: int
    answer: str


@dataclass
class Selection:
    """The targeted cells and what the feedback said, for training and for the model card."""

    targeted: list[int]
    votes: dict[int, Counter] = field(default_factory=dict)
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
        }


def _majority(counts: Counter) -> str | None:
    """The verdict more than half of the reviewers gave, or None."""
    verdict, count = counts.most_common(1)[0]
    return verdict if count * 2 > sum(counts.values()) else None


def from_feedback(records: Sequence[FeedbackRecord], run_ids: Sequence[str]) -> Selection:
    """Targeted cells, judge errors, disagreements and agreed corrections from resolved feedback of ``run_ids``."""
    mine = [record for record in records if record.run_id in set(run_ids)]
    if not mine:
        found = sorted({record.run_id for record in records}) or ["none"]
        raise BadConfig(
            f"the feedback holds no verdicts on run {run_ids[0]} (it has runs {', '.join(found)}); pass the feedback "
            "collected for this run (fade-hub space serve --failures RUN)"
        )
    mode_votes: dict[tuple[str, int], Counter] = defaultdict(Counter)
    answers: dict[tuple[str, int], Counter] = defaultdict(Counter)
    for record in mine:
        if record.target_type == "mode":
            mode_votes[(record.run_id, int(record.target))][record.verdict] += 1
        elif record.correction and record.verdict != "not_a_failure":
            answers[(record.run_id, int(record.target[1:]))][record.correction] += 1
    votes: dict[int, Counter] = defaultdict(Counter)
    targeted, errors, disputes = [], [], []
    for (run_id, cell), counts in sorted(mode_votes.items()):
        votes[cell].update(counts)
        decided = _majority(counts)
        if decided == "fix" and cell not in targeted:
            targeted.append(cell)
        if decided == "not_a_failure" and cell not in errors:
            errors.append(cell)
        if len(counts) > 1:
            disputes.append({"run_id": run_id, "target": str(cell), "votes": dict(counts)})
    corrections = []
    for (run_id, query_id), counts in sorted(answers.items()):
        if len(counts) == 1:
            corrections.append(Correction(run_id, query_id, next(iter(counts))))
        else:
            disputes.append({"run_id": run_id, "target": f"q{query_id}", "corrections": dict(counts)})
    targeted = [cell for cell in targeted if cell not in errors]
    if not targeted and not corrections:
        raise BadConfig(
            f"no failure mode has a majority of 'fix' verdicts and no example has an agreed correction "
            f"({len(mine)} verdicts on run {run_ids[0]}); mark the modes to fade as fix in the feedback Space"
        )
    return Selection(
        targeted=targeted,
        votes=dict(votes),
        judge_errors=errors,
        disagreements=disputes,
        corrections=corrections,
        records=len(mine),
        reviewers=len({record.user for record in mine}),
        verdicts=Counter(record.verdict for record in mine),
    )


def from_confirmed(run: Run) -> Selection:
    """Every confirmed failure mode of the run, without feedback (``--modes confirmed``)."""
    cells = [int(cell) for cell in run.modes.loc[run.modes["confirmed"].astype(bool), "action_id"]]
    if not cells:
        raise BadConfig(
            f"run {run.run_id} has no confirmed failure mode to fade; review its modes in the feedback Space and "
            "pass --feedback, or explore with more --confirm-seeds"
        )
    return Selection(targeted=cells, source="confirmed modes")
