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

from .characterize import characterize_run
from .errors import BadConfig
from .feedback.variants import published_for
from .landscape import cell_label, count_text, factor_levels, failure_modes, held_out_text, is_mode, seed_counts
from .perturb.concepts import ConceptSpace
from .provenance import license_text
from .region_text import class_text, excess_text, figures_text, percent, test_text, verdict_text
from .run import read_table
from .store import DATA_FILES, LANDSCAPE_FILE, REGIONS_FILE, RunStore
from .tasks import TASKS
from .options import recorded_options

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


def code_span(text: Any) -> str:
    """Text as a Markdown code span: shown verbatim (no entities), on one line, without backticks to break out."""
    return "`" + " ".join(str(text).replace("`", "'").split()) + "`"


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


def _summary(meta: dict, landscape: pd.DataFrame, regions: pd.DataFrame, space_name: str, names: list[str]) -> str:
    commit = str(meta.get("model_commit_sha") or meta.get("model_revision") or "local")[:7]
    queries = int(meta.get("queries") or 0)
    failing = int((landscape["failures"] > 0).sum())
    modes = int(regions["is_mode"].sum()) if len(regions) else 0
    return (
        f"fade-hub probed {_model_link(str(meta.get('model_id', 'unknown')))}@{md_escape(commit)} with {queries} queries "
        f"({md_escape(meta.get('algorithm', '?'))}, budget {md_escape(meta.get('budget', '?'))}, "
        f"seed {md_escape(meta.get('seed', '?'))}) over {md_escape(space_name)} ({md_escape(', '.join(names))}): "
        f"seeds failed in {failing} of {len(landscape)} cells, and {modes} failure region{'s' if modes != 1 else ''} "
        f"fail{'s' if modes == 1 else ''} more often than {_clean_text(meta)}."
    )


def _regions_section(regions: pd.DataFrame, meta: dict, images: dict[str, str] | None, note: str | None) -> list[str]:
    """The card's lead: each region in words, its figures with intervals, its picture."""
    lines = ["## Failure regions", ""]
    if note:
        lines += [f"*{md_escape(note)}*", ""]
    confirmation = meta.get("confirmation") or {}
    if confirmation:
        tested = len(confirmation.get("regions") or [])
        lines += [f"Regions are found on the exploration's seeds (screening: it chose its cells adaptively, so it "
                  f"only proposes) and {tested} {'was' if tested == 1 else 'were'} then tested on "
                  f"{len(confirmation.get('held_out') or [])} held-out seeds the search never saw (confirmation "
                  f"decides): {md_escape(test_text(confirmation.get('test', '')))}, Holm-adjusted across regions.", ""]
    else:
        lines += ["Regions are found on the exploration's seeds (screening: it chose its cells adaptively, so it only "
                  "proposes); this run has no held-out confirmation.", ""]
    if regions.empty:
        return lines + ["No region fails more often than the model does on clean inputs.", ""]
    header = ["rank", "region", "failure rate [95% CI]", "excess over clean [95% CI]", "verdict"]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in regions.itertuples():
        lines.append("| " + " | ".join([str(int(row.rank)), md_escape(row.description), md_escape(figures_text(row)),
                                        md_escape(excess_text(row)), md_escape(verdict_text(row))]) + " |")
    lines.append("")
    for row in regions.itertuples():
        lines += [f"### {int(row.rank)}. {md_escape(row.description)}", ""]
        lines.append(f"- **{md_escape(verdict_text(row).capitalize())}**: {md_escape(figures_text(row))}; "
                     f"excess {md_escape(excess_text(row))}.")
        if row.confirm_test:
            lines.append(f"- Held-out test: p = {row.confirm_p:.2g} (Holm-adjusted {row.confirm_p_holm:.2g}).")
        lines.append(f"- Exploration (screening): {row.failures:g} of {int(row.seeds)} seeds failed "
                     f"({percent(row.failure_rate)} [{100 * row.ci_low:.0f}, {100 * row.ci_high:.0f}]), outside the "
                     f"region {percent(row.outside_rate)}; BH-adjusted p = {row.screen_q:.2g}.")
        if class_text(row):
            lines.append(f"- By seed class in its cells: {md_escape(class_text(row))}.")
        lines.append(f"- {int(row.num_cells)} cells (`region_id` {code_span(row.region_id)}; action ids "
                     f"{md_escape(', '.join(str(c) for c in list(row.cells)[:20]))}{' …' if len(row.cells) > 20 else ''}).")
        image = (images or {}).get(str(row.region_id))
        if image:
            lines += ["", f"![region {int(row.rank)}]({_relative_path(image)})"]
        lines.append("")
    return lines


