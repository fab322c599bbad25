"""Standard JSON only: every file fade-hub writes must load in strict readers (no ``NaN`` or ``Infinity``).

``to_json`` writes a missing number (``NaN``, as pandas and numpy spell it: e.g. the failure rate of a
cell never visited) as ``null``, and refuses an infinite one, naming where it is, since no reader could
tell what it meant.
"""

from __future__ import annotations

import json
import math
import numbers
from typing import Any


def finite_or_none(value: Any, where: str = "value") -> Any:
    """``value`` with numpy scalars made Python ones and NaN floats made None, recursively; ValueError on infinities."""
    if getattr(value, "shape", None) == () and hasattr(value, "item"):  # a numpy scalar or 0-d array
        value = value.item()
    if isinstance(value, dict):
        return {key: finite_or_none(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        number = float(value)
        if math.isnan(number):
            return None
        if math.isinf(number):
            raise ValueError(f"{where} is {number}, which standard JSON cannot hold")
        return number
    return value


def to_json(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of ``value`` as standard JSON: NaN written as null, infinities refused.

    Most values hold no NaN: they are written in one pass, numpy scalars made Python ones as the encoder meets
    them; only a value the encoder refuses (a NaN or an infinity in it) is walked by ``finite_or_none`` first.
    """
    default = kwargs.pop("default", None)

    def plain(item: Any) -> Any:
        if getattr(item, "shape", None) == () and hasattr(item, "item"):
            return item.item()
        if isinstance(item, numbers.Real) and not isinstance(item, numbers.Integral):
            return float(item)
        if default is None:
            raise TypeError(f"Object of type {type(item).__name__} is not JSON serializable")
        return default(item)

    try:
        return json.dumps(value, allow_nan=False, default=plain, **kwargs)
    except ValueError:
        return json.dumps(finite_or_none(value), allow_nan=False, default=plain, **kwargs)
