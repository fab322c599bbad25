"""Re-check after mitigation: explore the mitigated variant afresh, then compare it with the run it fades.

The variant (the adapter folder, loaded as ``fade-hub explore ADAPTER`` loads it, so that its run records the
lineage) is explored with the base run's recorded settings (its concept space, judge, algorithm, budget and
confirmation) and a new random seed, on the mitigation's evaluation seeds: seeds it was never trained on, so that a
region cannot look fixed because the adapter learnt its seeds (the comparison is then on independent seeds). The
run goes beside the adapter folder (``OUTPUT-recheck``), and ``compare`` says which of the base run's failure
regions are fixed, which persist and which are new. With ``--push-to-hub REPO`` the run is pushed as the dataset
``REPO-failures``, which the adapter's card links and names as the re-check's data.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

from .comparison_text import rate_text, region_text, summary_text
from .errors import BadConfig
from .explore.config import ExploreConfig
from .options import MAX_SEED
from .paths import portable_path, public_name
from .region_changes import STATUSES, Comparison, compare_runs
from .region_text import percent
from .run import Run
from .seeds import Seed

logger = logging.getLogger(__name__)

SUFFIX = "-recheck"  # the variant's run folder: the adapter folder's name plus this, beside it
DATASET_SUFFIX = "-failures"  # the variant's run dataset: the adapter repo's name plus this


def recheck_dir(output: str | Path) -> Path:
    """The folder of the variant's run, beside the adapter folder ``output``."""
    output = Path(output)
    return output.parent / f"{output.name}{SUFFIX}"


def check_recheck_output(output: str | Path) -> None:
    """BadConfig, before anything is trained, when the variant's run folder beside ``output`` holds something."""
    folder = recheck_dir(output)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise BadConfig(f"--recheck explores the variant into {folder}, which is not empty; delete it or choose "
                        "another --output")


def recheck_seed(base_seed: int, seed: int) -> int:
    """The re-check's random seed: another than the base run's (its seed + 1 + the mitigation's ``--random-seed``)."""
    return (int(base_seed) + 1 + int(seed)) % (MAX_SEED + 1)


def explore_variant(base: Run, recorded: ExploreConfig, adapter: Path, seeds: list[Seed], source: str, output: Path,
                    *, seed: int, device: str | None = None, show_progress: bool = True) -> Run:
    """Explore the adapter folder ``adapter`` over ``seeds`` as ``base`` was explored (``recorded``: its settings),
    with the random ``seed``."""
    from .assembly import load_model
    from .explore.runner import explore_loaded
    from .store import RunStore

    config = dataclasses.replace(recorded, model=str(adapter), seeds=source, num_seeds=None, seed=seed,
                                 output=str(output), resume=False, push_to_hub=None, show_progress=show_progress,
                                 device=device or recorded.device)
    space = base.space
    space.import_user_ops(allowed=config.user_code_allowed)
    store = RunStore(output)
    store.check_output(False)
    target = load_model(config)
    try:
        if target.batch_pending:
            target.find_batch_size([item.input for item in seeds])
        return explore_loaded(config, store, target, space, seeds, time.perf_counter())
    finally:
        target.close()
        store.release()


def recheck(config: Any, base: Run, recorded: ExploreConfig, seeds: list[Seed], source: str) -> dict[str, Any]:
    """Explore the variant a mitigation (``config``: its ``MitigateConfig``) wrote as ``base`` was explored
    (``recorded``: its exploration settings), compare it with ``base``, push its run when the adapter is pushed; the
    ``recheck`` entry of the adapter's figures."""
    seed = recheck_seed(base.meta.get("seed") or 0, config.seed)
    variant = explore_variant(base, recorded, config.output_dir, seeds, source, recheck_dir(config.output_dir), seed=seed,
                              device=config.device, show_progress=config.show_progress)
    comparison = compare_runs(base, variant)
    dataset, revision = None, None
    if config.push_to_hub:
        from huggingface_hub import HfApi

        from .hub import push_run

        dataset = f"{config.push_to_hub}{DATASET_SUFFIX}"
        push_run(variant.path, dataset, private=config.private)
        revision = HfApi().dataset_info(dataset).sha
    return recheck_figures(comparison, config.output_dir, seed=seed, source=source, count=len(seeds),
                           dataset=dataset, revision=revision)


