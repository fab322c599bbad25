"""The app's plain words: failure rates with their intervals, what a mode's flags mean, the perturbation of a
cell, and the "how to review" guide. Pure functions of numbers and level strings; no UI.

Text from the run (level values, labels) passes through ``plain()`` before it goes into Markdown, so that it
is shown as typed, never as markup.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ..landscape import LandscapeConfig, factor_levels

_MARKUP = re.compile(r"([\\`*_\[\]!|~$])")
_LINE_START = re.compile(r"^(\d+)([.)])|^([-+#=])")  # list items and headings: markup only at the start


def plain(text: Any) -> str:
    """``text`` made inert for Markdown: HTML characters as entities, Markdown punctuation escaped, one line."""
    text = " ".join(str(text).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MARKUP.sub(r"\\\1", text)
    return _LINE_START.sub(lambda m: f"{m.group(1)}\\{m.group(2)}" if m.group(1) else f"\\{m.group(3)}", text)


def percent(value: float | None) -> str:
    """``0.786`` -> ``79%``; ``None``/NaN -> ``n/a``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * float(value):.0f}%"


def rate_words(failures: int, queries: int, low: float, high: float) -> str:
    """``failed 11 of 14 tries (79%); the true rate is between 52% and 92% (95% interval)``."""
    if not queries:
        return "not tried"
    return (f"failed on {failures} of {queries} seeds ({percent(failures / queries)}); the true rate is between "
            f"{percent(low)} and {percent(high)} (95% interval)")


def clean_words(clean: Mapping[str, Any] | None) -> str:
    """The clean failure rate of a run in one sentence."""
    if not clean or not clean.get("queries"):
        return ("This run measured no clean failure rate (prompt spaces have no unperturbed form): each cell is "
                "compared with the other cells instead.")
    return f"Unperturbed seeds {rate_words(int(clean['failures']), int(clean['queries']), clean['ci_low'], clean['ci_high'])}."


def evidence_words(row: Mapping[str, Any]) -> str:
    """Whether the cell fails significantly more often than clean inputs, with its adjusted p-value."""
    q_value = row.get("q_value")
    if q_value is None or (isinstance(q_value, float) and math.isnan(q_value)):
        return "Not tested against the clean failure rate."
    alpha = LandscapeConfig().alpha
    verdict = "significantly more often" if bool(row.get("significant")) else "not significantly more often"
    return f"This cell fails {verdict} (adjusted p = {float(q_value):.2g}; threshold {alpha:g})."


def confirmed_words(row: Mapping[str, Any]) -> str:
    """What the re-test on held-out seeds found."""
    queries = int(row.get("confirm_seeds") or 0)
    if not queries:
        return "Not re-tested on held-out seeds, so not confirmed."
    failures = int(row.get("confirm_failures") or 0)
    if bool(row.get("confirmed")):
        return f"Confirmed: failed {failures} of {queries} held-out seeds, again clearly more often than clean inputs."
    return f"Not confirmed: failed {failures} of {queries} held-out seeds, not clearly more often than clean inputs."


def uncertain_words(row: Mapping[str, Any]) -> str:
    """A warning for cells with too few queries, else ``""``."""
    if not bool(row.get("uncertain")):
        return ""
    return (f"Uncertain: only {int(row.get('seeds') or 0)} seeds here (fewer than "
            f"{LandscapeConfig().min_queries}), too few to read the rate on its own.")


def severity_words(judge: str, severity: float) -> str:
    """What the mean severity of a mode means for the run's judge."""
    value = float(severity or 0.0)
    if judge == "label":
        confidence = 1.0 / (1.0 + math.exp(-value / 10.0))
        return (f"{value:.1f} — the wrong answers were about {percent(confidence)} confident on average "
                "(10 × the log-odds of the wrong label; 0 is a coin flip, 20 is 88% sure).")
    meanings = {
        "classifier": "the judge model's probability that the output is what it flags",
        "rouge": "how far the output fell below the baseline ROUGE-L score",
        "pattern": "1 for every output that matched a forbidden word or pattern",
        "clip": "100 × (1 − cosine) between the image and its prompt: higher means further from the prompt",
    }
    meaning = meanings.get(judge, "the judge's measure of how bad a failure is")
    return f"{value:.2f} — {meaning}; higher is worse."