def _example_cell(value: str | None) -> str:
    if value is None:
        return ""
    if _is_image_path(value):
        return f'<img src="{_relative_path(value)}" alt="example" width="96">'
    return md_escape(value, limit=80)


def _modes_section(landscape: pd.DataFrame, names: list[str], examples: dict[int, str] | None, top_k: int) -> list[str]:
    modes = failure_modes(landscape, top_k)
    lines = ["## Cells (drill-down)", "", "The cells behind the regions: failure-mode cells are screened significant, "
             "or inside a confirmed region.", ""]
    if modes.empty:
        return lines + [f"No cell fails significantly more often than the model does on clean inputs "
                        f"({int(seed_counts(landscape).sum())} explored (cell, seed) pairs).", ""]
    with_policy = bool(modes["policy_prob"].notna().any())
    header = ["rank", "cell", "failure rate [95% CI]", "seeds", "severity", "held-out (drill-down)"]
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
        lines += ["", f"{total - len(modes)} more failure-mode cells are in the `landscape` config."]
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
    unvisited = int((seed_counts(landscape) == 0).sum())
    threshold = f"fewer than {min_queries}" if min_queries is not None else "too few"
    directional = sorted({text for text in landscape.get("expectation", pd.Series(dtype=str)) if text != "invariant"})
    lines = [
        "## How to read this",
        "",
        "- **The seed is the unit of evidence.** A perturbation is seeded by (seed, cell), so asking a deterministic "
        "model the same pair twice gives the same answer: every figure counts a (cell, seed) pair once.",
        "- A **cell** is one combination of factor levels; a **region** is a conjunction over factors (per factor any "
        "level or a set of levels, intervals or tails for numeric factors, optionally some seed classes), the unit a "
        "person would name. Regions are found by Kulldorff's scan statistic on the exploration's seeds, disjoint, each "
        "the simplest that scores near the best.",
        "- Every model fails some inputs anyway: the **clean rate** is "
        f"{_clean_text(meta)}. A region or cell must fail more often than that: its **excess** over the clean rate "
        "comes with Newcombe's 95% interval, and it is a failure mode only when the lower end of that interval is at "
        f"least {md_escape(recorded_options(meta).get('min_excess', 0.05))}.",
        "- **Screening** (exploration): the search chose its cells adaptively, so its one-sided Fisher tests "
        "(Benjamini-Hochberg over the regions, and over the cells) only propose. **Confirmation** decides: each "
        "screened region is asked once per held-out seed the search never saw, one test per region, Holm-adjusted "
        "across regions. Inside a confirmed region its cells are tested on the same held-out answers (drill-down).",
        f"- **Uncertain** cells had {threshold} exploration seeds: read their rates with care. "
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
    regions: pd.DataFrame,
    examples: dict[int, str] | None = None,
    images: dict[str, str] | None = None,
    region_images: dict[str, str] | None = None,
    repo_id: str | None = None,
    top_k: int = 10,
    min_queries: int | None = None,
    regions_note: str | None = None,
    variants: list[str] | None = None,
    judge_section: list[str] | None = None,
) -> DatasetCard:
    """The run's dataset card: YAML configs/tags/task for the Hub and a readable body that leads with the regions."""
    levels = factor_levels(space)
    names = list(levels)
    data_files = dict(meta.get("data_files") or DEFAULT_DATA_FILES)
    _warn_mixed_formats(data_files)
    queries = int(meta.get("queries") or 0)
    data = _card_data(meta, space, queries, data_files)
    space_name = str(meta.get("space_name") or getattr(space, "name", None) or "a custom space")
    model_id = str(meta.get("model_id", "unknown"))
    body = [
        f"# Failure landscape of {md_escape(model_id)}",
        "",
        _summary(meta, landscape, regions, space_name, names),
        "",
        f"- **Model under test:** {_model_link(model_id)}, revision {md_escape(meta.get('model_revision') or 'main')}, "
        f"commit {md_escape(meta.get('model_commit_sha') or 'unknown')}",
        f"- **Task:** {md_escape(meta.get('task', 'unknown'))}",
        f"- **Licence:** {md_escape(license_text(meta))}",
        f"- **Search:** {md_escape(meta.get('algorithm', '?'))} ({md_escape(meta.get('mode', 'single'))} mode), "
        f"budget {md_escape(meta.get('budget', '?'))} queries, seed {md_escape(meta.get('seed', '?'))}",
        "",
        *_regions_section(regions, meta, region_images, regions_note),
        *variants_section(variants or []),
        *(judge_section or []),
        *_space_section(space, levels),
        *_modes_section(landscape, names, examples, top_k),
        *_images_section(images),
        *_load_section(repo_id, list(data_files)),
        *_reading_section(landscape, min_queries, meta),
        *_details_section(meta),
    ]
    content = f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body)
    return DatasetCard(content)


