"""Plain words for what the feedback app shows: a region's figures, the clean rate, the guide for reviewers.

Every value that comes from a run (factor names, level values, labels) passes through ``plain()`` before it goes
into Markdown, so that it is shown as typed, never as markup.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..characterize import TESTS

_MARKUP = re.compile(r"([\\`*_\[\]!|~$])")
_LINE_START = re.compile(r"^(\d+)([.)])|^([-+#=])")  # list items and headings: markup only at the start


def plain(text: Any) -> str:
    """``text`` made inert for Markdown: HTML characters as entities, Markdown punctuation escaped, one line."""
    text = " ".join(str(text).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MARKUP.sub(r"\\\1", text)
    return _LINE_START.sub(lambda m: f"{m.group(1)}\\{m.group(2)}" if m.group(1) else f"\\{m.group(3)}", text)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def short_percent(value: float | None) -> str:
    """A rate as a percentage, with one decimal below 10 % (``1.5%``, ``35%``); ``n/a`` when missing."""
    if _missing(value):
        return "n/a"
    points = 100 * float(value)
    return f"{points:.1f}%" if 0 < points < 9.95 else f"{points:.0f}%"


def interval(low: float | None, high: float | None) -> str:
    """``[28, 43]``: a 95 % interval in percentage points (``[0.4, 2.5]``: with one decimal below 10 %)."""
    if _missing(low) or _missing(high):
        return ""
    digits = 1 if 0 < 100 * float(high) < 9.95 else 0
    return f"[{100 * float(low):.{digits}f}, {100 * float(high):.{digits}f}]"


def points(value: float, low: float | None = None, high: float | None = None) -> str:
    """``+12 points [8, 16]`` for a difference of rates (one decimal when all of it is under 10 points)."""
    shown = [v for v in (value, low, high) if not _missing(v)]
    digits = 1 if max(abs(100 * float(v)) for v in shown) < 9.95 else 0
    text = f"{100 * float(value):+.{digits}f} points"
    if not _missing(low) and not _missing(high):
        text += f" [{100 * float(low):+.{digits}f}, {100 * float(high):+.{digits}f}]"
    return text


def cell_words(names: Sequence[str], levels: Mapping[str, Any]) -> str:
    """A cell as ``rotation 30, brightness 0.2`` (factor and level apart, so that a line may break between them)."""
    return ", ".join(f"{name} {levels[name]}" for name in names if name in levels)


def clean_words(clean: Mapping[str, Any] | None) -> str:
    """The run's clean failure rate in a few words: ``here 1.5% [0.3, 8.0] of 36 seeds``."""
    if not clean or not clean.get("queries"):
        return "prompts have no unchanged form: a region is compared with the other changes instead"
    rate = clean["failures"] / clean["queries"]
    return (f"here {short_percent(rate)} {interval(clean.get('ci_low'), clean.get('ci_high'))} of "
            f"{int(clean['queries'])} seeds").replace("  ", " ")


def _tested(row: Any) -> bool:
    return bool(getattr(row, "confirm_test", "") or "") and float(getattr(row, "confirm_seeds", 0) or 0) > 0


def _against(rate: float, test: str = "") -> str:
    """``against 1.5% clean`` (or outside the regions, for prompt runs)."""
    if test == "paired-outside":
        return f"against {short_percent(rate)} outside the regions"
    return f"against {short_percent(rate)} of clean seeds"


def region_facts(row: Any) -> list[str]:
    """A region's figures as Markdown sentences (run text escaped): how often it fails during the search against
    the clean rate, what the held-out test found, per seed class."""
    if _missing(row.clean_rate):
        baseline = f"against {short_percent(row.outside_rate)} elsewhere"
    else:
        baseline = _against(row.clean_rate)
    facts = [f"**Fails** {short_percent(row.failure_rate)} of seeds {interval(row.ci_low, row.ci_high)} "
             f"{baseline} ({int(whole_count(row.failures))} of {int(row.seeds)} seeds during the search)."]
    if _tested(row):
        held = (f"{int(row.confirm_seeds)} seeds it never saw: {short_percent(row.confirm_rate)} "
                f"{interval(row.confirm_ci_low, row.confirm_ci_high)} failed, "
                f"{_against(row.confirm_baseline_rate, row.confirm_test)}")
        facts.append(f"**Confirmed** on {held}." if bool(row.confirmed)
                     else f"**Not confirmed** on {held}: not clearly more.")
    elif bool(row.screened):
        facts.append("**Not confirmed:** no seeds were held out to re-test it, so treat it as a lead.")
    else:
        facts.append("**Not confirmed:** the search's own test does not single it out clearly either.")
    by_class = class_words(row)
    if by_class:
        facts.append(f"**By seed class** (in its cells): {by_class}.")
    return facts


