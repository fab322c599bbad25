"""The model card of a mitigated variant: Hub metadata (base model, peft, tags, datasets, model-index) and a body
that shows the shift, what feedback it was trained on, and how to load it with stock code."""

from __future__ import annotations

from typing import Any

from huggingface_hub import ModelCard, ModelCardData
from huggingface_hub.utils import validate_repo_id

from ..card import md_escape
from ..model_index import eval_results
from ..paths import public_name
from ..recheck import recheck_section
from ..tasks import get_task
from .outputs import CHANGES_FILE
from .shift_plots import CHANGE_PLOT, MODES_PLOT
from .shift_text import (
    WASSERSTEIN_SHORT, change_map_lines, change_text, drop_text, group_rows, points, rate_text, verdict_lines,
)

TAGS = ["fade-hub", "failure-mitigation", "lora"]


def _is_repo_id(text: str | None) -> bool:
    try:
        validate_repo_id(str(text))
    except Exception:  # HFValidationError and friends: a local path, not a repo id
        return False
    return not str(text).startswith((".", "/", "~"))


def _metadata(figures: dict[str, Any], repo_id: str | None) -> ModelCardData:
    task, base = figures["task"], figures["base_model"]
    spec = get_task(task)
    datasets = [source for source in [figures.get("failures"), *figures["feedback"].get("sources", [])]
                if _is_repo_id(source)]
    dataset = datasets[0] if datasets else "local/fade-hub-run"
    results = eval_results(figures, dataset)
    return ModelCardData(
        base_model=base if _is_repo_id(base) else None,
        library_name=spec.adapter_library,
        pipeline_tag=task,
        tags=[*TAGS, task, *spec.adapter_tags],
        datasets=datasets or None,
        model_name=repo_id or f"{base} (faded)",
        eval_results=results or None,
        fade_hub={"run_id": figures["run_id"], "lineage_run_ids": figures["lineage_run_ids"],
                  "failures": figures.get("failures"), "base_commit": figures.get("base_commit")},
    )


def _shift_table(figures: dict[str, Any]) -> list[str]:
    """The before/after table: each targeted region (and cell), all targeted, clean, collateral, untargeted."""
    lines = ["| | reviewers' votes | failure rate before [95% CI] | after [95% CI] | after - before, points [95% CI] |",
             "|---|---|---|---|---|"]
    for label, part in group_rows(figures):
        votes = ", ".join(f"{k} {v}" for k, v in sorted((part.get("votes") or {}).items()))
        if not votes and part in (figures.get("regions") or []) + figures["modes"]:
            votes = "confirmed region" if figures["feedback"].get("source", "").startswith("confirmed") else ""
        lines.append(f"| {md_escape(label)} | {md_escape(votes)} | {rate_text(part['before'])} | "
                     f"{rate_text(part['after'])} | {change_text(part)} |")
    quality = figures["clean"].get("quality")
    if quality:
        lines.append(f"| *{md_escape(quality['metric'])} on clean inputs (mean, higher is better)* | | "
                     f"{quality['before']:.3f} | {quality['after']:.3f} | {points(quality['change'])} |")
    return lines


def _method_lines(figures: dict[str, Any]) -> list[str]:
    """How the figures were measured: the seeds, the pairing, the bootstrap, the collateral cells, Wasserstein."""
    statistics, seeds = figures.get("statistics") or {}, figures["eval_seeds"]
    collateral, training = figures.get("collateral") or {}, figures["training"]
    lines = [f"Both models answered the same {seeds['count']} seeds, never trained on "
             f"({md_escape(public_name(seeds['source']))}), over {figures['cells_evaluated']} cells, with the run's "
             "own concept space and judge. Each 95% interval is a percentile bootstrap over seeds "
             f"({statistics.get('resamples', '?')} resamples; the seed is the unit, and before and after share every "
             "resample, so changes are paired). Where no seed failed, or no seed changed, a bootstrap sees nothing: "
             "the interval is then the exact bound of what that many seeds can miss (Clopper-Pearson, 0 seeds of n), "
             "e.g. [-9.7, +9.7] points for no change on 36 seeds."]
    if collateral:
        lines.append(f"The {len(collateral.get('cells') or [])} collateral cells were drawn at random among the "
                     f"untargeted cells before training (share {training.get('collateral_share', '?')}) and never "
                     "trained on; the other untargeted cells were mixed into training to keep the model's answers.")
    lines.append(f"Wasserstein distance between the two landscapes: {figures['wasserstein']:.3f} (secondary: it "
                 f"{md_escape(figures.get('wasserstein_note') or WASSERSTEIN_SHORT)}).")
    return [" ".join(lines), ""]


def _clean_change(figures: dict[str, Any]) -> str:
    """How clean quality moved: the judge's quality metric where it has one, else accuracy or pass rate."""
    quality = figures["clean"].get("quality")
    if quality:
        return (f"; {md_escape(quality['metric'])} on clean inputs went from {quality['before']:.3f} to "
                f"{quality['after']:.3f} ({quality['change'] * 100:+.1f} points).")
    change = figures["clean"]["accuracy_change"]
    if change is None:
        return "."
    what = "clean accuracy" if get_task(figures["task"]).correction == "label" else "the judge's pass rate on clean inputs"
    low, high = figures["clean"].get("accuracy_change_low"), figures["clean"].get("accuracy_change_high")
    interval = f" [{points(low)}, {points(high)}]" if low is not None and high is not None else ""
    return f"; {what} changed by {points(change)} points{interval}."


