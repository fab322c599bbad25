"""Pictures of a failure landscape: PNG heatmaps and bar charts for cards, a plotly figure for the Space.

Matplotlib is used through ``matplotlib.figure.Figure`` (Agg canvas, no pyplot state), so these
functions are safe to call from threads (e.g. a gradio app). All text that comes from data (level
values, captions, model outputs) is drawn with ``parse_math=False`` so a ``$`` never turns into math, and
through ``plot_text``, so that a control character or a glyph the font lacks shows as an escape.
"""

from __future__ import annotations

import functools
import html
import itertools
import math
import re
import textwrap
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .cache import keep_library_caches_in_root

keep_library_caches_in_root()  # before matplotlib reads its config folder: no writes under HOME when isolated

from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.layout_engine import TightLayoutEngine
from matplotlib.patches import Rectangle

from .landscape import factor_levels, marginal_effects, pair_table, seed_counts, wilson_intervals

if TYPE_CHECKING:
    import plotly.graph_objects as go

CMAP = "YlOrRd"
UNVISITED = "#d9d9d9"
DPI = 100
WIDTH_IN = 8.0  # 800 px at DPI
REGION_COLOURS = ("#1f4e9c", "#2a9d8f", "#8e44ad", "#e76f51", "#264653")


@functools.lru_cache(maxsize=None)
def _drawable(family: str) -> frozenset[int]:
    """The code points the font matplotlib picks for ``family`` has glyphs for."""
    from matplotlib import font_manager, ft2font

    path = font_manager.findfont(font_manager.FontProperties(family=[family]))
    return frozenset(ft2font.FT2Font(path).get_charmap())


def plot_text(text: Any, family: str = "sans-serif") -> str:
    """``text`` as a label can show it: control and format characters, and characters the font has no glyph
    for, written as escapes (``\\x1b``, ``\\u6771``) rather than drawn as boxes with a "Glyph missing" warning."""
    drawable = _drawable(family)
    return "".join(
        char if char == "\n" or (ord(char) in drawable and unicodedata.category(char)[0] != "C")
        else char.encode("unicode_escape").decode("ascii")
        for char in str(text)
    )


def new_figure(width: float, height: float, ncols: int = 1) -> tuple[Figure, Any]:
    """A figure (no pyplot state) of ``width`` x ``height`` inches with ``ncols`` axes side by side."""
    fig = Figure(figsize=(width, height), dpi=DPI)
    return fig, fig.subplots(1, ncols)


