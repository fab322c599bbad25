"""The shift in words, from ``fade_eval.json``'s figures: the terminal table (``format_shift``), the verdicts read from
interval bounds (``verdict_lines``), and the rate texts the model card shares."""

from __future__ import annotations

from typing import Any

from ..tasks import get_task

WASSERSTEIN_SHORT = "secondary: it compares sorted per-cell rates, blind to failures that move between cells"


def rate_text(part: dict[str, Any], digits: int = 2) -> str:
    """``0.52 [0.45, 0.60] n=360`` (the rate, its 95 % interval and the queries), or ``n/a``."""
    if part.get("rate") is None:
        return "n/a"
    low, high = part.get("ci_low"), part.get("ci_high")
    interval = f" [{low:.{digits}f}, {high:.{digits}f}]" if low is not None and high is not None else ""
    return f"{part['rate']:.{digits}f}{interval} n={part['queries']}"


def cells_text(count: int) -> str:
    """``1 cell``, ``3 cells``."""
    return f"{count} cell{'' if count == 1 else 's'}"


def points(value: float | None) -> str:
    """A change of a rate in points, signed: ``+0.3``."""
    return "n/a" if value is None else f"{round(100 * value, 1) + 0.0:+.1f}"  # + 0.0: no "-0.0"


def change_text(part: dict[str, Any]) -> str:
    """``+0.3 points [-0.2, +0.9]`` for a group's change of failure rate (after - before)."""
    if part.get("change") is None:
        return "n/a"
    text = f"{points(part['change'])} points [{points(part['change_low'])}, {points(part['change_high'])}]"
    return text + (" (no seed changed)" if _unchanged(part) else "")


def drop_text(part: dict[str, Any]) -> str:
    """``94% [90%, 97%]`` for a group's drop of failures, or ``n/a`` (no failure before)."""
    if part.get("drop") is None:
        return "n/a"
    if part.get("drop_low") is None:
        return f"{part['drop']:.0%}"
    return f"{part['drop']:.0%} [{part['drop_low']:.0%}, {part['drop_high']:.0%}]"


def _unchanged(part: dict[str, Any]) -> bool:
    """Whether no seed's answers changed (figures written before ``unchanged`` was recorded: a zero-width
    interval)."""
    if "unchanged" in part:
        return bool(part["unchanged"])
    return part["before"]["failures"] == part["after"]["failures"] and part.get("change_low") == part.get(
        "change_high") == 0


def _subject(figures: dict[str, Any]) -> str:
    regions, cells = figures.get("regions") or [], figures.get("modes") or []
    in_regions = {cell for region in regions for cell in region["cells"]}
    if len(regions) == 1 and all(mode["action_id"] in in_regions for mode in cells):
        return "the region"
    return "the targeted regions and cells" if regions else "the targeted cells"


def _clean_words(figures: dict[str, Any]) -> str:
    task = figures.get("task")
    if task and get_task(task).correction == "label":
        return "clean accuracy"
    return "the pass rate on clean inputs"


def _faded_line(figures: dict[str, Any], verdict: dict[str, Any]) -> str:
    targeted, subject = figures["targeted"], _subject(figures)
    if verdict.get("holds") is None:
        return f"{subject} had no failure on the evaluation seeds before: no drop to measure"
    if verdict["holds"]:
        return (f"{subject} faded: failures down {drop_text(targeted)} (at least {verdict['limit']:.0%} at the "
                "interval's lower bound)")
    if (targeted.get("drop_low") or 0) > 0:
        return f"{subject} did not surely fade: failures down {drop_text(targeted)}, not surely by {verdict['limit']:.0%}"
    return f"{subject} did not fade: failures down {drop_text(targeted)}, no sure drop"


def _clean_line(figures: dict[str, Any], verdict: dict[str, Any]) -> str:
    clean, words = figures["clean"], _clean_words(figures)
    if verdict.get("holds") is None:
        return f"{words}: not measured"
    limit = f"{100 * verdict['limit']:g} point{'' if verdict['limit'] == 0.01 else 's'}"
    if verdict["holds"]:
        return f"{words} kept: the clean failure rate changed by {change_text(clean)}, a rise of at most {limit}"
    if (clean.get("change_low") or 0) > 0:
        return f"{words} lost: the clean failure rate rose by {change_text(clean)}"
    return f"{words} unsure: the clean failure rate may have risen by up to {points(clean['change_high'])} points " \
           f"(more than {limit})"


