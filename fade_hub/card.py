"""The dataset card of a run: Hub YAML metadata (configs, tags, task) and a one-minute Markdown body.

Every piece of text that comes from a model, a dataset or the user is escaped before it reaches the
Markdown (``&``, ``<``, ``>`` become entities, pipes and Markdown specials are backslash-escaped,
newlines become spaces), so nothing in a card renders as HTML or breaks a table.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import quote

import pandas as pd
from huggingface_hub import DatasetCard, DatasetCardData, constants

from .errors import BadConfig
from .landscape import cell_label, count_text, factor_levels, failure_modes, held_out_text, is_mode
from .perturb.concepts import ConceptSpace
from .provenance import license_text
from .run import read_table
from .store import DATA_FILES, LANDSCAPE_FILE, RunStore
from .tasks import TASKS

logger = logging.getLogger(__name__)

DEFAULT_DATA_FILES: dict[str, str | list] = dict(DATA_FILES)
DEFAULT_CONFIG = "failures"
BASE_TAGS = ["fade-hub", "failure-analysis", "robustness"]
_SIZES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
          (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#~])")
_IMAGE_PATH = re.compile(r"[\w./-]+\.(png|jpe?g|webp|gif)", re.IGNORECASE)
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


def md_escape(text: Any, limit: int | None = None) -> str:
    """Text safe inside Markdown (and a table cell): one line, HTML entities, Markdown specials escaped."""
    text = " ".join(str(text).split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket of ``n`` rows."""
    return next((label for bound, label in _SIZES if n < bound), "n>1B")


def _relative_path(path: str) -> str:
    """A URL-quoted relative path inside the repo; BadConfig for absolute or escaping paths."""
    if path.startswith("/") or "://" in path or ".." in path.split("/"):
        raise BadConfig(f"card image path {path!r} must be relative to the run folder")
    return quote(path, safe="/")


def _is_image_path(value: str) -> bool:
    return bool(_IMAGE_PATH.fullmatch(value)) and not value.startswith("/") and ".." not in value.split("/")


def _model_link(model_id: str) -> str:
    """The model id, linked to its Hub page when it looks like a repo id (not a local folder)."""
    if _REPO_ID.fullmatch(model_id) and not model_id.startswith("."):
        return f"[{md_escape(model_id)}]({constants.ENDPOINT}/{model_id})"
    return md_escape(model_id)


def _formats(files: str | list) -> set[str]:
    """File formats named by a ``data_files`` value (patterns, lists, or split/path dicts)."""
    items = files if isinstance(files, list) else [files]
    paths = [path for item in items for path in ([item] if isinstance(item, str) else _as_list(item["path"]))]
    suffixes = {path.rsplit(".", 1)[-1].lower() for path in paths if "." in path.rsplit("/", 1)[-1]}
    return {"json" if suffix in ("json", "jsonl") else suffix for suffix in suffixes}


def _as_list(value: str | list) -> list:
    return value if isinstance(value, list) else [value]


def _warn_mixed_formats(data_files: dict[str, str | list]) -> None:
    """``datasets`` picks one builder for all configs of a repo: configs in different formats do not all load."""
    formats = set().union(*(_formats(files) for files in data_files.values()))
    if len(formats) > 1:
        logger.warning("card configs mix file formats %s; `datasets` reads every config with the builder of the first "
                       "one, so the others will not load: store all configs in one format (e.g. parquet)", sorted(formats))


def _card_data(meta: dict, space: Any, queries: int, data_files: dict[str, str | list]) -> DatasetCardData:
    task = meta.get("task")
    # The description names the run and its size: ``datasets`` caches a local folder by name and
    # config, so without it a run redone in the same folder would load the earlier run's rows.
    run = f"fade-hub run {meta.get('run_id', '?')}, {queries} queries"
    configs = [
        {
            "config_name": name,
            "data_files": files,
            "description": f"{name} of {run}",
            **({"default": True} if name == DEFAULT_CONFIG else {}),
        }
        for name, files in data_files.items()
    ]
    tags = BASE_TAGS + [t for t in (task, getattr(space, "modality", None)) if t and t not in BASE_TAGS]
    space_name = meta.get("space_name") or getattr(space, "name", None) or "custom space"
    return DatasetCardData(
        license=meta.get("license") or "other",
        tags=list(dict.fromkeys(tags)),
        task_categories=[TASKS[task].card_category] if task in TASKS else None,
        size_categories=[size_category(queries)],
        pretty_name=f"fade-hub failure landscape of {meta.get('model_id', 'a model')} ({space_name})",
        configs=configs,
        model_under_test=meta.get("model_id"),
    )