def save_figure(fig: Figure, path: Path, *, fit: bool = False) -> Path:
    """Save a figure as PNG (white background), creating its folder. ``fit``: its margins are fitted to its labels
    once and it is drawn once, at its own size; else it is cropped to what it draws (which draws it twice)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not fit:
        fig.savefig(path, dpi=DPI, bbox_inches="tight", facecolor="white")
        return path
    FigureCanvasAgg(fig)  # measured with the renderer that draws it
    TightLayoutEngine(pad=0.8, w_pad=0.4).execute(fig)
    fig.savefig(path, dpi=DPI, facecolor="white")
    return path


MAX_ANNOTATED_CELLS = 150
TITLE_CHARS = 95  # characters of a 12 pt title line that fit across a heatmap's axes


def heatmap_png(queries: pd.DataFrame | list[dict], space: Any, factors: tuple[str, str], path: Path) -> Path:
    """Failure-rate heatmap of a factor pair, pooled over the other factors; unvisited cells hatched grey."""
    rates, counts = pair_table(queries, space, factors)
    rows, cols = list(rates.index), list(rates.columns)
    values = np.ma.masked_invalid(rates.to_numpy(dtype=float))
    cmap = colormaps[CMAP].with_extremes(bad=UNVISITED)

    height = max(4.0, min(9.0, 1.8 + 0.6 * len(rows)))
    fig = Figure(figsize=(WIDTH_IN, height))
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    fontsize = 10 if len(cols) <= 6 else 8
    # past about 12 x 12 cells, per-cell labels and hatches are unreadable and slow to draw: colour only
    annotate = len(rows) * len(cols) <= MAX_ANNOTATED_CELLS
    visited = counts.to_numpy()[counts.to_numpy() > 0]
    same_n = len(visited) > 0 and bool((visited == visited[0]).all())  # then n is said once, in the title
    for i, j in itertools.product(range(len(rows)), range(len(cols))):
        if not annotate:
            break
        n = int(counts.iat[i, j])
        if n == 0:
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor="#9e9e9e", linewidth=0))
            ax.text(j, i, "not\nvisited", ha="center", va="center", fontsize=fontsize - 2, color="#555555",
                    in_layout=False)
            continue
        rate = float(rates.iat[i, j])
        ax.text(j, i, f"{rate:.2f}" if same_n else f"{rate:.2f}\nn={n}", ha="center", va="center",
                fontsize=fontsize, color="white" if rate > 0.6 else "black", in_layout=False)
    cols, rows = [plot_text(col) for col in cols], [plot_text(row) for row in rows]
    ax.set_xticks(range(len(cols)), cols, parse_math=False)
    if _too_long(cols, room=90):
        _tilt_x_labels(ax)
    ax.set_yticks(range(len(rows)), rows, parse_math=False)
    x_name, y_name = plot_text(factors[1]), plot_text(factors[0])
    ax.set_xlabel(x_name, parse_math=False)
    ax.set_ylabel(y_name, parse_math=False)
    total = int(counts.to_numpy().sum())
    per_cell = f", n={int(visited[0])} per cell" if same_n and annotate else ""
    title = f"Failure rate by {y_name} × {x_name}\n({total} (cell, seed) pairs{per_cell}, other factors pooled)"
    ax.set_title(wrap_text(title, TITLE_CHARS, 4), parse_math=False)  # wrapped: the figure keeps its width
    fig.colorbar(image, ax=ax, label="failure rate")
    return save_figure(fig, path, fit=True)


def _too_long(labels: list[str], room: int) -> bool:
    """Whether tick labels would not fit side by side in ``room`` characters."""
    return sum(len(label) + 2 for label in labels) > room


def _tilt_x_labels(ax: Any) -> None:
    ax.tick_params(axis="x", labelrotation=30)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "factor"


def heatmaps_png(queries: pd.DataFrame | list[dict], space: Any, folder: Path, max_pairs: int = 6) -> list[Path]:
    """One heatmap per factor pair (the first ``max_pairs`` pairs in factor order) under ``folder``."""
    names = [factor.name for factor in space.factors]
    pairs = list(itertools.combinations(names, 2))[:max_pairs]
    return [heatmap_png(queries, space, pair, Path(folder) / f"heatmap_{_slug(pair[0])}_{_slug(pair[1])}.png") for pair in pairs]


def marginals_png(queries: pd.DataFrame | list[dict], space: Any, path: Path) -> Path:
    """Per-factor bar charts of failure rate by level with Wilson 95 % error bars."""
    effects = marginal_effects(queries, space)
    most_levels = max(len(table) for table in effects.values())
    ncols = min(len(effects), 3 if most_levels <= 4 else 2 if most_levels <= 8 else 1)
    nrows = math.ceil(len(effects) / ncols)
    fig = Figure(figsize=(WIDTH_IN, 3.0 * nrows + 0.4))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    cmap = colormaps[CMAP]
    for ax, (name, table) in zip(axes.flat, effects.items()):
        rate = table["failure_rate"].fillna(0.0).to_numpy()
        visited = table["seeds"].to_numpy() > 0
        err = np.vstack([rate - table["ci_low"], table["ci_high"] - rate])
        err[:, ~visited] = 0.0
        x = np.arange(len(table))
        ax.bar(x, rate, color=[cmap(0.25 + 0.75 * r) if v else UNVISITED for r, v in zip(rate, visited)],
               edgecolor="#444444", linewidth=0.5)
        ax.errorbar(x[visited], rate[visited], yerr=err[:, visited], fmt="none", ecolor="black", capsize=3, linewidth=1)
        for i in x[~visited]:
            ax.text(i, 0.03, "not visited", rotation=90, ha="center", va="bottom", fontsize=8, color="#555555",
                    in_layout=False)
        levels = [plot_text(level) for level in table["level"]]
        tilt = _too_long(levels, room=int(110 / ncols))
        labels = [f"{level} (n={n})" if tilt else f"{level}\nn={n}" for level, n in zip(levels, table["seeds"])]
        ax.set_xticks(x, labels, parse_math=False, fontsize=8)
        if tilt:
            _tilt_x_labels(ax)
        ax.set_ylim(0, 1.05)
        ax.set_title(plot_text(name), parse_math=False)
        ax.set_xlabel(plot_text(name), parse_math=False)
        ax.set_ylabel("failure rate")
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(effects):]:
        ax.set_visible(False)
    fig.suptitle("Failure rate of seeds by factor level (95% Wilson intervals, other factors pooled)")
    return save_figure(fig, path, fit=True)


def _pool_to(landscape: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Sum explore seed counts over the factors not in ``names`` and recompute rates and intervals."""
    frame = landscape.assign(n=seed_counts(landscape))
    pooled = frame.groupby(names, sort=False, as_index=False)[["n", "failures"]].sum()
    low, high = wilson_intervals(np.rint(pooled["failures"].to_numpy()), pooled["n"].to_numpy())
    n = pooled["n"].to_numpy()
    pooled["failure_rate"] = np.where(n > 0, pooled["failures"] / np.where(n > 0, n, 1), np.nan)
    pooled["ci_low"], pooled["ci_high"] = low, high
    return pooled


