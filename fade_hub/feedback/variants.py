"""Mitigated variants beside the base model: find the adapters published for a run and read what they changed.

An adapter written by ``fade-hub mitigate`` holds ``fade_eval.json`` (before/after figures per target),
``eval/examples.parquet`` (each evaluation example's base and mitigated output) and pictures under ``plots/``;
its model card's metadata links it to the run (``fade_hub: {run_id, lineage_run_ids}``, tags ``fade-hub`` and
``failure-mitigation``). Only those files are read (no weights, no torch).

``fade_eval.json`` is read defensively: targets under ``regions`` (or ``targets``, or the older ``modes``), each
figure as counts (``failures`` of ``queries`` or ``seeds``, ``rate``, ``ci_low``/``ci_high`` or ``low``/``high``)
and each change as a number or an estimate with its interval (``value``/``estimate``, ``low``, ``high``, or
``NAME_low``/``NAME_high`` beside the number, as ``fade-hub mitigate`` writes it); the
parts shown are those present: the targets, clean seeds, collateral on unseen perturbations, the untargeted cells
trained on (or, in older files, all untargeted cells).
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
from ..region_changes import STATUSES
from .pictures import decode_image, side_by_side
from .view import LABEL_CHARS, short
from .words import interval, plain, points, short_percent

logger = logging.getLogger(__name__)

TAGS = ("fade-hub", "failure-mitigation")
EVAL_FILE = "fade_eval.json"
EXAMPLES_FILE = "eval/examples.parquet"
MAX_LISTED = 1000  # adapters looked at per Hub query


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

    def targets(self) -> list[dict[str, Any]]:
        """The targets of ``fade_eval.json`` (regions, or the cells of older files), each with a ``key`` and a
        ``label`` in words."""
        found = []
        for name in ("regions", "targets", "modes"):
            items = self.evaluation.get(name)
            if isinstance(items, list) and items:
                for i, item in enumerate(entry for entry in items if isinstance(entry, Mapping)):
                    key = str(item.get("region_id") or item.get("target") or item.get("action_id") or i)
                    label = str(item.get("description") or item.get("label") or item.get("cell") or key)
                    found.append({**item, "key": key, "label": label})
                break
        return found


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


# the parts of fade_eval.json, in the order shown, each with its words
PARTS = (
    ("targeted", "the targeted failures"),
    ("clean", "clean seeds"),
    ("collateral", "collateral on unseen perturbations"),
    ("untargeted_trained", "untargeted cells, trained on"),
    ("untargeted", "the untargeted cells"),
)
TABLE_COLUMNS = ["what", "before", "after", "change"]
EXAMPLE_COLUMNS = ["seed", "what happened"]
ORDER = ("fixed", "regressed", "still fails", "still right")  # examples: what changed first


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # NaN is no number


def _bounds(part: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """(low, high) of a figure, wherever the file keeps them."""
    ci = part.get("ci") or part.get("interval")
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        return _number(ci[0]), _number(ci[1])
    return (_number(part.get("ci_low", part.get("low"))), _number(part.get("ci_high", part.get("high"))))


def estimate(value: Any) -> tuple[float | None, float | None, float | None]:
    """(point, low, high) of a change or a drop given as a number or as an estimate with its interval."""
    if isinstance(value, Mapping):
        point = _number(value.get("value", value.get("estimate", value.get("mean"))))
        return (point, *_bounds(value))
    return _number(value), None, None


def counts_text(counts: Mapping[str, Any] | None, *, of: bool = True) -> str:
    """``83% [72, 91] (50 of 60)`` for a figure of ``fade_eval.json`` (``of``: with the counts); ``not measured``
    when absent."""
    if not isinstance(counts, Mapping):
        return "not measured"
    total = _number(counts.get("queries", counts.get("seeds", counts.get("n"))))
    failures = _number(counts.get("failures"))
    rate = _number(counts.get("rate"))
    if rate is None and failures is not None and total:
        rate = failures / total
    if rate is None:
        return "not measured"
    low, high = _bounds(counts)
    text = f"{short_percent(rate)} {interval(low, high)}".strip()
    return text + (f" ({int(failures)} of {int(total)})" if of and failures is not None and total else "")


def change_text(value: Any, unit: str = "points") -> str:
    """``-75 points [-90, -60]`` (or ``down 88% [79, 95]`` for a drop) for a change of ``fade_eval.json``."""
    point, low, high = estimate(value)
    if point is None:
        return ""
    if unit == "drop":
        return f"down {short_percent(point)} {interval(low, high)}".strip()
    return points(point, low, high)


def _with_bounds(part: Mapping[str, Any], name: str) -> Any:
    """``part[name]``, with its interval when the file keeps it beside the number (``name_low``, ``name_high``)."""
    value = part.get(name)
    if isinstance(value, Mapping) or part.get(f"{name}_low") is None:
        return value
    return {"value": value, "low": part[f"{name}_low"], "high": part.get(f"{name}_high")}


def _part_change(key: str, part: Mapping[str, Any]) -> str:
    """The change of one part in words: a drop for the targets, points of failure rate for the others (the file's
    own estimate and interval when it has one, else after minus before)."""
    if key == "targeted" and part.get("drop") is not None:
        return change_text(_with_bounds(part, "drop"), "drop")
    for name in ("change", "rise", "difference"):
        if estimate(part.get(name))[0] is not None:
            return change_text(_with_bounds(part, name))
    before, after = _number((part.get("before") or {}).get("rate")), _number((part.get("after") or {}).get("rate"))
    return change_text(after - before) if before is not None and after is not None else ""


def parts(variant: Variant) -> list[tuple[str, str, Mapping[str, Any]]]:
    """(key, words, figures) of the parts ``fade_eval.json`` holds, in the order shown; the older ``untargeted``
    only when the file has no collateral figure."""
    evaluation = variant.evaluation
    found = [(key, label, evaluation[key]) for key, label in PARTS if isinstance(evaluation.get(key), Mapping)]
    if any(key == "collateral" for key, _, _ in found):
        found = [item for item in found if item[0] != "untargeted"]
    return found


def before_after_table(variant: Variant) -> pd.DataFrame:
    """One row per target, then one per part (targeted, clean, collateral, ...): failures before and after, with
    95 % intervals, and the change."""
    rows = []
    for item in variant.targets():
        rows.append([f"target: {item['label']}", counts_text(item.get("before"), of=False),
                     counts_text(item.get("after"), of=False), _part_change("targeted", item)])
    for key, label, part in parts(variant):
        rows.append([label, counts_text(part.get("before"), of=False), counts_text(part.get("after"), of=False),
                     _part_change(key, part)])
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def title(variant: Variant) -> str:
    """The variant's name as people know it: the repo id, or the folder's name."""
    path = Path(variant.name)
    return path.name if path.is_dir() else variant.name


def headline(variant: Variant) -> str:
    """The variant in a few plain sentences (Markdown, every value escaped)."""
    evaluation = variant.evaluation
    targets = variant.targets()
    kind = "region" if evaluation.get("regions") else "target"
    lines = [
        f"### {plain(title(variant))}",
        (f"A LoRA adapter on **{plain(evaluation.get('base_model', '?'))}**, trained for run "
         f"**{plain(variant.run_id or '?')}** against {len(targets)} {kind}{'' if len(targets) == 1 else 's'} "
         "reviewers marked *fix*."),
    ]
    for key, label, part in parts(variant):
        before, after = counts_text(part.get("before")), counts_text(part.get("after"))
        change = _part_change(key, part)
        lines.append(f"**{plain(label[0].upper() + label[1:])}:** {plain(before)} failed before, {plain(after)} after"
                     + (f" ({plain(change)})." if change else "."))
    seeds = evaluation.get("eval_seeds") or {}
    if seeds:
        lines.append(f"Measured on {int(_number(seeds.get('count')) or 0)} seeds the adapter never trained on "
                     f"({plain(seeds.get('source', '?'))}); 95% intervals in brackets.")
    lines += recheck_lines(evaluation.get("recheck"))
    return "\n\n".join(lines)


def recheck_lines(recheck: Any) -> list[str]:
    """The re-check in words (the variant explored afresh and compared with the run), or [] when there is none."""
    if not isinstance(recheck, Mapping) or not isinstance(recheck.get("counts"), Mapping):
        return []
    counts = recheck["counts"]
    tally = ", ".join(f"{int(_number(counts.get(status)) or 0)} {status}" for status in STATUSES)
    queries = _number(recheck.get("queries"))
    asked = f" ({int(queries)} queries)" if queries is not None else ""
    bullets = [f"- *{plain(region['status'])}:* {plain(region['text'])}" for region in recheck.get("regions") or []
               if isinstance(region, Mapping) and region.get("status") in STATUSES and region.get("text")]
    first = f"**Explored afresh:** the variant was searched again like the run it fades{asked}: {plain(tally)}."
    return [first, "\n".join(bullets)] if bullets else [first]


def shift_text(variant: Variant) -> str:
    """The secondary landscape-shift figure with its limitation, or ``""``."""
    value = _number(variant.evaluation.get("wasserstein"))
    if value is None:
        return ""
    return (f"Landscape shift (Wasserstein distance between the sorted per-cell failure rates): {value:.3f}. It says "
            "how much the spread of failure rates moved, not which cells changed.")


def _target_cells(item: Mapping[str, Any]) -> list[int]:
    cells = item.get("cells")
    if isinstance(cells, (list, tuple)):
        return [int(c) for c in cells if _number(c) is not None]
    return [int(item["action_id"])] if _number(item.get("action_id")) is not None else []


def target_choices(variant: Variant) -> list[tuple[str, str]]:
    """Dropdown choices (label, key) of the variant's targets, then every example."""
    choices = [(short(item["label"], LABEL_CHARS), item["key"]) for item in variant.targets()]
    return choices + ([("every evaluation example", "all")] if len(choices) != 1 else [])