def _collateral_line(figures: dict[str, Any], verdict: dict[str, Any]) -> str:
    collateral = figures.get("collateral") or {}
    count = len(collateral.get("cells") or [])
    where = f"{count} unseen perturbation cell{'' if count == 1 else 's'}"
    if verdict.get("holds") is None:
        return "collateral not measured: no untargeted cell could be held out from training"
    limit = f"{100 * verdict['limit']:g} points"
    if verdict["holds"]:
        return f"no collateral: failures on {where} changed by {change_text(collateral)}, a rise of at most {limit}"
    if (collateral.get("change_low") or 0) > 0:
        return f"collateral: failures on {where} rose by {change_text(collateral)}"
    return f"collateral unsure: failures on {where} may have risen by up to {points(collateral['change_high'])} " \
           f"points (more than {limit})"


def verdict_lines(figures: dict[str, Any]) -> list[str]:
    """The three verdicts in words (faded, clean, collateral), each read from an interval bound."""
    verdicts = figures.get("verdicts") or {}
    return [_faded_line(figures, verdicts.get("faded") or {}), _clean_line(figures, verdicts.get("clean") or {}),
            _collateral_line(figures, verdicts.get("collateral") or {})]


def change_map_lines(figures: dict[str, Any]) -> list[str]:
    """The per-cell change map in a sentence or two (the cells surely fixed and surely worse, the largest rise)."""
    summary = figures.get("cell_changes")
    if not summary:
        return []
    lines = [f"per-cell change (before - after) over {summary['cells']} cells: {summary['fixed']} surely fewer "
             f"failures, {summary['worse']} surely more"]
    worst = summary.get("largest_rise")
    if worst:
        lines.append(f"largest rise outside the targets: {worst['cell']} ({worst['role']}), "
                     f"{points(-worst['change'])} points [{points(-worst['change_high'])}, "
                     f"{points(-worst['change_low'])}]")
    return lines


def group_rows(figures: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, figures) of each row of the before/after table: the regions, the cells marked fix on their own, all
    targeted, clean, collateral on unseen perturbations, untargeted trained on."""
    regions = figures.get("regions") or []
    in_regions = {cell for region in regions for cell in region["cells"]}
    rows = [(f"region {region['description']}", region) for region in regions]
    rows += [(f"cell {mode['cell']}", mode) for mode in figures["modes"] if mode["action_id"] not in in_regions]
    collateral, untargeted = figures.get("collateral") or {}, figures["untargeted_trained"]
    rows += [("all targeted", figures["targeted"]), ("clean inputs", figures["clean"])]
    if collateral:
        rows.append((f"collateral on unseen perturbations ({cells_text(len(collateral.get('cells') or []))}, never "
                     "trained on)", collateral))
    label = "untargeted cells"
    if "cells" in untargeted:
        others = " and the targeted cells' other seed classes" if untargeted.get("targeted_cells_other_classes") else ""
        label = f"untargeted, trained on ({cells_text(untargeted['cells'])}{others})"
    return [*rows, (label, untargeted)]


def format_shift(figures: dict[str, Any]) -> str:
    """Plain-text before/after table with 95 % intervals, the drop and changes, and the verdicts, for the terminal."""
    rows = [(label, rate_text(part["before"]), rate_text(part["after"])) for label, part in group_rows(figures)]
    seeds = (figures.get("eval_seeds") or {}).get("count")
    header = (f"failure rate on {seeds} held-out seeds" if seeds else "failure rate on held-out seeds",
              "base model [95% CI]", "mitigated [95% CI]")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(3)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append("")
    for region in figures.get("regions") or []:
        lines.append(f"region {region['description']}: failures down {drop_text(region)}")
    lines.append(f"targeted drop {drop_text(figures['targeted'])}")
    lines.append(f"clean failure rate change {change_text(figures['clean'])}")
    quality = figures["clean"].get("quality")
    if quality:
        interval = (f" [{points(quality['change_low'])}, {points(quality['change_high'])}]"
                    if quality.get("change_low") is not None else "")
        lines.append(f"{quality['metric']} on clean inputs: {quality['before']:.3f} -> {quality['after']:.3f} "
                     f"({points(quality['change'])} points{interval})")
    if figures.get("collateral"):
        lines.append(f"collateral on unseen perturbations: change {change_text(figures['collateral'])}")
    lines.append(f"untargeted, trained on: change {change_text(figures['untargeted_trained'])}")
    lines += change_map_lines(figures)
    lines += [f"verdict: {line}" for line in verdict_lines(figures)] if figures.get("verdicts") else []
    lines.append(f"Wasserstein shift {figures['wasserstein']:.3f} ({WASSERSTEIN_SHORT})")
    return "\n".join(lines)
