"""Prompt ops: ``slot`` fills ``{slot}`` placeholders of a template; text ops then apply to the filled prompt.

A slot is named after its factor unless ``params: {slot: NAME}`` says otherwise. A template
without a factor's placeholder simply does not use that factor, and braces that no factor
fills (``{style}``, JSON snippets, ...) are left as they are.
"""

from __future__ import annotations

from typing import Any

from .ops import Factor, Op, format_level
from .text import OPS as TEXT_OPS
from .text import coerce  # templates are plain text

__all__ = ["OPS", "coerce", "slot", "slot_name"]


def _check_value(value: Any) -> str | None:
    if isinstance(value, (str, int, float)):
        return None
    return f"{value!r} is not a string or number"


def _check_slot(value: Any) -> str | None:
    if isinstance(value, str) and value.strip() and not any(c in value for c in "{}"):
        return None
    return f"slot must be a non-empty name without braces, got {value!r}"


def slot_name(factor: Factor) -> str:
    """The placeholder a slot factor fills: ``params.slot`` or else the factor name."""
    return factor.params.get("slot", factor.name)


def slot(template: str, level: Any, rng_seed: int, factor: Factor) -> str:
    """Replace every ``{slot}`` in the template with the level's text."""
    return template.replace("{" + slot_name(factor) + "}", format_level(level))


OPS: dict[str, Op] = {
    "slot": Op(slot, _check_value, params={"slot": _check_slot}, fills_template=True),
    **TEXT_OPS,
}
