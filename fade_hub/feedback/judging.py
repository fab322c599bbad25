"""What the feedback app shows of the judge against its reviewers, as display strings: the agreement figures, overall
and per region, and the regions reviewers call judge errors (all computed by ``fade_hub.agreement.check_judge``,
the code the card and ``report`` use), and the answers ``explore --judge-audit N`` picked at random for review.

Run text (inputs, answers, the judge's reasons, region descriptions) goes into Markdown through ``plain()`` only.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..errors import FadeHubError
from ..agreement import Agreement, JudgeCheck, check_judge
from .pictures import decode_image, side_by_side
from .view import RunView, short, votes_text
from .words import interval, plain, short_percent

logger = logging.getLogger(__name__)

WHY_AUDITED = "picked at random to check the judge"
NOTHING_REVIEWED = ("**No answer reviewed yet.** The judge's agreement with reviewers shows here once someone gives a "
                    "verdict on an answer: one picked below, or an example in the *Review* tab.")
HOW_TO_READ = ("*Agreement* is the share of reviewed answers where the reviewers' majority says what the judge said "
               "(fails or passes); *Cohen's kappa* is that agreement beyond chance (1: always, 0: no better than "
               "chance). Brackets hold 95% intervals.")


def kappa_text(figures: Agreement) -> str:
    """``0.58 [0.24, 0.92]``, or ``n/a (one verdict only)`` when the judge or the reviewers gave one verdict only."""
    if math.isnan(figures.kappa):
        return "n/a (one verdict only)"
    return f"{figures.kappa:.2f} [{figures.kappa_low:.2f}, {figures.kappa_high:.2f}]"


def share_text(figures: Agreement) -> str:
    """``80% [58, 92]``: the share of reviewed answers on which judge and reviewers agree."""
    return f"{short_percent(figures.share)} {interval(figures.share_low, figures.share_high)}".strip()


class JudgeCheckView:
    """The judge of one run against the verdicts of its reviewers, and its audit queue, in words."""

    def __init__(self, view: RunView) -> None:
        self.view = view
        self._checked: tuple[Any, JudgeCheck] | None = None

    # agreement ------------------------------------------------------------------------------------------

    def _queries(self) -> pd.DataFrame:
        """Every query of the run (the judge's verdicts); an empty table when the run has no ``queries`` config."""
        try:
            return self.view.run.queries
        except FadeHubError as err:
            logger.warning("the judge's agreement with reviewers cannot be measured: %s", str(err).splitlines()[0])
            return pd.DataFrame(columns=["query_id", "action_id", "is_failure"])

    def check(self, records: Sequence[Any]) -> JudgeCheck:
        """The judge checked against the resolved feedback ``records`` (computed again only when they change)."""
        checked = self._checked
        if checked is None or checked[0] is not records:
            checked = (records, check_judge(self._queries(), self.view.regions, records, self.view.run_id))
            self._checked = checked
        return checked[1]

    def agreement_markdown(self, check: JudgeCheck) -> str:
        """The judge's agreement with its reviewers in a few sentences (Markdown), the judge-error regions listed."""
        if check.overall is None:
            lines = [NOTHING_REVIEWED]
        else:
            figures = check.overall
            lines = [f"**The judge agrees with reviewers on {figures.agreeing} of {figures.items} reviewed answers:** "
                     f"{share_text(figures)}, Cohen's kappa {kappa_text(figures)}.", HOW_TO_READ]
        for region_id in check.judge_errors:
            lines.append(f"**Judge error in {plain(self.view.describe(region_id))}:** "
                         f"{plain(check.error_words(region_id))}.")
        return "\n\n".join(lines)

    def region_lines(self, check: JudgeCheck) -> str:
        """Per region with reviewed answers or a judge error, worst first: its figures in one Markdown line each."""
        lines = []
        for region_id in self.view.region_ids:
            figures = check.regions.get(region_id)
            if figures is None and region_id not in check.judge_errors:
                continue
            said = (f"{figures.items} reviewed, agreement {share_text(figures)}, Cohen's kappa {kappa_text(figures)}"
                    if figures else "no answer reviewed")
            flag = f" **Judge error:** {plain(check.error_words(region_id))}." if check.error_words(region_id) else ""
            lines.append(f"- **{plain(self.view.describe(region_id))}:** {said}.{flag}")
        return "**Per region** (the reviewed answers in its cells):\n\n" + "\n".join(lines) if lines else ""

    # the audit ------------------------------------------------------------------------------------------

    def _picked(self, target: str | None) -> pd.Series | None:
        """The query record (the judge's verdict, reason, input and answer) of a picked answer, or None."""
        if not target or target not in self.view.audit_ids:
            return None
        return self.view.audited.iloc[self.view.audit_ids.index(target)]

    def audit_label(self, target: str) -> str:
        """``2 · judge: fails · Wht is the capital…`` for the audit dropdown."""
        row = self._picked(target)
        if row is None:
            return target
        said = "fails" if bool(row.get("is_failure")) else "passes"
        what = str(row.get("input") or "") or self.view.cell_text(row)
        return f"{self.view.audit_ids.index(target) + 1} · judge: {said} · {short(what, 18)}"

    def audit_choices(self) -> list[tuple[str, str]]:
        """Dropdown choices (label, target) of the answers picked to check the judge."""
        return [(self.audit_label(target), target) for target in self.view.audit_ids]

    def audit_card(self, target: str | None, votes: Counter | None = None) -> str:
        """One picked answer in plain words (Markdown): why it is here, what the judge said and why, where it lies."""
        row = self._picked(target)
        if row is None:
            return ""
        ids = self.view.audit_ids
        said = "**fails**" if bool(row.get("is_failure")) else "**passes**"
        reason = str(row.get("judge_reason") or "").strip()
        region = self.view.region_of(target)
        where = f"cell {self.view.cell_text(row)}" + (f", in {self.view.describe(region)}" if region else
                                                      ", in no failure region")
        facts = [f"**Why it is here:** {WHY_AUDITED} — one of {len(ids)} answers the run drew from the judge's "
                 "passes and failures alike (half each where it had enough), so that its agreement with reviewers "
                 "is measured where nobody would look on their own.",
                 f"**The judge says** the answer {said}" + (f": {plain(reason)}" if reason else "") + ".",
                 f"**Expected:** {plain(row.get('expected', ''))}.",
                 f"**Where:** {plain(where)}."]
        if votes:
            facts.append(f"**Reviewers so far:** {plain(votes_text(votes))}")
        return f"### Answer {ids.index(target) + 1} of {len(ids)}\n\n" + "\n".join(f"- {fact}" for fact in facts)

    def audit_texts(self, target: str | None) -> tuple[str, str]:
        """(the input the model got, what it answered) of a picked answer, as plain text."""
        row = self._picked(target)
        if row is None:
            return "", ""
        return str(row.get("input") or ""), str(row.get("output") or "")

    def audit_picture(self, target: str | None) -> Any:
        """A picked answer's picture: the clean seed beside the changed image (only a failing answer's is kept), the
        clean seed alone, or None."""
        row = self.view.example(target) if self._picked(target) is not None else None  # failures hold the image
        if row is None:
            return None
        perturbed, clean = decode_image(row.get("image")), self.view.clean_image(row)
        if perturbed is not None:
            return side_by_side(clean, perturbed)
        return clean

    def progress(self, user: str | None, done: set[str]) -> str:
        """``2 of 6 picked answers checked by you`` (or a hint to sign in)."""
        ids = self.view.audit_ids
        if not user:
            return f"{len(ids)} answers to check: sign in to record and count your verdicts"
        checked = len(done & set(ids))
        return f"{checked} of {len(ids)} picked answers checked by you" + (
            ": all done, thank you!" if ids and checked == len(ids) else "")