def _examples_of(variant: Variant, key: str | None) -> pd.DataFrame:
    """The evaluation examples of one target (all of them for ``"all"``), fixed first, then regressed, then the rest."""
    frame = variant.examples
    if frame.empty:
        return frame
    item = next((item for item in variant.targets() if item["key"] == key), None)
    if item is not None:
        if "region_id" in frame.columns and item.get("region_id"):
            frame = frame[frame["region_id"].astype(str) == str(item["region_id"])]
        elif "action_id" in frame.columns:
            frame = frame[frame["action_id"].isin(_target_cells(item))]
    what = [_what(row) for row in frame.itertuples()]
    return frame.assign(_what=what, _order=[ORDER.index(w) for w in what]).sort_values("_order", kind="mergesort")


def _what(row: Any) -> str:
    before, after = bool(getattr(row, "base_failure", False)), bool(getattr(row, "mitigated_failure", False))
    if before and not after:
        return "fixed"
    if after and not before:
        return "regressed"
    return "still fails" if before else "still right"


def _happened(row: Any) -> str:
    """``fixed: the base model said 'circle', the mitigated one 'square' (expected 'square')``."""
    return (f"{row['_what']}: base said {short(row['base_output'], 40)!r}, mitigated "
            f"{short(row['mitigated_output'], 40)!r} (expected {short(row['expected'], 40)!r})")