VARIANTS_START, VARIANTS_END = "<!-- fade-hub:variants -->", "<!-- /fade-hub:variants -->"


def variants_section(variants: list[str]) -> list[str]:
    """The card's section listing the mitigated ``variants`` made from the run (adapter repo ids; none without any),
    between two comments that ``fade_hub.variant_links`` replaces when another variant is pushed."""
    if not variants:
        return []
    return [VARIANTS_START, "## Mitigated variants", "",
            "LoRA adapters trained to fade this run's failures (`fade-hub mitigate`); each card shows the failure "
            "rates before and after, with 95% intervals, and the re-check of the variant when there was one:", "",
            *[f"- [{md_escape(repo)}](https://huggingface.co/{repo})" for repo in variants], VARIANTS_END, ""]


OLD_RUN_NOTE = ("This run was recorded before fade-hub reported regions: its regions are computed from its queries "
                "(screening only; its held-out queries were made for cells, not regions).")


def run_card(store: RunStore, repo_id: str | None = None, token: str | None = None,
             feedback: Any = None) -> DatasetCard:
    """The dataset card of a summarized run, naming ``repo_id`` in its loading snippet and listing the mitigated
    variants the Hub knows of when given; with resolved ``feedback`` records, the judge's agreement with the
    reviewers too."""
    meta = store.read_meta()
    landscape = read_table(store.root / LANDSCAPE_FILE, str(store.root))
    note = None
    if (store.root / REGIONS_FILE).exists():
        regions = read_table(store.root / REGIONS_FILE, str(store.root))
    else:  # a run summarized before regions existed
        found = characterize_run(meta, store.read_queries(), store.read_policy())
        landscape, regions, note = found.landscape, found.regions, OLD_RUN_NOTE
    assets = meta.get("card_assets") or {}
    examples = {int(k): v for k, v in (assets.get("examples") or {}).items()}
    space = ConceptSpace.from_dict(meta["space"])
    variants = published_for([str(meta.get("run_id") or "")], token=token) if repo_id else []  # pushed: its variants
    from .judges.report import judge_lines, sampling_lines, samples_per_query

    judged = judge_lines(meta) + (sampling_lines(meta, regions, store.read_queries()) if samples_per_query(meta) > 1 else [])
    if feedback is not None:
        from .agreement import agreement_lines, check_judge

        judged += agreement_lines(check_judge(pd.DataFrame(store.read_queries()), regions, feedback, meta["run_id"]))
    return build_dataset_card(meta, landscape, space, regions, examples=examples, images=assets.get("images"),
                              region_images=assets.get("regions"), repo_id=repo_id, regions_note=note,
                              variants=variants, judge_section=judged)


def write_card(store: RunStore, repo_id: str | None = None, feedback: Any = None) -> dict[str, Any]:
    """(Re)write the run's ``README.md``, e.g. with the repo ID it was pushed to (and the judge's agreement with
    resolved ``feedback`` records); return the metadata."""
    run_card(store, repo_id, feedback=feedback).save(store.root / "README.md")
    return store.read_meta()
