"""The plots of a mitigation: the per-cell change map (the shift's headline), the groups' failure rates before and
after, and the landscape before and after."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..env import FailureEnv
from ..plots import new_figure, plot_text, save_figure
from .evaluate import Measurement
from .shift_text import group_rows

MODES_PLOT = "plots/modes_before_after.png"
LANDSCAPE_PLOT = "plots/landscape_before_after.png"
CHANGE_PLOT = "plots/cell_changes.png"
MAX_ANNOTATED = 400  # cells in the change map past which the values are not written in the squares
ROLE_EDGES = {"targeted": ("black", "-"), "collateral": ("#1f4e79", "--")}


def _columns(space: Any) -> tuple[list[str], list[tuple[int, ...]]]:
    """The change map's columns: every combination of the levels of the factors after the first (``0.2 / 1.0``)."""
    rest = space.factors[1:]
    combos = list(itertools.product(*(range(len(factor.levels)) for factor in rest))) or [()]
    labels = [" / ".join(str(factor.levels[i]) for factor, i in zip(rest, combo)) for combo in combos]
    return labels, combos


def change_plot(folder: Path, env: FailureEnv, changes: pd.DataFrame) -> Path:
    """The per-cell change of the failure rate (before - after; green: fewer failures, red: more), targeted cells
    framed in black, the collateral cells (never trained on) in dashed blue; cells not evaluated are grey."""
    space = env.space
    first = space.factors[0]
    labels, combos = _columns(space)
    column = {combo: j for j, combo in enumerate(combos)}
    grid = np.full((len(first.levels), len(combos)), np.nan)
    roles: dict[tuple[int, int], str] = {}
    sure: set[tuple[int, int]] = set()
    for row in changes.itertuples(index=False):
        action = space.action_from_id(int(row.action_id))
        i, j = action[0], column[tuple(action[1:])]
        grid[i, j] = row.change
        roles[(i, j)] = row.role
        if row.change_low > 0 or row.change_high < 0:
            sure.add((i, j))
    from matplotlib import colormaps

    fig, ax = new_figure(width=min(4.5 + 0.55 * len(combos), 30.0), height=2.0 + 0.45 * len(first.levels))
    image = ax.imshow(np.ma.masked_invalid(grid), vmin=-1, vmax=1, aspect="auto",
                      cmap=colormaps["RdYlGn"].with_extremes(bad="#d9d9d9"))
    for (i, j), role in roles.items():
        if role in ROLE_EDGES:
            color, style = ROLE_EDGES[role]
            ax.add_patch(_frame(i, j, color, style))
        if grid.size <= MAX_ANNOTATED and not np.isnan(grid[i, j]):
            value = round(float(grid[i, j]), 2) + 0.0  # no "-0.00"
            ax.text(j, i, f"{value:+.2f}{'*' if (i, j) in sure else ''}", ha="center", va="center", fontsize=7)
    ax.set_yticks(range(len(first.levels)), [plot_text(level) for level in first.levels], fontsize=8)
    ax.set_ylabel(plot_text(first.name))
    if len(space.factors) > 1:
        ax.set_xticks(range(len(combos)), [plot_text(label) for label in labels], fontsize=7,
                      rotation=90 if len(combos) > 8 else 0)
        ax.set_xlabel(plot_text(" / ".join(factor.name for factor in space.factors[1:])))
    else:
        ax.set_xticks([])
    ax.set_title("Failure rate per cell, before - after (green: fewer failures; * : the 95% interval excludes 0)\n"
                 "framed: targeted cells; dashed: collateral cells, never trained on; grey: not evaluated", fontsize=9)
    fig.colorbar(image, ax=ax, label="failure rate before - after")
    return save_figure(fig, folder / CHANGE_PLOT)


def _frame(i: int, j: int, color: str, style: str) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=color, linestyle=style, linewidth=1.6)


def modes_plot(folder: Path, figures: dict[str, Any]) -> Path:
    """Bars of each targeted region's (and cell's) failure rate before and after, then all targeted, the clean
    inputs, the collateral cells and the untargeted ones, with their 95 % bootstrap intervals."""
    groups = [(label, part["before"], part["after"]) for label, part in group_rows(figures)]
    fig, ax = new_figure(width=max(6.0, 1.3 * len(groups) + 2), height=4.4)
    x = np.arange(len(groups))
    for offset, key, color, name in ((-0.2, 1, "#c0392b", "base model"), (0.2, 2, "#27ae60", "mitigated")):
        rates = np.array([group[key]["rate"] or 0.0 for group in groups])
        low = rates - np.array([group[key]["ci_low"] if group[key]["ci_low"] is not None else rate
                                for group, rate in zip(groups, rates)])
        high = np.array([group[key]["ci_high"] if group[key]["ci_high"] is not None else rate
                         for group, rate in zip(groups, rates)]) - rates
        ax.bar(x + offset, rates, width=0.4, color=color, label=name, yerr=[np.maximum(low, 0), np.maximum(high, 0)],
               capsize=3)
    ax.set_xticks(x, [plot_text(_wrap(group[0])) for group in groups], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("failure rate (95% CI, bootstrap over seeds)")
    ax.set_title("Failure rate on held-out seeds, before and after the adapter")
    ax.legend(frameon=False)
    return save_figure(fig, folder / MODES_PLOT)


def landscape_plot(folder: Path, env: FailureEnv, before: Measurement, after: Measurement) -> Path:
    """Heatmaps of the first two factors' failure rates (pooled over the others), before and after."""
    space = env.space
    rows, cols = (space.shape + (1,))[:2]
    fig, axes = new_figure(width=10.0, height=4.2, ncols=2)
    for ax, measurement, title in ((axes[0], before, "base model"), (axes[1], after, "mitigated")):
        k, n = np.zeros((rows, cols)), np.zeros((rows, cols))
        for index, cell in enumerate(measurement.cells):
            action = space.action_from_id(cell)
            i, j = action[0], action[1] if len(action) > 1 else 0
            k[i, j] += measurement.failed[index].sum()
            n[i, j] += measurement.failed.shape[1]
        with np.errstate(invalid="ignore", divide="ignore"):
            grid = np.where(n > 0, k / np.where(n > 0, n, 1), np.nan)
        image = ax.imshow(grid, vmin=0, vmax=1, cmap="Reds")
        factor = space.factors
        ax.set_yticks(range(rows), [plot_text(v) for v in factor[0].levels], fontsize=8)
        ax.set_ylabel(plot_text(factor[0].name))
        if len(factor) > 1:
            ax.set_xticks(range(cols), [plot_text(v) for v in factor[1].levels], fontsize=8)
            ax.set_xlabel(plot_text(factor[1].name))
        ax.set_title(title)
    fig.colorbar(image, ax=list(axes), label="failure rate")
    return save_figure(fig, folder / LANDSCAPE_PLOT)


def _wrap(text: str, width: int = 18) -> str:
    words, lines, line = text.split(" "), [], ""
    for word in words:
        if line and len(line) + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join([*lines, line])