def expectation_words(expectation: str, source: str = "") -> str:
    """What the right answer is for a cell (invariant or directional), in words."""
    expectation = str(expectation or "invariant")
    where = f" Here: {plain(source)}." if source else ""
    if expectation.startswith("directional"):
        ops = expectation[expectation.find("(") + 1: expectation.rfind(")")] if "(" in expectation else ""
        return (f"Directional ({plain(ops)}): this change should change the answer in a stated way (negation swaps "
                f"positive and negative); the right answer is the seed's answer mapped that way.{where}")
    if expectation.startswith("not judged"):
        return "Not judged: nothing automatic says what the right answer is here."
    return ("Invariant: this change should not change the answer; the right answer is the seed's own answer."
            f"{where}")


_OPS = {
    "rotate": lambda v: f"rotated by {v}°",
    "brightness": lambda v: f"brightness × {v}",
    "contrast": lambda v: f"contrast × {v}",
    "saturation": lambda v: f"colour saturation × {v}",
    "darken": lambda v: f"darkened by {v}",
    "blur": lambda v: f"blurred (radius {v})",
    "noise": lambda v: f"noise added (strength {v})",
    "jpeg": lambda v: f"JPEG quality {v}",
    "occlude": lambda v: f"{v} of the image covered",
    "typos": lambda v: f"typos in {v} of the characters",
    "case": lambda v: f"{v} case",
    "punctuation": lambda v: "punctuation removed",
    "stopwords": lambda v: f"stop words removed ({v})",
    "negate": lambda v: "negated",
    "shuffle": lambda v: f"words shuffled ({v})",
    "repeat": lambda v: f"repeated {v} times",
}


def perturbation_words(space: Any, levels: Mapping[str, Any]) -> str:
    """``rotated by 45°, brightness × 0.3`` for a cell: each active factor in words (no-op levels left out)."""
    parts = []
    strings = factor_levels(space)
    for factor in space.factors:
        value = levels.get(factor.name)
        if value is None:
            continue
        known = strings[factor.name]
        if str(value) in known and space.declared_op(factor).is_noop(factor.levels[known.index(str(value))]):
            continue
        words = _OPS.get(factor.op)
        parts.append(words(value) if words else f"{factor.name} = {value}")
    return ", ".join(parts) or "unchanged"


def guide_markdown(clean: Mapping[str, Any] | None) -> str:
    """The "how to review" panel (Markdown; only numbers from the run go into it)."""
    config = LandscapeConfig()
    return f"""
**What you review.** fade-hub changed the model's inputs along a few *factors* (for example rotation and
brightness) and asked the model again. A **cell** is one combination of factor levels. A **failure mode** is a
cell where the model fails clearly more often than on the unperturbed inputs.

**The clean failure rate.** {plain(clean_words(clean))} A failure mode must fail clearly more often than that.

**How a cell becomes a mode.** For each cell, a statistical test (one-sided Fisher test) asks whether it fails
more often than the clean inputs; the p-values are adjusted for testing many cells at once (Benjamini-Hochberg),
and a cell whose adjusted p-value is at most {config.alpha:g} is a failure mode.

**Failure rate and interval.** "failed 11 of 14 tries (79%); the true rate is between 52% and 92%" means: we saw
11 failures in 14 tries, and with 95% confidence the true rate lies in that range. Few tries give a wide range.

**Confirmed** means the cell was re-tested on *held-out* seeds (inputs the search never saw) and failed clearly
more often than clean inputs there too. **Uncertain** marks cells with fewer than {config.min_queries} tries.

**Severity** says how bad the failures were by the judge's measure (for a classifier: how confident the wrong
answer was). It breaks ties in the ranking.

**Ranking.** Confirmed modes come first; then modes are sorted by the *lower end* of their interval: the rate we
are sure of. So a mode at 0.30 seen 200 times (at least 0.24) ranks above one at 0.54 seen 5 times (at least
0.18).

**Invariant or directional.** Most changes should *not* change the right answer (invariant: a rotated circle is
still a circle). Some should change it in a known way (directional: negating a positive sentence makes it
negative); then the expected answer is the seed's answer mapped that way.

**Your verdict** (keys 1, 2, 3, then Enter): **fix** if this must be fixed, **acceptable** if it is a failure we
can live with, **not a failure** if the judge was wrong. You can change or withdraw a verdict later under
"My verdicts"; your latest one counts.
"""