def _feedback_lines(feedback: dict[str, Any]) -> list[str]:
    if str(feedback.get("source", "")).startswith("confirmed"):
        return [f"Trained on the run's {md_escape(feedback['source'])}, without human feedback (`--modes confirmed`)."]
    verdicts = ", ".join(f"{count} {verdict}" for verdict, count in sorted(feedback["verdicts"].items()))
    lines = [f"Trained on {feedback['records']} verdicts by {feedback['reviewers']} reviewer(s) ({verdicts}); "
             f"{feedback['corrections']} agreed correction(s) of examples."]
    if feedback["judge_errors"]:
        lines.append(f"Left out as judge errors (reviewers said *not a failure*): cells "
                     f"{md_escape(', '.join(feedback['judge_errors']))}.")
    # "target" in the fade_eval.json of adapters written by fade-hub 0.1
    for dispute in feedback["disagreements"]:
        lines.append(f"Reviewers disagreed on {md_escape(dispute.get('item', dispute.get('target')))}: "
                     f"{md_escape(dispute.get('votes') or dispute.get('corrections'))}.")
    return lines


def _override_lines(figures: dict[str, Any]) -> list[str]:
    """The cells of targeted regions that reviewers' cell verdicts left out."""
    return [f"Left out of region {md_escape(region['description'])} by reviewers' verdicts on its cells: cells "
            f"{md_escape(', '.join(str(cell) for cell in region['overridden_cells']))}."
            for region in figures.get("regions") or [] if region.get("overridden_cells")]


def _clean_lines(clean: dict[str, Any]) -> list[str]:
    """Where the clean figures come from and the judge's mean score on them, when the figures say."""
    lines = [f"Clean inputs: {md_escape(clean['inputs'])}."] if clean.get("inputs") else []
    scores = clean.get("judge_score") or {}
    if scores.get("before") is not None and scores.get("after") is not None:
        lines.append(f"The judge's mean score on them: {scores['before']:.3f} before, {scores['after']:.3f} after.")
    return [" ".join(lines), ""] if lines else []


def _what(figures: dict[str, Any]) -> str:
    """``2 region(s) and 1 cell(s)``: what the adapter was trained to fade."""
    regions = figures.get("regions") or []
    in_regions = {cell for region in regions for cell in region["cells"]}
    cells = [mode for mode in figures["modes"] if mode["action_id"] not in in_regions]
    parts = [f"{len(regions)} failure region(s)"] if regions else []
    parts += [f"{len(cells)} failure cell(s)"] if cells or not regions else []
    return " and ".join(parts)


def build_model_card(figures: dict[str, Any], repo_id: str | None = None) -> ModelCard:
    """The adapter's model card from its ``fade_eval.json`` figures (``repo_id``: where it is pushed)."""
    target, base = repo_id or "path/to/this/adapter", figures["base_model"]
    targeted = figures["targeted"]
    summary = (f"A LoRA adapter for [{md_escape(base)}]({base if not _is_repo_id(base) else 'https://huggingface.co/' + base}) "
               f"that fades {_what(figures)} found by fade-hub run `{md_escape(figures['run_id'])}`: their failure "
               f"rate on held-out seeds went from {rate_text(targeted['before'])} to {rate_text(targeted['after'])}"
               + (f" (down {drop_text(targeted)})" if targeted.get("drop") is not None else "")
               + _clean_change(figures))
    verdicts = [f"- {md_escape(line[0].upper() + line[1:])}." for line in verdict_lines(figures)]
    body = [
        f"# {md_escape(base)}, with its failures faded", "", summary, "",
        "## What changed, cell by cell", "",
        f"![change of the failure rate per cell]({CHANGE_PLOT})", "",
        *[md_escape(line[0].upper() + line[1:]) + "." for line in change_map_lines(figures)],
        f"Per cell, with intervals: `{CHANGES_FILE}`.", "",
        "## Verdicts", "", *verdicts, "",
        "## Before and after", "", f"![failure rate before and after]({MODES_PLOT})", "", *_shift_table(figures), "",
        *_method_lines(figures), *_clean_lines(figures["clean"]), *recheck_section(figures),
        "## Feedback it was trained on", "", *_feedback_lines(figures["feedback"]), *_override_lines(figures), "",
        "## How to load it", "", "```python", get_task(figures["task"]).adapter_snippet.format(base=base, repo=target), "```", "",
        f"Or as a plain model with the LoRA merged: `fade-hub pull {target} --output DIR --merge`. "
        f"Check it yourself: `fade-hub explore {target} ...`.", "",
        "## Training", "",
        *[f"- {md_escape(key)}: {md_escape(value)}" for key, value in sorted(figures["training"].items())], "",
        f"Lineage: runs {md_escape(', '.join(figures['lineage_run_ids']))}; base commit "
        f"{md_escape(figures.get('base_commit') or 'local')}.", "",
    ]
    return ModelCard(f"---\n{_metadata(figures, repo_id).to_yaml()}\n---\n\n" + "\n".join(body))
