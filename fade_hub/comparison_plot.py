"""The picture of a comparison: A's and B's failure rates per cell and B's change, on the two factors the failure
regions constrain (the others pooled), A's regions outlined solid and B's dashed."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from .landscape import factor_levels
from .plots import CMAP, UNVISITED, WIDTH_IN, Figure, colormaps, plot_text, save_figure, wrap_text
from .region_changes import Comparison
from .region_plots import SUPTITLE_CHARS, outline_cells, pooled_counts
from .run import Run

A_COLOUR, B_COLOUR = "#1f4e9c", "#e76f51"


def _admitted(run: Run, region_id: str, names: list[str], levels: dict[str, list[str]]) -> dict[str, set[int]]:
    """Per factor, the level indices a failure region of ``run`` admits (every level when it does not constrain it)."""
    row = run.region(region_id)
    factors = json.loads(row["factors"]) if row is not None else {}
    return {name: {levels[name].index(text) for text in factors[name]} if name in factors
            else set(range(len(levels[name]))) for name in names}


def change_png(comparison: Comparison, path: Path) -> Path:
    """Draw the three heatmaps of ``comparison`` to ``path`` (PNG)."""
    space = comparison.a.space
    levels = factor_levels(space)
    names = list(levels)
    first = comparison.regions[0] if comparison.regions else None
    if first is not None:
        run = comparison.a if first.side == "a" else comparison.b
        region = run.region(first.region_id)
        constrained = list(json.loads(region["factors"])) if region is not None else []
        factors = (constrained + [name for name in names if name not in constrained])[:2]
    else:
        factors = names[:2]
    rows, cols = factors[0], factors[1] if len(factors) > 1 else None
    cells = comparison.cells
    panels = []
    for prefix in ("a", "b"):
        frame = cells.rename(columns={f"{prefix}_failures": "failures", f"{prefix}_seeds": "seeds"})
        k, n = pooled_counts(frame, rows, cols, levels)
        panels.append((k, n, np.where(n > 0, k / np.where(n > 0, n, 1), np.nan)))
    fig = Figure(figsize=(WIDTH_IN * 1.5, 3.8))
    axes = fig.subplots(1, 3)
    change = panels[1][2] - panels[0][2]
    titles = ("A: failure rate of seeds", "B: failure rate of seeds", "change, B - A")
    for ax, values, title, cmap, low in zip(axes, (panels[0][2], panels[1][2], change), titles,
                                            (CMAP, CMAP, "RdBu_r"), (0.0, 0.0, -1.0)):
        shown = np.ma.masked_invalid(values)
        image = ax.imshow(shown, cmap=colormaps[cmap].with_extremes(bad=UNVISITED), vmin=low, vmax=1.0, aspect="auto")
        for i, j in itertools.product(range(values.shape[0]), range(values.shape[1])):
            if np.isfinite(values[i, j]):
                ax.text(j, i, f"{values[i, j]:+.2f}" if low < 0 else f"{values[i, j]:.2f}", ha="center", va="center",
                        fontsize=8, color="white" if abs(values[i, j]) > 0.6 else "black", in_layout=False)
        for region in comparison.regions:
            run = comparison.a if region.side == "a" else comparison.b
            admitted = _admitted(run, region.region_id, names, levels)
            outline_cells(ax, admitted[rows], admitted[cols] if cols else {0}, values.shape,
                    colour=A_COLOUR if region.side == "a" else B_COLOUR, style="-" if region.side == "a" else "--")
        ax.set_yticks(range(len(levels[rows])), [plot_text(v) for v in levels[rows]], parse_math=False)
        ax.set_ylabel(plot_text(rows), parse_math=False)
        if cols:
            ax.set_xticks(range(len(levels[cols])), [plot_text(v) for v in levels[cols]], parse_math=False)
            ax.set_xlabel(plot_text(cols), parse_math=False)
        else:
            ax.set_xticks([])
        ax.set_title(title, fontsize=10)
        fig.colorbar(image, ax=ax, shrink=0.8)
    pooled = [name for name in names if name not in factors]
    fig.suptitle(wrap_text(plot_text(f"A = run {comparison.a.run_id} (regions solid), B = run {comparison.b.run_id} "
                                     f"(regions dashed)" + (f"; {', '.join(pooled)} pooled" if pooled else "")),
                           int(1.5 * SUPTITLE_CHARS), 3), parse_math=False, fontsize=11)
    return save_figure(fig, path, fit=True)