def recheck_figures(comparison: Comparison, folder: Path, *, seed: int, source: str, count: int,
                    dataset: str | None = None, revision: str | None = None) -> dict[str, Any]:
    """What ``fade_eval.json`` records of a re-check: the variant's run and its seeds (relative to the adapter
    ``folder``, as the adapter's own figures name local paths; the run's dataset when pushed), the counts, the clean
    rates, and every region compared (with its line in words)."""
    document = comparison.to_dict()
    variant = comparison.b
    regions = [{**data, "text": region_text(region)} for data, region in zip(document["regions"], comparison.regions)]
    return {"run": portable_path(str(variant.path), folder), "run_id": variant.run_id, "dataset": dataset,
            "revision": revision, "seed": seed, "seeds": {"source": portable_path(source, folder), "count": count},
            "queries": variant.meta.get("queries"), "counts": document["counts"], "clean": document["clean"],
            "clean_text": f"A {rate_text(comparison.clean, 'before')}, B {rate_text(comparison.clean, 'after')}",
            "regions": regions, "alpha": comparison.alpha}


def recheck_lines(figures: dict[str, Any]) -> list[str]:
    """The re-check in words for the terminal (``mitigate``, ``demo``): counts, then each region by status."""
    recheck = figures.get("recheck")
    if not recheck:
        return []
    lines = [f"re-check: the variant explored afresh (run {recheck['run_id']}, {recheck['queries']} queries on "
             f"{recheck['seeds']['count']} seeds never trained on, seed {recheck['seed']}) and compared with the "
             f"base run (A): {summary_text(recheck['counts'])}"]
    for status in STATUSES:
        side = "b" if status == "new" else "a"
        lines += [f"  {status}: {region['text']}" for region in recheck["regions"]
                  if region["status"] == status and region["side"] == side]
    lines.append(f"  clean failure rate: {recheck['clean_text']}")
    return lines


def _rate_cell(part: dict[str, Any]) -> str:
    """``62% [41, 79] of 16`` from a rate's JSON form."""
    if part.get("rate") is None:
        return f"n/a of {part['seeds']}"
    return f"{percent(part['rate'])} [{100 * part['ci_low']:.0f}, {100 * part['ci_high']:.0f}] of {part['seeds']}"


def _change_cell(change: dict[str, Any]) -> str:
    """``-59 points [-75, -40]`` from a change's JSON form."""
    if change.get("value") is None:
        return "n/a"
    return f"{100 * change['value']:+.0f} points [{100 * change['ci_low']:.0f}, {100 * change['ci_high']:.0f}]"


def recheck_section(figures: dict[str, Any]) -> list[str]:
    """The adapter card's re-check section (Markdown lines; none without a re-check)."""
    from .card import md_escape

    recheck = figures.get("recheck")
    if not recheck:
        return []
    run = recheck.get("dataset")
    where = (f"[{md_escape(run)}](https://huggingface.co/datasets/{run})" if run
             else f"`{md_escape(public_name(recheck['run']))}` (not pushed)")
    counts = recheck["counts"]
    lines = [
        "## Re-check: the variant explored afresh", "",
        f"After training, the variant was explored again with the run's concept space, judge, algorithm and budget, "
        f"a new random seed ({recheck['seed']}) and {recheck['seeds']['count']} seeds it was never trained on "
        f"({md_escape(public_name(recheck['seeds']['source']))}); its run is {where}. Compared with the run "
        f"(paired where they share seeds, independent otherwise; 95% intervals, Holm's adjustment across regions): "
        f"**{summary_text(counts)}**.", "",
        "| region | status | base run | variant | change [95% CI] |", "|---|---|---|---|---|",
    ]
    for region in recheck["regions"]:
        if region["side"] == "b" and region["status"] != "new":
            continue  # a region of the variant that persists is the row of the run's region it overlaps
        lines.append(f"| {md_escape(region['description'])} | {region['status']} | {_rate_cell(region['a'])} | "
                     f"{_rate_cell(region['b'])} | {_change_cell(region['change'])} |")
    clean = recheck["clean"]
    lines.append(f"| *clean inputs* | | {_rate_cell(clean['a'])} | {_rate_cell(clean['b'])} | "
                 f"{_change_cell(clean['change'])} |")
    return lines + [""]