def whole_count(value: Any) -> int:
    """A count that may be a float share, rounded to whole seeds."""
    return int(round(float(value or 0)))


def class_words(row: Any) -> str:
    """``triangle 23 of 24 (96%), square 12 of 24 (50%)``: failing seeds per class in the region's cells, worst first
    (plain text escaped for Markdown; ``""`` when the seeds have no classes)."""
    rates = json.loads(row.class_rates) if getattr(row, "class_rates", "") else {}
    items = sorted(((name, whole_count(k), int(n)) for name, (k, n) in rates.items()),
                   key=lambda item: -(item[1] / item[2]) if item[2] else 1.0)
    return ", ".join(f"{plain(name)} {k} of {n} ({short_percent(k / n)})" if n else f"{plain(name)} not tried"
                     for name, k, n in items)


EXPECTATIONS = {
    "invariant": "invariant: these changes should not change the answer (the right one is the seed's own)",
    "directional": "directional: these changes should change the answer in a known way (negating a positive sentence "
                   "makes it negative)",
}


def expectation_words(expectations: Sequence[str]) -> str:
    """What the right answer is in a region's cells (invariant, directional, or both), in words."""
    kinds = list(dict.fromkeys(str(text).split(" ")[0] for text in expectations if text))
    return "; ".join(EXPECTATIONS.get(kind, kind) for kind in kinds) or "not judged"


def region_details(row: Any, meta: Mapping[str, Any], expectations: Sequence[str] = ()) -> str:
    """The statistics behind a region for those who want them (Markdown): the tests, the judge, the right answer."""
    lines = [
        f"**Search (screening):** scan score {float(row.scan_llr):.1f}; one-sided Fisher test against the clean "
        f"seeds of its classes, p = {float(row.screen_p):.2g}, adjusted over the regions listed "
        f"(Benjamini-Hochberg) {float(row.screen_q):.2g}; excess over clean {_points(row, '')}.",
    ]
    if _tested(row):
        lines.append(f"**Held-out test:** {plain(TESTS.get(str(row.confirm_test), str(row.confirm_test)))}; "
                     f"p = {float(row.confirm_p):.2g}, Holm-adjusted over the regions tested "
                     f"{float(row.confirm_p_holm):.2g}; excess {_points(row, 'confirm_')}.")
    judge = meta.get("judge") or {}
    if judge:
        reference = f": {plain(judge['reference'])}" if judge.get("reference") else ""
        lines.append(f"**Judge:** {plain(judge.get('name', '?'))}{reference}.")
    if expectations:
        lines.append(f"**Right answer:** {plain(expectation_words(expectations))}.")
    return "\n\n".join(lines)


def _points(row: Any, prefix: str) -> str:
    value, low, high = (getattr(row, f"{prefix}excess{part}") for part in ("", "_low", "_high"))
    return "n/a" if _missing(value) else points(value, low, high)


JUDGES = {
    "label": "an answer fails when the label differs from the right one (the seed's own label, or the model's "
             "answer on the unchanged seed)",
    "classifier": "a judge model reads each output and flags the bad ones",
    "rouge": "an output fails when its ROUGE-L overlap with the reference falls well below the unchanged input's",
    "pattern": "an output fails when it contains a forbidden word or pattern",
    "clip": "a generated image fails when CLIP finds it too far from its prompt",
}


def guide_markdown(clean: Mapping[str, Any] | None, judge: str = "") -> str:
    """The "how to review" panel (Markdown; only numbers from the run go into it)."""
    how = JUDGES.get(judge, "an automatic check decides whether each answer failed")
    return f"""
- **What you review:** the model's inputs were changed along a few factors (such as rotation or brightness); a
  **region** is a set of such changes where the model fails clearly more often than on unchanged inputs.
- **The judge** decided whether each answer failed: {how}. If it was wrong, your verdict is *not a failure*.
- **The clean rate** is how often the model fails on unchanged seeds ({clean_words(clean)}).
- **Confirmed** means re-tested on seeds the search never saw, and failing clearly more often there too.
- **The numbers:** "35% [28, 43]" means 35% of the seeds failed and the true rate lies between 28% and 43% (95%
  interval).
- **Your verdict** (keys 1, 2, 3, then Enter): *fix*, *acceptable* (a failure we live with) or *not a failure*. It
  covers all the region's cells; pick one cell or example to give it a verdict of its own. Change or withdraw it
  under *My verdicts*.
"""
