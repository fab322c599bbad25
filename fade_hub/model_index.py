"""The ``model-index`` of a mitigated variant's card: its figures as Hub evaluation results, each naming the failure
dataset it was measured for and that dataset's revision, each rate with its 95 % interval and seed count as arguments.

From ``fade_eval.json``: per faded region (or targeted mode) the failure rate before and after, all targeted modes,
the clean inputs, the collateral cells (``collateral``, else the untargeted cells), and, after a re-check
(``fade_hub.recheck``), how many regions of the base run are fixed, persisting or unresolved and how many are new
(named by the variant's run dataset when it was pushed). ``ModelCard.load(REPO).data.eval_results`` reads them back.
"""

from __future__ import annotations

from typing import Any

from huggingface_hub import EvalResult


def _rate_args(part: dict[str, Any]) -> dict[str, Any]:
    """The interval and seed count of a rate (``counts`` of ``fade_hub.mitigate.evaluate``)."""
    return {"ci_low": round(float(part["ci_low"]), 4), "ci_high": round(float(part["ci_high"]), 4),
            "seeds": int(part.get("queries", part.get("seeds", 0)))}


def _before_after(name: str, part: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(metric name, rate)`` of a part's base and mitigated rates (parts without a rate are left out)."""
    return [(f"{name}, {label}", part[side]) for side, label in (("before", "base"), ("after", "mitigated"))
            if part.get(side) and part[side].get("rate") is not None]


def rate_results(figures: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every failure rate the card reports, named: per region (or mode), targeted, clean, collateral."""
    rates = []
    for region in figures.get("regions") or []:
        rates += _before_after(f"failure rate in region {region.get('description') or region['region_id']}", region)
    if not figures.get("regions"):
        for mode in figures.get("modes") or []:
            rates += _before_after(f"failure rate in mode {mode['cell']}", mode)
    rates += _before_after("targeted failure rate", figures["targeted"])
    rates += _before_after("clean failure rate", figures["clean"])
    if figures.get("collateral"):
        rates += _before_after("collateral failure rate on unseen perturbations", figures["collateral"])
    else:
        rates += _before_after("untargeted failure rate", figures["untargeted"])
    return rates


def eval_results(figures: dict[str, Any], dataset: str) -> list[EvalResult]:
    """The ``model-index`` results of an adapter's figures (see the module doc), naming ``dataset`` (the run's
    dataset repo, or a stand-in when it was never pushed)."""
    task = figures["task"]
    revision = figures.get("failures_revision") if dataset == figures.get("failures") else None
    results = [
        EvalResult(task_type=task, dataset_type=dataset, dataset_name=f"held-out seeds of {dataset}",
                   dataset_revision=revision, metric_type="failure_rate", metric_name=name,
                   metric_value=round(float(part["rate"]), 4), metric_args=_rate_args(part))
        for name, part in rate_results(figures)
    ]
    recheck = figures.get("recheck")
    if recheck:
        pushed = bool(recheck.get("dataset"))  # the counts name the variant's run dataset, else the base run's
        where, where_revision = (recheck["dataset"], recheck.get("revision")) if pushed else (dataset, revision)
        results += [
            EvalResult(task_type=task, dataset_type=where, dataset_name=f"re-check of the variant against {dataset}",
                       dataset_revision=where_revision, metric_type="region_count",
                       metric_name=f"re-check: regions {status}", metric_value=int(count))
            for status, count in recheck["counts"].items()
        ]
    return results
