"""Mitigated-variant repos written by hand in the layout ``fade-hub mitigate`` produces (fade_eval.json,
eval/examples.parquet, plots/, a model card with ``fade_hub:`` metadata), for the Space tests; the Space needs no
weights."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
from space_runs import XSS

CARD = """---
base_model: {base}
library_name: peft
tags:
- fade-hub
- failure-mitigation
- lora
datasets:
- {failures}
fade_hub:
  run_id: {run_id}
  lineage_run_ids: {lineage}
  failures: {failures}
---
# {name}

A LoRA adapter that fades the failure modes reviewers marked as fix.
"""


def _counts(queries: int, failures: int) -> dict:
    from fade_hub.stats import wilson_interval

    low, high = wilson_interval(failures, queries)
    return {"queries": queries, "failures": failures, "rate": failures / queries if queries else None,
            "ci_low": low, "ci_high": high}


def _png(width: int = 640, height: int = 320) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width / 100, height / 100), dpi=100)
    ax = fig.add_subplot()
    ax.bar(["before", "after"], [0.8, 0.1], color=["#d62728", "#2ca02c"])
    ax.set_ylabel("failure rate of the targeted modes")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _estimate(value: float, low: float, high: float) -> dict:
    return {"value": value, "low": low, "high": high}


def write_variant(folder: Path, run_dir: Path, failures_repo: str, *, name: str = "tester/shapes-faded",
                  lineage: list[str] | None = None, hostile: bool = False, regions: bool = False) -> Path:
    """An adapter folder as ``fade-hub mitigate`` writes it (no weights): for the top two cells of ``run_dir`` in
    today's ``fade_eval.json``, or with ``regions`` for its top two regions in the region format (targets under
    ``regions``, collateral on unseen perturbations, changes with bootstrap intervals, examples that were fixed,
    regressed or unchanged)."""
    meta = json.loads((run_dir / "run.json").read_text())
    landscape = pd.read_parquet(run_dir / "data" / "landscape.parquet").sort_values("rank")
    failures = pd.read_parquet(run_dir / "data" / "failures.parquet")
    names = [factor["name"] for factor in meta["space"]["factors"]]
    targets, rows = [], []
    if regions:
        chosen = pd.read_parquet(run_dir / "data" / "regions.parquet").sort_values("rank").head(2)
        groups = [(str(r.region_id), [int(c) for c in r.cells], r) for r in chosen.itertuples()]
    else:
        groups = [(str(int(cell["action_id"])), [int(cell["action_id"])], cell) for _, cell in landscape.head(2).iterrows()]
    for key, cells, source in groups:
        examples = failures[failures["action_id"].isin(cells)].head(4)
        fixed = len(examples) - 1
        for i, (_, example) in enumerate(examples.iterrows()):
            row = {"action_id": int(example["action_id"]), "seed_id": str(example["seed_id"]),
                   "input": str(example["input"]), "expected": str(example["expected"]),
                   "base_output": str(example["output"]),
                   "mitigated_output": str(example["expected"]) if i < fixed else str(example["output"]),
                   "base_failure": True, "mitigated_failure": i >= fixed}
            if regions:
                row["region_id"] = key
            if hostile:
                row["base_output"] = XSS
            if "image" in failures.columns:
                row["image"] = {"bytes": example["image"]["bytes"], "path": None}
            rows.append(row)
        if regions:  # one that regressed and one unchanged, listed first: the tab orders them after the fixed ones
            for what, before, after in (("unchanged", False, False), ("regressed", False, True)):
                rows.insert(0, dict(rows[-1], seed_id=f"{what}-seed", base_failure=before, mitigated_failure=after,
                                    base_output=rows[-1]["expected"]))
            targets.append({"region_id": key, "description": source.description, "cells": cells,
                            "votes": {"fix": 2}, "before": _counts(40, 36), "after": _counts(40, 3),
                            "drop": _estimate(0.917, 0.81, 0.98)})
        else:
            targets.append({"action_id": cells[0], "cell": ", ".join(f"{n}={source[n]}" for n in names),
                            "levels": {n: str(source[n]) for n in names},
                            "votes": {"fix": 2, "acceptable": 0, "not_a_failure": 0},
                            "before": _counts(len(examples), len(examples)),
                            "after": _counts(len(examples), len(examples) - fixed)})
    evaluation = {
        "fade_hub_version": "0.1.0", "run_id": meta["run_id"], "task": meta["task"], "base_model": meta["model_id"],
        "base_commit": None, "space_fingerprint": meta.get("space_fingerprint", ""),
        "eval_seeds": {"source": "generated shapes (seed 7)", "count": 12},
        "feedback": {"records": 4, "reviewers": 2, "verdicts": {"fix": 4}, "judge_errors": [], "disagreements": [],
                     "corrections": 0},
        "training": {"steps": 10}, "wasserstein": 0.12,
    }
    if regions:
        evaluation.update({
            "regions": targets, "eval_seeds": {"source": "generated shapes (seed 7)", "count": 400},
            "targeted": {"before": _counts(80, 72), "after": _counts(80, 6), "drop": _estimate(0.917, 0.84, 0.97)},
            "clean": {"before": _counts(400, 4), "after": _counts(400, 5), "change": _estimate(0.0025, -0.005, 0.01)},
            "collateral": {"before": _counts(2400, 60), "after": _counts(2400, 66), "change": _estimate(0.0025, -0.004, 0.009)},
            "untargeted_trained": {"before": _counts(5600, 150), "after": _counts(5600, 120),
                                   "change": _estimate(-0.0054, -0.009, -0.002)},
            "plots": {"change_map": "plots/change_map.png", "regions": "plots/modes_before_after.png"},
        })
    else:
        evaluation.update({
            "modes": targets,
            "targeted": {"before": _counts(8, 8), "after": _counts(8, 2), "drop": 0.75},
            "clean": {"before": _counts(18, 0), "after": _counts(18, 1), "accuracy_change": -0.056},
            "untargeted": {"before": _counts(200, 30), "after": _counts(200, 28), "change": -0.01},
            "plots": {"modes": "plots/modes_before_after.png", "landscape": "plots/landscape_before_after.png"},
        })
    (folder / "eval").mkdir(parents=True, exist_ok=True)
    (folder / "plots").mkdir(exist_ok=True)
    (folder / "fade_eval.json").write_text(json.dumps(evaluation, indent=2))
    pd.DataFrame(rows).astype({"action_id": "int64"}).to_parquet(folder / "eval" / "examples.parquet", index=False)
    (folder / "plots" / "modes_before_after.png").write_bytes(_png())
    (folder / "plots" / "landscape_before_after.png").write_bytes(_png(400, 300))
    (folder / "plots" / "change_map.png").write_bytes(_png(500, 400))
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": meta["model_id"]}))
    (folder / "README.md").write_text(CARD.format(base=meta["model_id"], failures=failures_repo, run_id=meta["run_id"],
                                                  lineage=json.dumps(lineage or [meta["run_id"]]), name=name))
    return folder


def publish_variant(folder: Path, repo_id: str) -> str:
    """Upload an adapter folder to the local Hub as a model repo."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message="mitigated variant")
    return repo_id
