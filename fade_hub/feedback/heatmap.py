"""The 2D failure-rate heatmap of the app: one factor pair, the other factors pooled, the selected mode outlined.

Drawn with matplotlib's object API (thread-safe, no WebGL in the browser) and returned as a PIL image; level
values are drawn with ``parse_math=False`` so that run text never turns into math.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd

from ..cache import keep_library_caches_in_root

keep_library_caches_in_root()  # before matplotlib reads its config folder

from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..landscape import factor_levels

CMAP = "YlOrRd"
UNVISITED = "#d9d9d9"
HIGHLIGHT = "#1f4fd1"
MAX_LABELLED = 150  # cells; past this only colours are drawn


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


def heatmap_image(landscape: pd.DataFrame, space: Any, pair: tuple[str, str], selected: dict[str, str] | None = None):
    """A PIL image of the pair's failure rates; the cell holding ``selected`` (factor -> level) outlined in blue."""
    from PIL import Image

    rows, cols = _axes(space, pair)
    failures, queries = pooled_pair(landscape, space, pair)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(queries > 0, failures / np.where(queries > 0, queries, 1), np.nan)
    width = min(7.5, 2.2 + 0.9 * len(cols))
    height = min(6.5, 1.6 + 0.6 * len(rows))
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    cmap = colormaps[CMAP].with_extremes(bad=UNVISITED)
    image = ax.imshow(np.ma.masked_invalid(rates), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    if len(rows) * len(cols) <= MAX_LABELLED:
        for i in range(len(rows)):
            for j in range(len(cols)):
                text = "not\nvisited" if not queries[i, j] else f"{rates[i, j]:.2f}\n{failures[i, j]}/{queries[i, j]}"
                dark = queries[i, j] and rates[i, j] > 0.6
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black",
                        parse_math=False)
    if selected and str(selected.get(pair[1])) in cols and (rows == ["all"] or str(selected.get(pair[0])) in rows):
        i = 0 if rows == ["all"] else rows.index(str(selected[pair[0]]))
        j = cols.index(str(selected[pair[1]]))
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=HIGHLIGHT, linewidth=3.5))
    ax.set_xticks(range(len(cols)), cols, parse_math=False)
    ax.set_yticks(range(len(rows)), rows, parse_math=False)
    ax.set_xlabel(pair[1], parse_math=False)
    ax.set_ylabel("" if rows == ["all"] else pair[0], parse_math=False)
    others = [factor.name for factor in space.factors if factor.name not in pair]
    title = "failure rate (failing seeds/seeds)" + (f", pooled over {', '.join(others)}" if others else "")
    ax.set_title(title, fontsize=9, parse_math=False)
    fig.colorbar(image, ax=ax, shrink=0.85)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", facecolor="white")
    buffer.seek(0)
    with Image.open(buffer) as picture:
        return picture.convert("RGB")
