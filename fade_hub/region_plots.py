"""One picture per failure region for the card: its factor-pair heatmap with the region outlined, and per-class rates.

The heatmap shows the two factors the region constrains (the first two in space order; with one, that factor
and the next one; with none, the first two), the other factors pooled, from the exploration's seed counts. The
region's levels on those two factors are outlined. The bars beside it give the failure rate inside the region
per seed class (or for all seeds) with 95 % Wilson intervals, against the clean rate the region must beat.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .characterize import Characterization
from .landscape import factor_levels
from .plots import CMAP, UNVISITED, WIDTH_IN, Figure, colormaps, plot_text, save_figure, wrap_text
from .regions import Region
from .stats import wilson_intervals

SUPTITLE_CHARS = 110  # characters of an 11 pt line across the figure


def shown_factors(region: Region, names: list[str]) -> list[str]:
    """The (at most two) factors a region's picture shows: those it constrains first, then the next ones."""
    constrained = [name for name, admitted in zip(names, region.levels) if admitted is not None]
    rest = [name for name in names if name not in constrained]
    return (constrained + rest)[:2]


def pooled_counts(landscape: pd.DataFrame, rows: str, cols: str | None, levels: dict[str, list[str]]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(failures, seeds) of the exploration pooled onto one or two factors, in level order."""
    keys = [rows] + ([cols] if cols else [])
    pooled = landscape.groupby(keys, sort=False)[["failures", "seeds"]].sum()
    shape = (len(levels[rows]), len(levels[cols]) if cols else 1)
    k, n = np.zeros(shape), np.zeros(shape)
    for i, j in itertools.product(range(shape[0]), range(shape[1])):
        key = (levels[rows][i], levels[cols][j]) if cols else levels[rows][i]
        if key in pooled.index:
            k[i, j], n[i, j] = pooled.loc[key, "failures"], pooled.loc[key, "seeds"]
    return k, n


def outline_cells(ax: Any, admitted_rows: set[int], admitted_cols: set[int], shape: tuple[int, int], *,
                  colour: str = "#1f4e9c", style: str = "-") -> None:
    """Draw the border of the admitted block(s) of a heatmap: every edge between an admitted and another cell."""
    inside = np.zeros(shape, dtype=bool)
    for i, j in itertools.product(range(shape[0]), range(shape[1])):
        inside[i, j] = i in admitted_rows and j in admitted_cols
    for i, j in zip(*np.nonzero(inside)):
        for di, dj, xs, ys in ((-1, 0, (j - 0.5, j + 0.5), (i - 0.5, i - 0.5)), (1, 0, (j - 0.5, j + 0.5), (i + 0.5, i + 0.5)),
                               (0, -1, (j - 0.5, j - 0.5), (i - 0.5, i + 0.5)), (0, 1, (j + 0.5, j + 0.5), (i - 0.5, i + 0.5))):
            a, b = i + di, j + dj
            if not (0 <= a < shape[0] and 0 <= b < shape[1]) or not inside[a, b]:
                ax.plot(xs, ys, color=colour, linestyle=style, linewidth=3.0, solid_capstyle="round")


def region_png(landscape: pd.DataFrame, row: Any, found: Characterization, path: Path) -> Path:
    """The picture of one region (a row of the ``regions`` table) for the card."""
    grid, space = found.grid, found.grid.space
    region = grid.parse(row.region_id)
    levels = factor_levels(space)
    names = list(levels)
    factors = shown_factors(region, names)
    fig = Figure(figsize=(WIDTH_IN, 3.6))
    heat_ax, bar_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})

    rows, cols = factors[0], factors[1] if len(factors) > 1 else None
    k, n = pooled_counts(landscape, rows, cols, levels)
    rates = np.ma.masked_invalid(np.where(n > 0, k / np.where(n > 0, n, 1), np.nan))
    heat_ax.imshow(rates, cmap=colormaps[CMAP].with_extremes(bad=UNVISITED), vmin=0.0, vmax=1.0, aspect="auto")
    for i, j in itertools.product(range(n.shape[0]), range(n.shape[1])):
        if n[i, j]:
            rate = float(rates[i, j])
            heat_ax.text(j, i, f"{rate:.2f}\nn={int(n[i, j])}", ha="center", va="center", fontsize=8,
                         color="white" if rate > 0.6 else "black", in_layout=False)
    admitted = {name: set(range(len(levels[name]))) if lv is None else set(lv) for name, lv in zip(names, region.levels)}
    outline_cells(heat_ax, admitted[rows], admitted[cols] if cols else {0}, n.shape)
    heat_ax.set_yticks(range(len(levels[rows])), [plot_text(v) for v in levels[rows]], parse_math=False)
    heat_ax.set_ylabel(plot_text(rows), parse_math=False)
    if cols:
        heat_ax.set_xticks(range(len(levels[cols])), [plot_text(v) for v in levels[cols]], parse_math=False)
        heat_ax.set_xlabel(plot_text(cols), parse_math=False)
    else:
        heat_ax.set_xticks([])
    pooled = [name for name in names if name not in factors]
    heat_ax.set_title("failure rate of seeds" + (f", {', '.join(pooled)} pooled" if pooled else ""), fontsize=10,
                      parse_math=False)

    per_class = json.loads(row.class_rates) if row.class_rates else {}
    labels = list(per_class) or ["all seeds"]
    counts = [per_class[c] for c in per_class] or [[row.failures, row.seeds]]
    k_bar, n_bar = np.array([c[0] for c in counts], dtype=float), np.array([c[1] for c in counts], dtype=float)
    rate = np.where(n_bar > 0, k_bar / np.where(n_bar > 0, n_bar, 1), 0.0)
    low, high = wilson_intervals(np.rint(k_bar), n_bar)
    x = np.arange(len(labels))
    bar_ax.bar(x, rate, color=[colormaps[CMAP](0.25 + 0.75 * r) for r in rate], edgecolor="#444444", linewidth=0.5)
    shown = n_bar > 0
    bar_ax.errorbar(x[shown], rate[shown], yerr=np.vstack([rate - low, high - rate])[:, shown], fmt="none",
                    ecolor="black", capsize=3, linewidth=1)
    if np.isfinite(row.clean_rate):
        bar_ax.axhline(row.clean_rate, color="#1f4e9c", linestyle="--", linewidth=1.2, label="clean rate")
        bar_ax.legend(loc="upper right", fontsize=8)
    bar_ax.set_xticks(x, [f"{plot_text(c)}\nn={int(m)}" for c, m in zip(labels, n_bar)], parse_math=False, fontsize=8)
    bar_ax.set_ylim(0, 1.05)
    bar_ax.set_ylabel("failure rate in the region")
    bar_ax.set_title("by seed class (exploration)", fontsize=10)
    fig.suptitle(wrap_text(plot_text(f"Region {int(row.rank)}: {row.description}"), SUPTITLE_CHARS, 3),
                 parse_math=False, fontsize=11)  # wrapped: the figure keeps its width
    return save_figure(fig, path, fit=True)
