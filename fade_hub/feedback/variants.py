"""Mitigated variants beside the base model: find the adapters published for a run and read what they changed.

An adapter written by ``fade-hub mitigate`` holds ``fade_eval.json`` (before/after figures per targeted mode),
``eval/examples.parquet`` (each evaluation example's base and mitigated output) and pictures under ``plots/``;
its model card's metadata links it to the run (``fade_hub: {run_id, lineage_run_ids}``, tags ``fade-hub`` and
``failure-mitigation``). Only those files are read (no weights, no torch).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import NETWORK_ERRORS, BadConfig, FadeHubError
from .view import decode_image, short, side_by_side
from .words import percent, plain

logger = logging.getLogger(__name__)

TAGS = ("fade-hub", "failure-mitigation")
EVAL_FILE = "fade_eval.json"
EXAMPLES_FILE = "eval/examples.parquet"
MAX_LISTED = 1000  # adapters looked at per Hub query
TABLE_COLUMNS = ["id", "failure mode", "verdicts", "before", "after", "change"]


@dataclass
class Variant:
    """One mitigated variant: where it lives, its card metadata, its evaluation and its examples."""

    name: str
    card: dict[str, Any]
    evaluation: dict[str, Any]
    examples: pd.DataFrame
    plots: dict[str, Path] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        """The run the adapter was trained for."""
        return str(self.evaluation.get("run_id") or (self.card.get("fade_hub") or {}).get("run_id") or "")

    def modes(self) -> list[dict[str, Any]]:
        """The targeted modes of ``fade_eval.json``."""
        return list(self.evaluation.get("modes") or [])


def published_for(run_ids: Iterable[str], *, token: str | None = None) -> list[str]:
    """Adapter repos on the Hub whose card metadata names one of ``run_ids`` (``run_id`` or ``lineage_run_ids``)."""
    from huggingface_hub import HfApi

    wanted = {str(run_id) for run_id in run_ids if run_id}
    found = []
    from huggingface_hub.errors import HfHubHTTPError

    try:
        models = list(HfApi(token=token).list_models(filter=list(TAGS), cardData=True, limit=MAX_LISTED))
    except (*NETWORK_ERRORS, HfHubHTTPError) as err:
        logger.warning("could not look for published adapters (%s); pass them with --adapters", type(err).__name__)
        return []
    for model in models:
        data = model.card_data.to_dict() if model.card_data is not None else {}
        meta = data.get("fade_hub") or {}
        linked = {str(meta.get("run_id") or "")} | {str(run_id) for run_id in meta.get("lineage_run_ids") or []}
        if wanted & linked:
            found.append(model.id)
    return sorted(found)


def _fetch(spec: str, name: str, token: str | None) -> Path | None:
    """A file of a local adapter folder or a Hub model repo; None when it has no such file."""
    folder = Path(spec)
    if folder.is_dir():
        return folder / name if (folder / name).is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return Path(hf_hub_download(spec, name, token=token))
    except EntryNotFoundError:
        return None


def load_variant(spec: str, *, token: str | None = None) -> Variant:
    """Read a mitigated variant from a folder or a model repo; BadConfig when it is not one."""
    from huggingface_hub import ModelCard
    from huggingface_hub.errors import HFValidationError, RepositoryNotFoundError

    try:
        evaluation_file = _fetch(spec, EVAL_FILE, token)
        if evaluation_file is None:
            raise BadConfig(f"{spec} is not a fade-hub mitigated variant (no {EVAL_FILE})")
        evaluation = json.loads(evaluation_file.read_text(encoding="utf-8"))
        examples_file = _fetch(spec, EXAMPLES_FILE, token)
        examples = pd.read_parquet(examples_file) if examples_file else pd.DataFrame()
        card_file = _fetch(spec, "README.md", token)
        card = ModelCard.load(card_file).data.to_dict() if card_file else {}
        plots = {}
        for key, path in (evaluation.get("plots") or {}).items():
            local = _fetch(spec, str(path), token)
            if local is not None:
                plots[str(key)] = local
    except (RepositoryNotFoundError, HFValidationError):
        raise BadConfig(f"{spec} is neither a local adapter folder nor a model repo on the Hub") from None
    except NETWORK_ERRORS as err:
        raise BadConfig(f"could not reach the Hub to read {spec} ({type(err).__name__})") from None
    except (json.JSONDecodeError, OSError, ValueError) as err:
        raise BadConfig(f"{spec} has an unreadable {EVAL_FILE} or {EXAMPLES_FILE}: {err}") from None
    return Variant(name=spec, card=card, evaluation=evaluation, examples=examples, plots=plots)


def load_variants(specs: Iterable[str], *, token: str | None = None) -> tuple[list[Variant], list[str]]:
    """The variants that could be read, and one line per variant that could not."""
    variants, problems = [], []
    for spec in dict.fromkeys(specs):
        try:
            variants.append(load_variant(spec, token=token))
        except FadeHubError as err:
            logger.warning("skipping mitigated variant %s: %s", spec, err)
            problems.append(str(err))
    return variants, problems


def counts_text(counts: Mapping[str, Any] | None) -> str:
    """``50/60 failed (83%, 95% CI 72-91%)`` for a COUNTS mapping."""
    if not counts or not counts.get("queries"):
        return "no queries"
    low, high = percent(counts.get("ci_low")).rstrip("%"), percent(counts.get("ci_high"))
    return f"{int(counts['failures'])}/{int(counts['queries'])} failed ({percent(counts.get('rate'))}, 95% CI {low}-{high})"


def _change(before: Mapping | None, after: Mapping | None) -> str:
    if not before or not after or before.get("rate") is None or after.get("rate") is None:
        return ""
    return f"{100 * (float(after['rate']) - float(before['rate'])):+.0f} points"


def before_after_table(variant: Variant) -> pd.DataFrame:
    """One row per targeted mode, then the pooled targeted modes, the clean seeds and the untargeted cells."""
    rows = []
    for mode in variant.modes():
        votes = mode.get("votes") or {}
        rows.append([str(mode.get("action_id", "")), str(mode.get("cell", "")),
                     ", ".join(f"{n} {verdict.replace('_', ' ')}" for verdict, n in votes.items() if n),
                     counts_text(mode.get("before")), counts_text(mode.get("after")),
                     _change(mode.get("before"), mode.get("after"))])
    evaluation = variant.evaluation
    for key, label in (("targeted", "all targeted modes"), ("clean", "clean seeds"),
                       ("untargeted", "untargeted cells")):
        part = evaluation.get(key) or {}
        rows.append(["", label, "", counts_text(part.get("before")), counts_text(part.get("after")),
                     _change(part.get("before"), part.get("after"))])
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def headline(variant: Variant) -> str:
    """The variant in a few plain sentences (Markdown, every value escaped)."""
    evaluation = variant.evaluation
    targeted = evaluation.get("targeted") or {}
    clean = evaluation.get("clean") or {}
    seeds = evaluation.get("eval_seeds") or {}
    drop = targeted.get("drop")
    lines = [
        f"### {plain(variant.name)}",
        (f"A LoRA adapter on **{plain(evaluation.get('base_model', '?'))}**, trained for run "
         f"**{plain(variant.run_id or '?')}** on {len(variant.modes())} failure mode"
         f"{'' if len(variant.modes()) == 1 else 's'} that reviewers marked *fix*."),
        f"**Targeted modes:** {plain(counts_text(targeted.get('before')))} before, "
        f"{plain(counts_text(targeted.get('after')))} after"
        + (f" (failures down {percent(drop)})." if drop is not None else "."),
        f"**Clean seeds:** {plain(counts_text(clean.get('before')))} before, {plain(counts_text(clean.get('after')))} after.",
    ]
    if evaluation.get("wasserstein") is not None:
        lines.append(f"**Landscape shift** (Wasserstein distance): {float(evaluation['wasserstein']):.3f}.")
    if seeds:
        lines.append(f"Evaluated on {int(seeds.get('count') or 0)} seeds the adapter never trained on "
                     f"({plain(seeds.get('source', '?'))}).")
    return "\n\n".join(lines)


def mode_choices(variant: Variant) -> list[tuple[str, str]]:
    """Dropdown choices (label, action id) of the variant's targeted modes."""
    return [(f"{mode.get('cell', '')} (id {mode.get('action_id')})", str(mode.get("action_id")))
            for mode in variant.modes()]


