"""What a mitigation leaves next to the adapter: ``fade_eval.json``, ``eval/examples.parquet`` and the plots."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..env import FailureEnv
from ..errors import RunNotFound
from ..jsonio import to_json
from ..plots import new_figure, save_figure
from .evaluate import EXAMPLES_PER_MODE, Measurement

EVAL_FILE = "fade_eval.json"
EXAMPLES_FILE = "eval/examples.parquet"
MODES_PLOT = "plots/modes_before_after.png"
LANDSCAPE_PLOT = "plots/landscape_before_after.png"


def read_figures(folder: str | Path) -> dict[str, Any]:
    """The ``fade_eval.json`` of an adapter folder; RunNotFound when it has none."""
    path = Path(folder) / EVAL_FILE
    if not path.is_file():
        raise RunNotFound(f"{folder} holds no {EVAL_FILE}; pass a folder written by fade-hub mitigate")
    return json.loads(path.read_text(encoding="utf-8"))


def write_eval(folder: Path, figures: dict[str, Any]) -> Path:
    """Write ``fade_eval.json`` as standard JSON (a missing figure, NaN, is written as null)."""
    path = folder / EVAL_FILE
    path.write_text(to_json(figures, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def _media(item: Any) -> dict[str, Any] | None:
    if not hasattr(item, "save"):
        return None
    buffer = io.BytesIO()
    item.save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def write_examples(folder: Path, env: FailureEnv, before: Measurement, after: Measurement) -> Path:
    """Each targeted mode's first evaluation examples with the base and the mitigated answers."""
    import datasets

    rows: dict[str, list] = {name: [] for name in (
        "action_id", "seed_id", "input", "expected", "base_output", "mitigated_output", "base_failure",
        "mitigated_failure")}
    images: dict[str, list] = {"image": [], "base_image": []}
    per_cell: dict[int, int] = {}
    for key, base in before.examples.items():
        cell, seed_id = key
        if per_cell.get(cell, 0) >= EXAMPLES_PER_MODE:
            continue
        per_cell[cell] = per_cell.get(cell, 0) + 1
        mitigated = after.examples[key]
        rows["action_id"].append(int(cell))
        rows["seed_id"].append(seed_id)
        rows["input"].append(base.input if isinstance(base.input, str) else "")
        rows["expected"].append(str(mitigated.verdict.expected))
        rows["base_output"].append(base.prediction.text)
        rows["mitigated_output"].append(mitigated.prediction.text)
        rows["base_failure"].append(bool(base.verdict.is_failure))
        rows["mitigated_failure"].append(bool(mitigated.verdict.is_failure))
        generated = mitigated.prediction.image is not None
        images["image"].append(_media(mitigated.prediction.image if generated else base.input))
        images["base_image"].append(_media(base.prediction.image) if generated else None)
    features = {name: datasets.Value("string") for name in ("seed_id", "input", "expected", "base_output",
                                                           "mitigated_output")}
    features.update(action_id=datasets.Value("int64"), base_failure=datasets.Value("bool"),
                    mitigated_failure=datasets.Value("bool"))
    if env.space.modality != "text":
        rows["image"], features["image"] = images["image"], datasets.Image()
        if any(images["base_image"]):
            rows["base_image"], features["base_image"] = images["base_image"], datasets.Image()
    path = folder / EXAMPLES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(rows, features=datasets.Features(features)).to_parquet(str(path))
    return path


def modes_plot(folder: Path, figures: dict[str, Any]) -> Path:
    """Bars of each targeted mode's failure rate before and after, with 95% Wilson intervals."""
    groups = [(mode["cell"], mode["before"], mode["after"]) for mode in figures["modes"]]
    groups += [("clean inputs", figures["clean"]["before"], figures["clean"]["after"]),
               ("untargeted cells", figures["untargeted"]["before"], figures["untargeted"]["after"])]
    fig, ax = new_figure(width=max(6.0, 1.2 * len(groups) + 2), height=4.2)
    x = np.arange(len(groups))
    for offset, key, color, name in ((-0.2, 1, "#c0392b", "base model"), (0.2, 2, "#27ae60", "mitigated")):
        rates = np.array([group[key]["rate"] or 0.0 for group in groups])
        low = rates - np.array([group[key]["ci_low"] for group in groups])
        high = np.array([group[key]["ci_high"] for group in groups]) - rates
        ax.bar(x + offset, rates, width=0.4, color=color, label=name, yerr=[low, high], capsize=3)
    ax.set_xticks(x, [_wrap(group[0]) for group in groups], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("failure rate (95% CI)")
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
        for cell, (failures, queries) in measurement.cells.items():
            action = space.action_from_id(cell)
            i, j = action[0], action[1] if len(action) > 1 else 0
            k[i, j] += failures
            n[i, j] += queries
        with np.errstate(invalid="ignore", divide="ignore"):
            grid = np.where(n > 0, k / np.where(n > 0, n, 1), np.nan)
        image = ax.imshow(grid, vmin=0, vmax=1, cmap="Reds")
        factor = space.factors
        ax.set_yticks(range(rows), [str(v) for v in factor[0].levels], fontsize=8)
        ax.set_ylabel(factor[0].name)
        if len(factor) > 1:
            ax.set_xticks(range(cols), [str(v) for v in factor[1].levels], fontsize=8)
            ax.set_xlabel(factor[1].name)
        ax.set_title(title)
    fig.colorbar(image, ax=list(axes), label="failure rate")
    return save_figure(fig, folder / LANDSCAPE_PLOT)


def _wrap(text: str, width: int = 18) -> str:
    words, lines, line = text.split(", "), [], ""
    for word in words:
        if line and len(line) + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line}, {word}" if line else word
    return "\n".join([*lines, line])


def format_shift(figures: dict[str, Any]) -> str:
    """Plain-text table of the failure rates before and after, per targeted mode and overall, for the terminal."""

    def rate(part: dict[str, Any]) -> str:
        if part["rate"] is None:
            return "n/a"
        return f"{part['rate']:.2f} [{part['ci_low']:.2f}, {part['ci_high']:.2f}] n={part['queries']}"

    rows = [(mode["cell"], rate(mode["before"]), rate(mode["after"])) for mode in figures["modes"]]
    rows += [("all targeted modes", rate(figures["targeted"]["before"]), rate(figures["targeted"]["after"])),
             ("clean inputs", rate(figures["clean"]["before"]), rate(figures["clean"]["after"])),
             ("untargeted cells", rate(figures["untargeted"]["before"]), rate(figures["untargeted"]["after"]))]
    header = ("failure rate on held-out seeds", "base model [95% CI]", "mitigated [95% CI]")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(3)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    quality = figures["clean"].get("quality")
    if quality:
        lines.append(f"{quality['metric']} on clean inputs: {quality['before']:.3f} -> {quality['after']:.3f} "
                     f"({quality['change'] * 100:+.1f} points)")
    drop = figures["targeted"]["drop"]
    if drop is not None:
        lines.append(f"targeted drop {drop:.0%}; Wasserstein shift {figures['wasserstein']:.3f}")
    return "\n".join(lines)