def _summary(meta: dict, landscape: pd.DataFrame, space_name: str, names: list[str]) -> str:
    commit = str(meta.get("model_commit_sha") or meta.get("model_revision") or "local")[:7]
    queries = int(landscape["queries"].sum() + landscape["confirm_queries"].sum())
    failures = int(landscape["failures"].sum() + landscape["confirm_failures"].sum())
    failing = int((landscape["failures"] > 0).sum())
    modes = int(is_mode(landscape).sum())
    return (
        f"fade-hub probed {_model_link(str(meta.get('model_id', 'unknown')))}@{md_escape(commit)} with {queries} queries "
        f"({md_escape(meta.get('algorithm', '?'))}, budget {md_escape(meta.get('budget', '?'))}, "
        f"seed {md_escape(meta.get('seed', '?'))}) over {md_escape(space_name)} ({md_escape(', '.join(names))}): "
        f"{failures} failures in {failing} of {len(landscape)} cells, of which {modes} fail significantly more "
        f"often than {_clean_text(meta)}."
    )


def _example_cell(value: str | None) -> str:
    if value is None:
        return ""
    if _is_image_path(value):
        return f'<img src="{_relative_path(value)}" alt="example" width="96">'
    return md_escape(value, limit=80)


def _modes_section(landscape: pd.DataFrame, names: list[str], examples: dict[int, str] | None, top_k: int) -> list[str]:
    modes = failure_modes(landscape, top_k)
    lines = ["## Top failure modes", ""]
    if modes.empty:
        return lines + [f"No cell fails significantly more often than the model does on clean inputs "
                        f"({int(landscape['queries'].sum())} explore queries).", ""]
    with_policy = bool(modes["policy_prob"].notna().any())
    header = ["rank", "cell", "failure rate [95% CI]", "n", "severity", "confirmed on held-out seeds"]
    if with_policy:
        header.append("policy probability")
    if examples:
        header.append("example")
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for _, row in modes.iterrows():
        cells = [
            str(int(row["rank"])),
            md_escape(cell_label(row, names, sep=", ")),
            f"{row['failure_rate']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]",
            count_text(row),
            f"{row['mean_severity']:.2f}",
            held_out_text(row),
        ]
        if with_policy:
            cells.append(f"{row['policy_prob']:.3f}")
        if examples:
            cells.append(_example_cell(examples.get(int(row["action_id"]))))
        lines.append("| " + " | ".join(cells) + " |")
    total = int(is_mode(landscape).sum())
    if total > len(modes):
        lines += ["", f"{total - len(modes)} more failure modes are in the `landscape` config."]
    return lines + [""]


def _space_section(space: Any, levels: dict[str, list[str]]) -> list[str]:
    lines = ["## Concept space", "", "| factor | op | levels |", "|---|---|---|"]
    for factor in space.factors:
        lines.append(f"| {md_escape(factor.name)} | {md_escape(factor.op)} | {md_escape(', '.join(levels[factor.name]))} |")
    return lines + [""]


def _images_section(images: dict[str, str] | None) -> list[str]:
    if not images:
        return []
    lines = ["## Landscape", ""]
    for title, path in images.items():
        lines += [f"### {md_escape(title)}", "", f"![{md_escape(title)}]({_relative_path(path)})", ""]
    return lines


def _load_section(repo_id: str | None, configs: list[str]) -> list[str]:
    target = repo_id or "path/to/this/run"
    lines = ["## Load the data", "", "```python", "from datasets import load_dataset", ""]
    lines += [f'{name} = load_dataset("{target}", "{name}", split="train")' for name in configs]
    return lines + ["```", ""]


def _clean_text(meta: dict) -> str:
    """The clean failure rate in words, or what the modes were tested against when there is none."""
    clean = meta.get("clean") or {}
    if not clean.get("queries"):
        return "the pooled failure rate of the other cells (this space has no unperturbed input)"
    return (f"the clean failure rate: {clean['failures']} of {clean['queries']} unperturbed seeds failed "
            f"({clean['rate']:.2f}, 95% CI [{clean['ci_low']:.2f}, {clean['ci_high']:.2f}])")


def _reading_section(landscape: pd.DataFrame, min_queries: int | None, meta: dict) -> list[str]:
    uncertain = int(landscape["uncertain"].sum())
    unvisited = int((landscape["queries"] == 0).sum())
    threshold = f"fewer than {min_queries}" if min_queries is not None else "too few"
    directional = sorted({text for text in landscape.get("expectation", pd.Series(dtype=str)) if text != "invariant"})
    lines = [
        "## How to read this",
        "",
        "- A **cell** is one combination of factor levels. Its failure rate comes from the exploration "
        "queries only, with a 95% Wilson interval.",
        "- Every model fails some inputs anyway. A **failure mode** is a cell that fails significantly more often "
        f"than {_clean_text(meta)}: a one-sided Fisher exact test with a Benjamini-Hochberg correction over the "
        "cells tested (false discovery rate 5%). Cells that failed now and then, but not more than that, are not "
        "failure modes.",
        "- Modes are ranked: confirmed modes first, then by the lower end of the 95% interval of the best evidence "
        "(held-out seeds when confirmed, exploration otherwise), then by mean severity, then by the number of "
        "queries. So a mode with a lower rate but more evidence can rank above one with a higher rate.",
        "- **Confirmed** means the cell was re-run on held-out seeds the search never saw and the same test holds "
        "there, against the clean rate of those seeds; `no 1/12` means it was re-run and did not fail "
        "significantly more; `not run` means it was not re-checked.",
        f"- **Uncertain** cells had {threshold} exploration queries: read their rates with care. "
        f"This run has {uncertain} uncertain cells, {unvisited} of them never visited.",
        "- **Invariance and directional tests** (as in CheckList): most ops must not change the answer "
        "(typos, case, rotation, lighting: *invariant*), so the expected answer is the seed's. Some ops change "
        "it in a stated way (negation flips a sentiment: *directional*), so the expected answer is the seed's "
        "mapped through the op's map; the `expected_source` column of the `failures` config says which, e.g. "
        "`seed label, flipped by negate`. Cells with an op that has no automatic expectation are *not judged* "
        "and never count as failures.",
    ]
    if directional:
        lines.append(f"- In this space: {md_escape(', '.join(directional))}.")
    return lines + [""]