def _mark(failed: Any) -> str:
    return "fails" if bool(failed) else "ok"


def examples_table(variant: Variant, action_id: str | None) -> pd.DataFrame:
    """The mode's evaluation examples as text: seed, input, expected, base and mitigated output."""
    frame = variant.examples
    columns = ["seed", "input", "expected", "base output", "base", "mitigated output", "mitigated"]
    if frame.empty or action_id is None:
        return pd.DataFrame(columns=columns)
    rows = frame[frame["action_id"].astype(str) == str(action_id)]
    table = pd.DataFrame({
        "seed": rows["seed_id"].astype(str), "input": rows["input"].astype(str),
        "expected": rows["expected"].astype(str), "base output": rows["base_output"].astype(str),
        "base": [_mark(v) for v in rows["base_failure"]], "mitigated output": rows["mitigated_output"].astype(str),
        "mitigated": [_mark(v) for v in rows["mitigated_failure"]],
    }, columns=columns)
    return table if (table["input"] != "").any() else table.drop(columns="input")  # images: the gallery shows them


def example_images(variant: Variant, action_id: str | None) -> list[tuple[Any, str]]:
    """(picture, caption) per image example: the input (or base | mitigated images for text-to-image)."""
    frame = variant.examples
    if frame.empty or action_id is None or "image" not in frame.columns:
        return []
    items = []
    for _, row in frame[frame["action_id"].astype(str) == str(action_id)].iterrows():
        image = decode_image(row.get("image"))
        if image is None:
            continue
        base_image = decode_image(row.get("base_image")) if "base_image" in frame.columns else None
        if base_image is not None:
            image = side_by_side(base_image, image, labels=("base", "mitigated"))
        caption = (f"{short(row['seed_id'], 24)}: base said {short(row['base_output'], 20)!r} "
                   f"({_mark(row['base_failure'])}), mitigated {short(row['mitigated_output'], 20)!r} "
                   f"({_mark(row['mitigated_failure'])})")
        items.append((image, caption))
    return items
