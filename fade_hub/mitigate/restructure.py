"""``mitigate(config)``: from a run and its feedback to a published LoRA adapter with its before/after figures.

The steps, in the order a failure costs least: read the run and the feedback (no model yet), load the base model
(the run's model, or the base of the run's lineage), split the seeds, measure the base model, train, measure the
adapted model, then write the adapter folder in one move and push it when asked.
"""

from __future__ import annotations

import io
import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd
from accelerate import PartialState
from transformers import set_seed
from PIL import Image

from .. import __version__
from ..env import FailureEnv
from ..errors import BadConfig, FadeHubError
from ..assembly import judge_config, label_aliases, quiet_library_bars, recorded_config, target_options
from ..feedback import load as load_feedback
from ..judges import make_judge
from ..jsonio import to_json
from ..notices import library_notices_hidden
from ..paths import LOCAL_PATHS_FILE, local_paths, portable_fields, portable_path, resolve_from
from ..run import Run
from ..staging import OutputClaim
from ..targets import Target, load_target
from ..tasks import get_task
from .base import Mitigator, TrainingExample, TrainingPlan
from .card import build_model_card
from .config import MitigateConfig, check_output
from .evaluate import Measurement, clean_cells, compare, evaluation_cells, measure, split_untargeted
from .outputs import CHANGES_FILE, EXAMPLES_FILE, write_changes, write_eval, write_examples
from .shift_plots import CHANGE_PLOT, LANDSCAPE_PLOT, MODES_PLOT, change_plot, landscape_plot, modes_plot
from .seeds import check_region_classes, split_seeds
from .selection import Selection, from_confirmed, from_feedback

logger = logging.getLogger(__name__)


@dataclass
class Mitigation:
    """A finished mitigation: the adapter folder, its figures, and where it was pushed."""

    path: Path
    figures: dict[str, Any]
    url: str | None = None


def lineage(run: Run) -> dict[str, Any]:
    """The base model, its commit and the runs whose feedback counts: from the run's lineage, or the run itself."""
    found = dict(run.meta.get("lineage") or {})
    return {
        "base_model": found.get("base_model") or run.meta["model_id"],
        "base_commit": found.get("base_commit") if found else run.meta.get("model_commit_sha"),
        "run_ids": [*found.get("run_ids", []), run.run_id],
        "run_sources": {**{key: resolve_from(spec, run.path) if run.path else spec
                           for key, spec in found.get("run_sources", {}).items()}, run.run_id: run.spec},
    }


def region_tables(run: Run, sources: dict[str, str]) -> Callable[[str], pd.DataFrame | None]:
    """``run_id -> regions table`` for the runs of a lineage (the run's own, the others opened from ``sources``); None,
    with a warning, for a run that cannot be read here."""
    opened: dict[str, Run] = {run.run_id: run}

    def table(run_id: str) -> pd.DataFrame | None:
        try:
            if run_id not in opened:
                opened[run_id] = Run.open(sources[run_id])
            return opened[run_id].regions
        except (KeyError, FadeHubError) as err:
            logger.warning("cannot read run %s for the regions its feedback names (%s); those verdicts are left out",
                           run_id, err)
            return None

    return table


def _selection(run: Run, config: MitigateConfig, origin: dict[str, Any]) -> Selection:
    if config.modes == "confirmed":
        return from_confirmed(run)
    records = [record for source in config.feedback for record in load_feedback(source).resolved()]
    selection = from_feedback(records, origin["run_ids"], region_tables(run, origin["run_sources"]))
    cells = set(range(len(run.landscape)))
    unknown = [cell for cell in selection.targeted if cell not in cells]
    if unknown:
        raise BadConfig(f"the feedback targets cell {unknown[0]}, which run {run.run_id}'s space does not have")
    if not selection.targeted and all(fix.run_id == run.run_id and run.example(fix.query_id) is None
                                      for fix in selection.corrections):
        named = ", ".join(f"q{fix.query_id}" for fix in selection.corrections[:3])
        raise BadConfig(f"nothing to train on: the feedback marks no mode fix, and its corrections ({named}) name no "
                        f"failing example of run {run.run_id}; correct examples the feedback Space shows")
    return selection