def _details_section(meta: dict) -> list[str]:
    lines = ["## Run details", ""]
    fields = ["run_id", "model_id", "model_revision", "model_commit_sha", "endpoint", "provider", "task", "algorithm",
              "mode", "budget", "seed", "status", "started_at", "finished_at", "fade_hub_version"]
    lines += [f"- {name}: {md_escape(meta[name])}" for name in fields if meta.get(name) is not None]
    for name in ("judge", "seeds", "usage"):
        if meta.get(name):
            lines.append(f"- {name}: {md_escape(json.dumps(meta[name], sort_keys=True, default=str), limit=300)}")
    if meta.get("versions"):
        lines += ["", "| package | version |", "|---|---|"]
        lines += [f"| {md_escape(k)} | {md_escape(v)} |" for k, v in sorted(meta["versions"].items())]
    if meta.get("timings"):
        lines += ["", "| stage | seconds |", "|---|---|"]
        lines += [f"| {md_escape(k)} | {float(v):.1f} |" for k, v in meta["timings"].items()]
    return lines + [""]


def build_dataset_card(
    meta: dict,
    landscape: pd.DataFrame,
    space: Any,
    examples: dict[int, str] | None = None,
    images: dict[str, str] | None = None,
    repo_id: str | None = None,
    top_k: int = 10,
    min_queries: int | None = None,
) -> DatasetCard:
    """The run's dataset card: YAML configs/tags/task for the Hub and a short readable body."""
    levels = factor_levels(space)
    names = list(levels)
    data_files = dict(meta.get("data_files") or DEFAULT_DATA_FILES)
    _warn_mixed_formats(data_files)
    queries = int(meta.get("queries") or landscape["queries"].sum() + landscape["confirm_queries"].sum())
    data = _card_data(meta, space, queries, data_files)
    space_name = str(meta.get("space_name") or getattr(space, "name", None) or "a custom space")
    model_id = str(meta.get("model_id", "unknown"))
    body = [
        f"# Failure landscape of {md_escape(model_id)}",
        "",
        _summary(meta, landscape, space_name, names),
        "",
        f"- **Model under test:** {_model_link(model_id)}, revision {md_escape(meta.get('model_revision') or 'main')}, "
        f"commit {md_escape(meta.get('model_commit_sha') or 'unknown')}",
        f"- **Task:** {md_escape(meta.get('task', 'unknown'))}",
        f"- **Licence:** {md_escape(license_text(meta))}",
        f"- **Search:** {md_escape(meta.get('algorithm', '?'))} ({md_escape(meta.get('mode', 'single'))} mode), "
        f"budget {md_escape(meta.get('budget', '?'))} queries, seed {md_escape(meta.get('seed', '?'))}",
        "",
        *_space_section(space, levels),
        *_modes_section(landscape, names, examples, top_k),
        *_images_section(images),
        *_load_section(repo_id, list(data_files)),
        *_reading_section(landscape, min_queries, meta),
        *_details_section(meta),
    ]
    content = f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body)
    return DatasetCard(content)


def run_card(store: RunStore, repo_id: str | None = None) -> DatasetCard:
    """The dataset card of a summarized run, naming ``repo_id`` in its loading snippet when given."""
    meta = store.read_meta()
    landscape = read_table(store.root / LANDSCAPE_FILE, str(store.root))
    assets = meta.get("card_assets") or {}
    examples = {int(k): v for k, v in (assets.get("examples") or {}).items()}
    space = ConceptSpace.from_dict(meta["space"])
    return build_dataset_card(meta, landscape, space, examples=examples, images=assets.get("images"), repo_id=repo_id)


def write_card(store: RunStore, repo_id: str | None = None) -> dict[str, Any]:
    """(Re)write the run's ``README.md``, e.g. with the repo ID it was pushed to; return the metadata."""
    run_card(store, repo_id).save(store.root / "README.md")
    return store.read_meta()