def _hover(frame: pd.DataFrame, names: list[str]) -> list[str]:
    texts = []
    for _, row in frame.iterrows():
        cell = "<br>".join(f"{html.escape(name)} = {html.escape(str(row[name]))}" for name in names)
        stats = ("not visited" if row["n"] == 0 else f"failure rate {row['failure_rate']:.2f} [{row['ci_low']:.2f}, "
                 f"{row['ci_high']:.2f}]<br>{int(row['n'])} seeds")
        if row.get("region_rank", -1) and int(row.get("region_rank", -1)) > 0:
            stats += f"<br>in region {int(row['region_rank'])}"
        texts.append(f"{cell}<br>{stats}")
    return texts


def landscape_figure(landscape: pd.DataFrame, space: Any) -> "go.Figure":
    """Interactive plotly view: 3-D scatter of cells (first three factors), heatmap for two, bars for one."""
    import plotly.graph_objects as go

    levels = factor_levels(space)
    names = list(levels)
    shown = names[:3]
    frame = landscape.assign(n=seed_counts(landscape)) if len(names) <= 3 else _pool_to(landscape, shown)
    colorbar = {"title": {"text": "failure rate"}}
    hover = _hover(frame, shown)
    title = f"Failure landscape ({int(frame['n'].sum())} explored (cell, seed) pairs)"
    if len(names) > 3:
        title += f"; pooled over {', '.join(names[3:])}"

    if len(shown) == 1:
        rate = frame["failure_rate"].fillna(0.0)
        fig = go.Figure(go.Bar(
            x=frame[shown[0]], y=rate, hovertext=hover, hoverinfo="text",
            error_y={"type": "data", "symmetric": False, "array": frame["ci_high"] - rate, "arrayminus": rate - frame["ci_low"]},
            marker={"color": rate, "colorscale": CMAP, "cmin": 0, "cmax": 1, "colorbar": colorbar},
        ))
        fig.update_layout(xaxis={"title": {"text": shown[0]}, "type": "category"}, yaxis={"title": {"text": "failure rate"}, "range": [0, 1.05]})
    elif len(shown) == 2:
        a, b = shown
        index = {name: {level: i for i, level in enumerate(levels[name])} for name in shown}
        z = np.full((len(levels[a]), len(levels[b])), np.nan)
        text = np.full(z.shape, "", dtype=object)
        for (_, row), tip in zip(frame.iterrows(), hover):
            i, j = index[a][row[a]], index[b][row[b]]
            z[i, j] = row["failure_rate"]
            text[i, j] = tip
        fig = go.Figure(go.Heatmap(z=z, x=levels[b], y=levels[a], text=text, hoverinfo="text",
                                   colorscale=CMAP, zmin=0, zmax=1, colorbar=colorbar, hoverongaps=True))
        fig.update_layout(xaxis={"title": {"text": b}, "type": "category"}, yaxis={"title": {"text": a}, "type": "category"},
                          plot_bgcolor=UNVISITED)
    else:
        coords = {name: frame[name].map({level: i for i, level in enumerate(levels[name])}).to_numpy() for name in shown}
        visited = frame["n"].to_numpy() > 0
        n = frame["n"].to_numpy()
        size = 6 + 24 * np.sqrt(n / max(1, n.max()))
        hover = np.asarray(hover, dtype=object)
        fig = go.Figure([
            go.Scatter3d(
                x=coords[shown[0]][visited], y=coords[shown[1]][visited], z=coords[shown[2]][visited],
                mode="markers", name="visited", hovertext=hover[visited], hoverinfo="text",
                marker={"size": size[visited], "color": frame["failure_rate"].to_numpy()[visited], "colorscale": CMAP,
                        "cmin": 0, "cmax": 1, "colorbar": colorbar, "opacity": 0.9, "line": {"width": 0.5, "color": "#444"}},
            ),
            go.Scatter3d(
                x=coords[shown[0]][~visited], y=coords[shown[1]][~visited], z=coords[shown[2]][~visited],
                mode="markers", name="not visited", hovertext=hover[~visited], hoverinfo="text",
                marker={"size": 3, "color": UNVISITED, "opacity": 0.5, "symbol": "x"},
            ),
        ])
        if "region_rank" in frame.columns:  # each region's cells ringed, one legend entry per region
            for rank in sorted(r for r in frame["region_rank"].unique() if r > 0):
                inside = frame["region_rank"].to_numpy() == rank
                fig.add_trace(go.Scatter3d(
                    x=coords[shown[0]][inside], y=coords[shown[1]][inside], z=coords[shown[2]][inside],
                    mode="markers", name=f"region {int(rank)}", hoverinfo="skip",
                    marker={"size": size[inside] + 6, "color": "rgba(0,0,0,0)", "symbol": "circle-open",
                            "line": {"width": 3, "color": REGION_COLOURS[(int(rank) - 1) % len(REGION_COLOURS)]}},
                ))
        axis = {name: {"title": {"text": name}, "tickvals": list(range(len(levels[name]))), "ticktext": levels[name]} for name in shown}
        fig.update_layout(scene={"xaxis": axis[shown[0]], "yaxis": axis[shown[1]], "zaxis": axis[shown[2]]},
                          legend={"x": 0, "y": 1})
    fig.update_layout(title={"text": html.escape(title)}, margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return fig


def wrap_text(text: str, width: int, max_lines: int) -> str:
    """Wrap each line of ``text`` to ``width`` characters, keeping at most ``max_lines`` lines."""
    lines = [wrapped for line in str(text).splitlines() for wrapped in textwrap.wrap(" ".join(line.split()), width=width)]
    lines = lines or [""]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(0, width - 1)] + "…"
    return "\n".join(lines)


