"""How often the judge agrees with the people who reviewed its verdicts, overall and per region.

A reviewed example (a query, ``item_type="example"``) has the reviewers' majority verdict: ``fix`` or
``acceptable`` say the answer fails (a failure to fix or to live with), ``not_a_failure`` says it passes (the judge
was wrong when it called it a failure); a tie is no verdict. The judge's verdict is the query's ``is_failure``
(unjudged answers are left out: they have none). Agreement is the share of reviewed examples where both say the same,
with Wilson's 95 % interval, and Cohen's kappa (agreement beyond chance) with its 95 % interval
(``fade_hub.stats.cohen_kappa``; n/a where the judge or the reviewers gave one verdict only: chance agreement then
explains all the agreement there is, kappa is 0 or 1 by construction and its interval says nothing); per region over
the examples in its cells. A region whose reviewers mostly say
``not_a_failure`` (its region verdicts, else the verdicts on the failing examples in its cells: a reviewer who agrees
that a passing answer passes says nothing against the judge's failures) is a judge error: the card, ``report`` and
the Space flag it in the same words (``JudgeCheck.error_words``), and mitigation leaves it out already.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .stats import cohen_kappa, wilson_interval


FAILS = ("fix", "acceptable")
PASSES = "not_a_failure"


def cells_of(value: Any) -> list[int]:
    """A regions row's cells, as stored (a list, or its JSON)."""
    return [int(c) for c in (json.loads(value) if isinstance(value, str) else value)]


@dataclass
class Agreement:
    """Agreement figures of one set of reviewed examples."""

    items: int
    agreeing: int
    share: float
    share_low: float
    share_high: float
    kappa: float
    kappa_low: float
    kappa_high: float

    @classmethod
    def of(cls, judge: Sequence[bool], reviewers: Sequence[bool]) -> Agreement:
        """The figures of aligned judge and reviewer verdicts (True: a failure)."""
        table = np.zeros((2, 2))
        for j, r in zip(judge, reviewers, strict=True):
            table[int(bool(j)), int(bool(r))] += 1
        items, agreeing = int(table.sum()), int(np.trace(table))
        low, high = wilson_interval(agreeing, items) if items else (0.0, 1.0)
        kappa, k_low, k_high = cohen_kappa(table)
        if table.sum(axis=0).min() == 0 or table.sum(axis=1).min() == 0:
            kappa, k_low, k_high = float("nan"), -1.0, 1.0  # one side gave one verdict only: kappa is undefined
        return cls(items, agreeing, agreeing / items if items else float("nan"), float(low), float(high),
                   float(kappa), float(k_low), float(k_high))

    def kappa_text(self) -> str:
        """``0.52 (0.17 to 0.87)``, or ``n/a`` where kappa is undefined."""
        return "n/a" if np.isnan(self.kappa) else f"{self.kappa:.2f} ({self.kappa_low:.2f} to {self.kappa_high:.2f})"

    def text(self) -> str:
        """In words, e.g. ``agreement 0.80 (0.58-0.92), kappa 0.52 (0.17 to 0.87), 20 reviewed``."""
        return (f"agreement {self.share:.2f} ({self.share_low:.2f}-{self.share_high:.2f}), Cohen's kappa "
                f"{self.kappa_text()}, {self.items} reviewed")


@dataclass
class JudgeCheck:
    """The judge against its reviewers: overall, per region, and the regions flagged as judge errors; ``votes`` holds
    per region with verdicts (not a failure, all) as the judge-error rule counts them."""

    overall: Agreement | None
    regions: dict[str, Agreement] = field(default_factory=dict)
    judge_errors: list[str] = field(default_factory=list)
    votes: dict[str, tuple[int, int]] = field(default_factory=dict)

    def error_words(self, region_id: str) -> str:
        """``reviewers say the judge is wrong here (4 of 5 verdicts: not a failure)`` for a judge-error region, else
        ``""``."""
        if region_id not in self.judge_errors:
            return ""
        wrong, total = self.votes[region_id]
        return f"reviewers say the judge is wrong here ({wrong} of {total} verdicts: not a failure)"