def _corrections(selection: Selection, sources: dict[str, str],
                 target: Target) -> tuple[list[TrainingExample], set[int]]:
    """The agreed corrections as (input, answer) pairs, read from the failing examples of their runs, and the cells of
    those examples."""
    runs: dict[str, Run] = {}
    examples, cells = [], set()
    labels = set((target.id2label or {}).values())
    images = get_task(target.task).correction == "image"
    for correction in selection.corrections:
        if images and correction.answer != "accept":
            logger.info("q%d of run %s was rejected: left out of training", correction.query_id, correction.run_id)
            continue
        try:
            if correction.run_id not in runs:
                runs[correction.run_id] = Run.open(sources[correction.run_id])
            run = runs[correction.run_id]
        except (KeyError, FadeHubError) as err:
            logger.warning("cannot read run %s for its corrections (%s); they are left out", correction.run_id, err)
            continue
        example = run.example(correction.query_id)
        if example is None or (labels and correction.answer not in labels) or not correction.answer.strip():
            logger.warning("correction of q%d on run %s does not fit (no such failure, not a label, or empty); left "
                           "out", correction.query_id, correction.run_id)
            continue
        picture = Image.open(io.BytesIO(example.image)).convert("RGB") if example.image else None
        cells.add(example.action_id)
        if not images:
            examples.append(TrainingExample(picture or example.input, correction.answer, example.output))
        elif picture is not None:  # an accepted generated image: a (prompt, image) pair
            examples.append(TrainingExample(example.input, correction.answer, image=picture))
        else:
            logger.warning("q%d of run %s was accepted but the run holds no image of it; left out",
                           correction.query_id, correction.run_id)
    return examples, cells


@dataclass
class Setup:
    """Everything a mitigation reads before it trains: the run, what to fade, the base model, judge and seeds."""

    run: Run
    origin: dict[str, Any]
    selection: Selection
    target: Target
    eval_env: FailureEnv
    train_env: FailureEnv
    eval_source: str


def prepare(config: MitigateConfig) -> Setup:
    """Read the run and the feedback (no model yet), then load the base model, its judge and the seed split."""
    run = Run.open(config.run)
    origin = lineage(run)
    selection = _selection(run, config, origin)
    explore = recorded_config(run)
    # the model answers as it did when explored: same generation settings, chat template and system prompt
    target = load_target(origin["base_model"], **{
        **target_options(explore), "task": run.task, "revision": origin["base_commit"], "device": config.device,
        "trust_remote_code": config.trust_remote_code})
    space = run.space
    space.import_user_ops(allowed=config.trust_remote_code or explore.user_code_allowed)
    judge = make_judge(run.task, judge_config(explore), target, allow_user_code=explore.user_code_allowed)
    seeds = split_seeds(run, config, target)
    check_region_classes(selection.regions, seeds.eval, seeds.eval_source)
    aliases = label_aliases(explore) if explore.label_map and Path(explore.label_map).is_file() else None
    envs = [FailureEnv(target, judge, space, part, seed=explore.seed, label_aliases=aliases)
            for part in (seeds.eval, seeds.train)]
    unjudged = [cell for cell in selection.targeted if not envs[0].expectation(cell).judged]
    if unjudged:
        raise BadConfig(
            f"cell {unjudged[0]} is not judged (an op without an automatic expectation); it cannot be faded"
        )
    return Setup(run, origin, selection, target, envs[0], envs[1], seeds.eval_source)


# the fields of fade_eval.json that may name a local path: published relative to the adapter folder (or as
# ``local:NAME``), their absolute paths kept in the folder's never-pushed .local_paths.json
PATH_FIELDS = ("base_model", "failures", "eval_seeds.source")


def published_figures(figures: dict[str, Any], folder: Path) -> dict[str, Any]:
    """``figures`` with every local path made relative to the adapter folder (or ``local:NAME``): none is published."""
    moved = portable_fields(figures, PATH_FIELDS, folder)
    feedback = moved["feedback"]
    moved["feedback"] = {**feedback, "sources": [portable_path(source, folder) for source in feedback["sources"]]}
    moved["lineage_sources"] = {run: portable_path(spec, folder) for run, spec in moved["lineage_sources"].items()}
    return moved


def _write_variant(claim: OutputClaim, mitigator: Mitigator, figures: dict[str, Any], env: FailureEnv,
                   before: Measurement, after: Measurement, changes: pd.DataFrame) -> None:
    """Write the adapter folder in the staging folder and move it into place in one step.

    ``figures`` name local paths as they load here; the files name them portably (``published_figures``), except
    peft's ``adapter_config.json``, whose base model stock peft loads from this folder (``push_adapter`` publishes
    the portable name).
    """
    folder = claim.path("adapter")
    folder.mkdir()
    published = published_figures(figures, claim.output)
    mitigator.save(folder, figures["base_model"], figures["base_commit"])
    (folder / LOCAL_PATHS_FILE).write_text(to_json(local_paths(figures, PATH_FIELDS), indent=2) + "\n",
                                           encoding="utf-8")
    write_eval(folder, published)
    write_examples(folder, env, before, after)
    write_changes(folder, changes)
    change_plot(folder, env, changes)
    modes_plot(folder, published)
    landscape_plot(folder, env, before, after)
    build_model_card(published).save(folder / "README.md")
    claim.publish(folder)


