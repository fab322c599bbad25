"""Regions in words, the same everywhere (terminal, card, demo): what a region is and how sure the figures are."""

from __future__ import annotations

import json
import math
from typing import Any

from .characterize import TESTS


def percent(value: float) -> str:
    """``35%`` (``n/a`` for a missing value)."""
    return "n/a" if value is None or not math.isfinite(float(value)) else f"{100 * float(value):.0f}%"


def _bounds(low: float, high: float) -> str:
    return f"[{100 * float(low):.0f}, {100 * float(high):.0f}]"


def _tested(row: Any) -> bool:
    return bool(getattr(row, "confirm_test", "") or "")


def figures_text(row: Any) -> str:
    """The region's failure rate in words with its interval, against the clean rate it was tested on: held-out
    figures when it was confirmed on held-out seeds, exploration figures otherwise."""
    if _tested(row) and float(row.confirm_seeds or 0) > 0:
        against = "clean" if row.confirm_test != "paired-outside" else "outside the regions"
        return (f"fails {percent(row.confirm_rate)} {_bounds(row.confirm_ci_low, row.confirm_ci_high)} of "
                f"{int(row.confirm_seeds)} held-out seeds vs {percent(row.confirm_baseline_rate)} {against}")
    against = "clean" if math.isfinite(float(row.clean_rate)) else "elsewhere"
    return (f"fails {percent(row.failure_rate)} {_bounds(row.ci_low, row.ci_high)} of {int(row.seeds)} exploration "
            f"seeds vs {percent(row.clean_rate)} {against}")


def excess_figures(row: Any) -> tuple[float, float, float]:
    """The failure rate above clean and its 95 % interval: held-out figures when the region was tested on held-out
    seeds, exploration figures otherwise."""
    prefix = "confirm_" if _tested(row) and float(row.confirm_seeds or 0) > 0 else ""
    return tuple(float(getattr(row, f"{prefix}excess{part}")) for part in ("", "_low", "_high"))


def excess_text(row: Any) -> str:
    """``+33 points [21, 45]``: the failure rate above clean with its 95 % interval (held-out when tested)."""
    value, low, high = excess_figures(row)
    if not math.isfinite(float(value)):
        return "n/a"
    return f"{100 * float(value):+.0f} points {_bounds(low, high)}"


def verdict_text(row: Any) -> str:
    """``confirmed`` / ``not confirmed`` / ``screened, not tested`` / ``not significant``."""
    if _tested(row):
        return "confirmed" if bool(row.confirmed) else "not confirmed"
    if bool(row.screened):
        return "screened (not confirmed: no held-out test)"
    return "not significant"


def region_line(row: Any) -> str:
    """One line: ``1. rotation ±30 and brightness 0.2 (any saturation): fails 62% [41, 79] of 16 held-out seeds vs
    0% clean; confirmed``."""
    return f"{int(row.rank)}. {row.description}: {figures_text(row)}, excess {excess_text(row)}; {verdict_text(row)}"


def class_text(row: Any) -> str:
    """Per seed class in the region's cells during exploration: ``square 45/71, triangle 10/50`` ("" without classes)."""
    rates = json.loads(row.class_rates) if row.class_rates else {}
    return ", ".join(f"{name} {k:g}/{n}" for name, (k, n) in rates.items())


def test_text(test: str) -> str:
    """The confirmation test in words."""
    return TESTS.get(test, test)
