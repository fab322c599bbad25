"""Perturbation ops and their levels: ``Op`` (a function, its level rule, its no-op test), ``Factor``, level checks.

Each modality module (``image``, ``text``, ``prompt``) registers its ops in an ``OPS`` dict of ``Op``. Every op
declares what it does to the right answer (``expect``), in CheckList's terms: ``invariant`` (the seed's answer
stands: typos, case, rotation, lighting), ``directional`` (the right answer is the seed's answer mapped through
a stated map, ``expect_map``: negation flips sentiment) or ``unjudgeable`` (no automatic expectation).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

LevelCheck = Callable[[Any], "str | None"]
EXPECT_KINDS = ("invariant", "directional", "unjudgeable")
POLARITY = "polarity"  # the named map of negation: a sentiment model's positive and negative labels swap
NAMED_MAPS = (POLARITY,)


@dataclass(frozen=True)
class Op:
    """A registered perturbation: ``fn(item, level, rng_seed, factor)``, its level rule and its no-op test."""

    fn: Callable[[Any, Any, int, "Factor"], Any]
    check: LevelCheck  # returns why a level is invalid, or None when it is fine
    is_noop: Callable[[Any], bool] = lambda level: False  # by default no level leaves the item unchanged
    params: Mapping[str, LevelCheck] = field(default_factory=dict)  # allowed params -> value check
    fills_template: bool = False  # prompt slots are filled before any other op runs
    expect: str = "invariant"  # what the op does to the right answer (see EXPECT_KINDS)
    expect_map: str | None = None  # directional ops: the named map of labels they apply (see NAMED_MAPS)


@dataclass(frozen=True)
class Factor:
    """One axis of a concept space: a record column name, an op, and its levels in YAML order."""

    name: str
    op: str
    levels: tuple
    params: dict = field(default_factory=dict)
    expect: str | dict | None = None  # None: the op's own expectation; else "invariant", "unjudgeable" or {"map": {...}}
    ordered: bool | None = None  # None: ordered exactly when every level is a number

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", tuple(self.levels))
        object.__setattr__(self, "params", dict(self.params or {}))

    @property
    def is_ordered(self) -> bool:
        """Whether the levels have an order (by value): numbers unless ``ordered: false``, never other levels."""
        numeric = all(is_real(level) for level in self.levels)
        return numeric if self.ordered is None else bool(self.ordered) and numeric


def is_real(value: Any) -> bool:
    """Whether a level is a finite int or float (booleans excluded)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number_level(lo: float | None = None, hi: float | None = None, *, hi_open: bool = False,
                 integer: bool = False) -> LevelCheck:
    """A level check accepting finite numbers in ``[lo, hi]`` (``[lo, hi)`` with ``hi_open``)."""
    kind = "an integer" if integer else "a number"
    if lo is not None and hi is not None:
        where = f" in [{lo}, {hi}{')' if hi_open else ']'}"
    elif lo is not None:
        where = f" >= {lo}"
    else:
        where = "" if hi is None else f" <= {hi}"

    def check(value: Any) -> str | None:
        if not is_real(value) or (integer and float(value) != int(value)):
            return f"{value!r} is not {kind}{where}"
        if (lo is not None and value < lo) or (hi is not None and (value >= hi if hi_open else value > hi)):
            return f"{value!r} is out of range: must be {kind}{where}"
        return None

    return check


def choice_level(*choices: str) -> LevelCheck:
    """A level check accepting one of the given strings."""

    def check(value: Any) -> str | None:
        return None if isinstance(value, str) and value in choices else f"{value!r} is not one of {', '.join(choices)}"

    return check


def flag_level(value: Any) -> str | None:
    """A level check accepting YAML booleans."""
    return None if isinstance(value, bool) else f"{value!r} is not true or false"


def flag_or_rate_level(value: Any) -> str | None:
    """A level check accepting a boolean or a rate in [0, 1]."""
    if isinstance(value, bool) or (is_real(value) and 0 <= value <= 1):
        return None
    return f"{value!r} is not true, false or a rate in [0, 1]"


def format_level(value: Any) -> str:
    """Stable text of a level: ints as ``5``, floats shortest (``0.3``, ``1.0``), booleans ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = format(value, ".12g")
        return text if any(c in text for c in ".en") else text + ".0"
    return str(value)