def mitigate(config: MitigateConfig) -> Mitigation:
    """Train, measure and write (and push, when asked) a LoRA adapter that fades the run's targeted regions and
    cells."""
    config.validate()
    started = time.perf_counter()
    quiet_library_bars(config.show_progress)  # mitigate shows its own bars; the Hub's too unless --no-progress
    main = PartialState().is_main_process  # under `accelerate launch`, the other processes only train
    with OutputClaim(config.output_dir, "mitigate") if main else nullcontext() as claim:
        if main:
            check_output(config.output_dir)  # again, now that no other mitigate can write there
        figures = _mitigate(config, claim, main, started)
    result = Mitigation(config.output_dir, figures)
    if figures and config.push_to_hub:
        from .publish import push_adapter

        result.url = push_adapter(config.output_dir, config.push_to_hub, private=config.private)
    return result


def _mitigate(config: MitigateConfig, claim: OutputClaim | None, main: bool, started: float) -> dict[str, Any]:
    """The steps of ``mitigate`` while it holds the output; the figures (empty in a worker process)."""
    setup = prepare(config)
    run, origin, selection, env = setup.run, setup.origin, setup.selection, setup.eval_env
    mitigator = get_task(run.task).mitigator_class()(setup.target, config)
    mitigator.check()  # before the first model call: what the adapter would adapt exists
    cells = evaluation_cells(env, selection.targeted, selection.judge_errors, config.eval_cells, config.seed)
    corrections, corrected = _corrections(selection, origin["run_sources"], setup.target)
    # before training: the collateral cells are drawn, and never trained on
    collateral, trained = split_untargeted(cells, selection.targeted, config.collateral_share, config.seed,
                                           keep=[*clean_cells(env, cells, selection.targeted), *sorted(corrected)])
    if main:
        before = measure(env, cells, selection.targeted, label="base model", show_progress=config.show_progress)
    plan = TrainingPlan(env=setup.train_env, targeted=selection.targeted, untargeted=trained,
                        seeds=setup.train_env.seeds, corrections=corrections, held_out=collateral)
    with library_notices_hidden():
        set_seed(config.seed)  # the LoRA's first weights are drawn here: the same seed, the same adapter
        mitigator.prepare()
        training = mitigator.train(plan)
    if not main:
        return {}
    after = measure(env, cells, selection.targeted, label="mitigated", show_progress=config.show_progress)
    shift, changes = compare(env, before, after, selection, collateral, seed=config.seed)
    figures = {
        **shift,
        "fade_hub_version": __version__, "run_id": run.run_id, "task": run.task,
        "base_model": origin["base_model"], "base_commit": origin["base_commit"],
        "lineage_run_ids": origin["run_ids"], "lineage_sources": origin["run_sources"],
        "failures": run.spec, "failures_revision": run.revision, "space_fingerprint": run.space.fingerprint(),
        "eval_seeds": {"source": setup.eval_source, "count": len(env.seeds)},
        "feedback": {**selection.summary(), "sources": list(config.feedback)},
        "training": {**training, "train_seeds": len(setup.train_env.seeds), "untargeted_cells": len(trained),
                     "held_out_cells": len(collateral), "collateral_share": config.collateral_share,
                     "seconds": round(time.perf_counter() - started, 1)},
        "plots": {"change_map": CHANGE_PLOT, "modes": MODES_PLOT, "landscape": LANDSCAPE_PLOT},
        "files": {"cell_changes": CHANGES_FILE, "examples": EXAMPLES_FILE},
    }
    _write_variant(claim, mitigator, figures, env, before, after, changes)
    if config.recheck:  # the variant explored afresh and compared with the run (fade_hub.recheck)
        from ..recheck import recheck

        figures["recheck"] = recheck(config, run, recorded_config(run), env.seeds, setup.eval_source)
        write_eval(config.output_dir, published_figures(figures, config.output_dir))
        build_model_card(published_figures(figures, config.output_dir)).save(config.output_dir / "README.md")
    return published_figures(figures, config.output_dir)