def examples_grid_png(examples: list[dict], path: Path, title: str | None = None) -> Path:
    """A grid of example failures: each dict has ``image`` (PIL) or ``text``, and a ``caption``."""
    if not examples:
        fig = Figure(figsize=(WIDTH_IN, 1.5))
        fig.text(0.5, 0.5, "no examples", ha="center", va="center", fontsize=14, color="#555555")
        if title:
            fig.suptitle(plot_text(title), parse_math=False)
        return save_figure(fig, path)
    ncols = min(4, len(examples))
    nrows = math.ceil(len(examples) / ncols)
    cell_w = WIDTH_IN / ncols
    has_text = any("image" not in example for example in examples)
    cell_h = (max(cell_w, 2.6) if has_text else cell_w) + 0.5
    fig = Figure(figsize=(WIDTH_IN, cell_h * nrows + (0.4 if title else 0.0)))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    caption_chars = max(10, int(0.9 * cell_w * 72 / (9 * 0.52)))
    text_chars = max(10, int(0.85 * cell_w * 72 / (8 * 0.6)))
    for ax, example in zip(axes.flat, examples):
        ax.set_xticks([])
        ax.set_yticks([])
        if "image" in example:
            ax.imshow(np.asarray(example["image"].convert("RGB")))
        else:
            ax.set_facecolor("#f6f6f6")
            text = plot_text(example.get("text", ""), "monospace")
            ax.text(0.04, 0.96, wrap_text(text, text_chars, 14), ha="left", va="top", fontsize=8,
                    family="monospace", parse_math=False, transform=ax.transAxes, clip_on=True, in_layout=False)
        ax.set_title(wrap_text(plot_text(example.get("caption", "")), caption_chars, 3), fontsize=9, parse_math=False)
    for ax in list(axes.flat)[len(examples):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(plot_text(title), parse_math=False)
    return save_figure(fig, path, fit=True)
