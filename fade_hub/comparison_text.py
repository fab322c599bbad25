"""A comparison of two runs in words: what each line of ``fade-hub compare`` (and the re-check after mitigation) says."""

from __future__ import annotations

import math

from .region_changes import STATUSES, Comparison, RegionChange
from .region_text import percent
from .stats import RateChange

HEADINGS = {
    "fixed": "fixed: failing in A; B fails significantly less there and no longer above its clean rate",
    "persisting": "persisting: still a failure region in B",
    "unresolved": "unresolved: failing in A, not found failing in B, but not shown fixed either",
    "new": "new: a failure region of B that A did not have, or where B fails significantly more",
}


def _points(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{100 * value:+.0f}"


def _bounds(low: float, high: float) -> str:
    return "" if not (math.isfinite(low) and math.isfinite(high)) else f" [{100 * low:.0f}, {100 * high:.0f}]"


def rate_text(change: RateChange, side: str) -> str:
    """``62% [41, 79] of 16 seeds`` for A (``before``) or B (``after``)."""
    rate, low, high = change.rate(side)
    units = change.before_units if side == "before" else change.after_units
    return f"{percent(rate)}{_bounds(low, high) if units else ''} of {units} seeds"


def change_text(change: RateChange, p_holm: float | None = None) -> str:
    """``-59 points [-75, -40] (paired on 16 seeds, Holm p 0.0001)``."""
    how = f"paired on {change.before_units} shared seeds" if change.design == "paired" else "independent seeds"
    tested = f", Holm p {p_holm:.2g}" if p_holm is not None and math.isfinite(p_holm) else ""
    return f"{_points(change.change)} points{_bounds(change.change_low, change.change_high)} ({how}{tested})"


def region_text(region: RegionChange) -> str:
    """One region's line: where it is, A's and B's failure rates, the change, and what decided its status."""
    change = region.change
    line = (f"{region.description}: A fails {rate_text(change, 'before')}, B {rate_text(change, 'after')}; change "
            f"{change_text(change, region.p_holm)}")
    if region.excess is not None:
        excess = region.excess
        state = "still significant" if region.excess_significant else "not significant"
        line += (f"; B above its clean rate {_points(excess.change)} points"
                 f"{_bounds(excess.change_low, excess.change_high)} ({state})")
    if region.matches:
        line += f"; {'B' if region.side == 'a' else 'A'}'s overlapping region: {', '.join(region.matches)}"
    return line


def comparison_text(comparison: Comparison) -> str:
    """The comparison for the terminal: the two runs, the clean rates, then the regions by status."""
    a, b = comparison.a, comparison.b
    lines = [
        f"A: {a.spec} (run {a.run_id}, {a.model_text}, {a.meta.get('queries')} queries, seed {a.meta.get('seed')})",
        f"B: {b.spec} (run {b.run_id}, {b.model_text}, {b.meta.get('queries')} queries, seed {b.meta.get('seed')})",
        f"same concept space ({a.space.fingerprint()[:12]}) and task ({a.task}); 95% intervals, Holm's adjustment "
        f"across regions at alpha {comparison.alpha:g}",
        "",
        f"clean failure rate: A {rate_text(comparison.clean, 'before')}, B {rate_text(comparison.clean, 'after')}; "
        f"change {change_text(comparison.clean)}",
    ]
    for status in STATUSES:
        side = "b" if status == "new" else "a"
        found = comparison.with_status(status, side)
        lines += ["", f"{HEADINGS[status]} ({len(found)})"]
        lines += [f"  - {region_text(region)}" for region in found] or ["  (none)"]
    counts = comparison.counts
    lines += ["", summary_text(counts)]
    return "\n".join(lines)


def summary_text(counts: dict[str, int]) -> str:
    """``1 fixed, 0 persisting, 0 unresolved, 0 new``."""
    return ", ".join(f"{counts[status]} {status}" for status in STATUSES)
