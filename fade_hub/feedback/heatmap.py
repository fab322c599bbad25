"""The 2D failure-rate heatmap of the app: one factor pair, the other factors pooled, the selected region outlined.

Drawn with matplotlib's object API (thread-safe, no WebGL in the browser) and returned as a PIL image, at a size
that is shown about 1:1 in the page so that its labels stay readable; level values are drawn with
``parse_math=False`` so that run text never turns into math.
"""

from __future__ import annotations

import io
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..cache import keep_library_caches_in_root

keep_library_caches_in_root()  # before matplotlib reads its config folder

from matplotlib import colormaps
from matplotlib.figure import Figure

from ..landscape import factor_levels
from ..region_plots import outline_cells

CMAP = "YlOrRd"
UNVISITED = "#d9d9d9"
HIGHLIGHT = "#1f4e9c"  # the outline drawn by ``region_plots.outline_cells``
MAX_LABELLED = 150  # cells; past this only colours are drawn
FONT = 11  # points at 100 dpi: about 15 px when shown 1:1


def _axes(space: Any, pair: tuple[str, str]) -> tuple[list[str], list[str]]:
    """Row and column labels; a one-factor space (``pair`` = the factor twice) has one row."""
    levels = factor_levels(space)
    return (["all"] if pair[0] == pair[1] else levels[pair[0]]), levels[pair[1]]


def pooled_pair(landscape: pd.DataFrame, space: Any, pair: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """(failures, seeds) of a factor pair, summed over the other factors; rows are the first factor's levels."""
    rows, cols = _axes(space, pair)
    keys = list(dict.fromkeys(pair))
    pooled = landscape.groupby(keys, sort=False)[["failures", "seeds"]].sum()
    failures, queries = np.zeros((len(rows), len(cols)), int), np.zeros((len(rows), len(cols)), int)
    for key, counts in pooled.iterrows():
        row, col = key if len(keys) == 2 else ("all", key)
        i, j = rows.index(str(row)), cols.index(str(col))
        failures[i, j], queries[i, j] = round(counts["failures"]), int(counts["seeds"])
    return failures, queries


def heatmap_image(landscape: pd.DataFrame, space: Any, pair: tuple[str, str],
                  selected: Mapping[str, Collection[str]] | None = None):
    """A PIL image of the pair's failure rates; the levels ``selected`` admits (factor -> level strings; a factor
    absent is free) outlined in blue. Without ``selected`` nothing is outlined."""
    from PIL import Image

    rows, cols = _axes(space, pair)
    failures, queries = pooled_pair(landscape, space, pair)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(queries > 0, failures / np.where(queries > 0, queries, 1), np.nan)
    width = min(7.0, 2.6 + 0.95 * len(cols))
    height = min(6.5, 1.9 + 0.62 * len(rows))
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    cmap = colormaps[CMAP].with_extremes(bad=UNVISITED)
    image = ax.imshow(np.ma.masked_invalid(rates), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    if len(rows) * len(cols) <= MAX_LABELLED:
        for i in range(len(rows)):
            for j in range(len(cols)):
                text = "–" if not queries[i, j] else f"{100 * rates[i, j]:.0f}%\n{failures[i, j]}/{queries[i, j]}"
                dark = queries[i, j] and rates[i, j] > 0.6
                ax.text(j, i, text, ha="center", va="center", fontsize=FONT - 1, color="white" if dark else "black",
                        parse_math=False)
    if selected is not None:
        def admitted(name: str, labels: list[str]) -> set[int]:
            chosen = selected.get(name)
            return set(range(len(labels))) if chosen is None else {labels.index(str(v)) for v in chosen
                                                                     if str(v) in labels}

        row_set = {0} if rows == ["all"] else admitted(pair[0], rows)
        outline_cells(ax, row_set, admitted(pair[1], cols), (len(rows), len(cols)))
    ax.set_xticks(range(len(cols)), cols, parse_math=False, fontsize=FONT)
    ax.set_yticks(range(len(rows)), rows, parse_math=False, fontsize=FONT)
    ax.set_xlabel(pair[1], parse_math=False, fontsize=FONT)
    ax.set_ylabel("" if rows == ["all"] else pair[0], parse_math=False, fontsize=FONT)
    others = [factor.name for factor in space.factors if factor.name not in pair]
    title = "failing seeds" + (f", {', '.join(others)} pooled" if others else "")
    ax.set_title(title, fontsize=FONT, parse_math=False)
    bar = fig.colorbar(image, ax=ax, shrink=0.85)
    bar.ax.tick_params(labelsize=FONT - 1)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", facecolor="white")
    buffer.seek(0)
    with Image.open(buffer) as picture:
        return picture.convert("RGB")