def _majority(counts: Counter) -> str | None:
    """The verdict most reviewers gave (failing verdicts pooled), None on a tie."""
    fails, passes = sum(counts[v] for v in FAILS), counts[PASSES]
    return None if fails == passes else ("fail" if fails > passes else "pass")


def check_judge(queries: pd.DataFrame, regions: pd.DataFrame, records: Sequence[Any], run_id: str) -> JudgeCheck:
    """The judge of run ``run_id`` checked against the resolved feedback ``records`` (see module doc)."""
    examples: dict[int, Counter] = defaultdict(Counter)
    on_regions: dict[str, Counter] = defaultdict(Counter)
    for record in records:
        if record.run_id != run_id:
            continue
        if record.item_type == "example":
            examples[int(record.item[1:])][record.verdict] += 1
        elif record.item_type == "region":
            on_regions[record.item][record.verdict] += 1
    by_id = queries.set_index("query_id") if len(queries) else queries
    rows = []
    for query_id, counts in examples.items():
        decided = _majority(counts)
        if decided is None or query_id not in by_id.index:
            continue
        query = by_id.loc[query_id]
        if bool(query.get("unjudged", False)) or not bool(query.get("judged", True)):
            continue
        rows.append((int(query["action_id"]), bool(query["is_failure"]), decided == "fail", counts))
    check = JudgeCheck(Agreement.of([r[1] for r in rows], [r[2] for r in rows]) if rows else None)
    for region in regions.itertuples() if regions is not None and len(regions) else ():
        region_id, cells = str(region.region_id), set(cells_of(region.cells))
        inside = [r for r in rows if r[0] in cells]
        if inside:
            check.regions[region_id] = Agreement.of([r[1] for r in inside], [r[2] for r in inside])
        votes = on_regions.get(region_id) or sum((r[3] for r in inside if r[1]), Counter())
        if votes:
            check.votes[region_id] = (votes[PASSES], sum(votes.values()))
            if votes[PASSES] * 2 > sum(votes.values()):
                check.judge_errors.append(region_id)
    return check


def agreement_lines(check: JudgeCheck | None) -> list[str]:
    """The card's and ``report``'s words on the judge's agreement with its reviewers."""
    if check is None or (check.overall is None and not check.judge_errors):
        return []
    overall = check.overall.text() if check.overall else "no reviewed example (verdicts on regions only)"
    lines = ["## Judge against reviewers", "", f"Overall: {overall}.", ""]
    if check.regions:
        lines += ["| region | reviewed | agreement (95% CI) | Cohen's kappa (95% CI) | judge error |", "|---|---|---|---|---|"]
        for region_id, figures in check.regions.items():
            flag = f"**yes: {check.error_words(region_id)}**" if region_id in check.judge_errors else "no"
            lines.append(f"| {region_id} | {figures.items} | {figures.share:.2f} ({figures.share_low:.2f}-"
                         f"{figures.share_high:.2f}) | {figures.kappa_text()} | {flag} |")
        lines.append("")
    for region_id in check.judge_errors:
        if region_id not in check.regions:
            lines.append(f"- Judge error in region {region_id}: {check.error_words(region_id)}.")
    return lines


def audit_sample(queries: pd.DataFrame, count: int, seed: int = 0) -> list[int]:
    """``count`` judged explore answers for reviewers to check, half failing and half passing where the run has
    enough of each (the rest from the other side), drawn with ``seed``: the query ids, sorted. Reviewing passes as
    well as failures is what lets agreement see the failures the judge missed."""
    if count <= 0 or queries is None or not len(queries):
        return []
    judged = queries[(queries["phase"] == "explore") & queries["judged"].astype(bool)]
    if "unjudged" in judged.columns:
        judged = judged[~judged["unjudged"].eq(True)]
    rng = np.random.default_rng(seed)
    failing = judged.loc[judged["is_failure"].astype(bool), "query_id"].to_numpy()
    passing = judged.loc[~judged["is_failure"].astype(bool), "query_id"].to_numpy()
    take_fail = min(len(failing), max(count // 2, count - len(passing)))
    take_pass = min(len(passing), count - take_fail)
    chosen = [*rng.choice(failing, take_fail, replace=False), *rng.choice(passing, take_pass, replace=False)]
    return sorted(int(q) for q in chosen)