def examples_table(variant: Variant, key: str | None) -> pd.DataFrame:
    """A target's evaluation examples as text (the input for text, else the seed; what happened), fixed first, then
    regressed, then unchanged."""
    rows = _examples_of(variant, key)
    if rows.empty:
        return pd.DataFrame(columns=EXAMPLE_COLUMNS)
    texts = rows["input"].astype(str) if "input" in rows.columns else pd.Series("", index=rows.index)
    first = ("input", texts) if (texts != "").any() else ("seed", rows["seed_id"].astype(str))  # images: the gallery
    return pd.DataFrame({first[0]: first[1], "what happened": [_happened(row) for _, row in rows.iterrows()]})


def example_images(variant: Variant, key: str | None) -> list[tuple[Any, str]]:
    """(picture, caption) per image example, fixed → regressed → unchanged: the input (or base | mitigated images
    for text-to-image)."""
    rows = _examples_of(variant, key)
    if rows.empty or "image" not in rows.columns:
        return []
    items = []
    for _, row in rows.iterrows():
        image = decode_image(row.get("image"))
        if image is None:
            continue
        base_image = decode_image(row.get("base_image")) if "base_image" in rows.columns else None
        if base_image is not None:
            image = side_by_side(base_image, image, labels=("base", "mitigated"))
        caption = f"{short(row['seed_id'], 32)} · {_happened(row)}"
        items.append((image, caption))
    return items
