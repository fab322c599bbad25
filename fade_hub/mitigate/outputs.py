"""What a mitigation leaves next to the adapter: ``fade_eval.json``, ``eval/examples.parquet`` (answers of the targeted
cells, base and mitigated) and ``eval/cell_changes.parquet`` (the per-cell change map); the plots are drawn by
``shift_plots``."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from ..env import FailureEnv
from ..errors import RunNotFound
from ..jsonio import to_json
from .evaluate import EXAMPLES_PER_MODE, Measurement

EVAL_FILE = "fade_eval.json"
EXAMPLES_FILE = "eval/examples.parquet"
CHANGES_FILE = "eval/cell_changes.parquet"


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
    if env.space.inputs.media:
        rows["image"], features["image"] = images["image"], datasets.Image()
        if any(images["base_image"]):
            rows["base_image"], features["base_image"] = images["base_image"], datasets.Image()
    path = folder / EXAMPLES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(rows, features=datasets.Features(features)).to_parquet(str(path))
    return path


def write_changes(folder: Path, changes: pd.DataFrame) -> Path:
    """The per-cell change map as parquet (``CHANGES_FILE``): one row per evaluated cell, its levels, role, failure
    rates before and after, and the change (before - after) with its 95 % interval."""
    path = folder / CHANGES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    changes.to_parquet(path, index=False)
    return path
