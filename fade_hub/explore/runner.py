"""explore(): from a config to a finished run directory — load, explore, confirm, summarize."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import replace
from typing import Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..assembly import judge_config, label_aliases, load_parts, quiet_library_bars
from ..env import FailureEnv
from ..errors import BadConfig
from ..judges import Judge, make_judge
from ..landscape import LandscapeConfig
from ..paths import portable_path
from ..perturb import ConceptSpace
from ..provenance import publication_meta, seeds_origin
from ..run import Run
from ..seeds import Seed, default_seeds_for
from ..store import RunStore
from ..usercode import is_user_ref, user_code_record
from ..targets import RemoteTarget, Target
from ..redact import redact_url
from .baselines import grid_size
from .budget import announce, plan_calls
from .config import GRID_LIMIT, ExploreConfig
from .confirm import confirm_regions, split_holdout
from .convergence import Convergence
from .precheck import check_inputs
from .querier import Querier
from .registry import EXPLORERS

logger = logging.getLogger(__name__)

DEFAULT_BUDGET = 500
VERSIONED_PACKAGES = (
    "torch", "transformers", "diffusers", "peft", "trl", "datasets", "huggingface_hub", "gymnasium",
)


def package_versions() -> dict[str, str]:
    """Versions of the libraries a run depends on."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"fade-hub": __version__}
    for name in VERSIONED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found



def run_meta(config: ExploreConfig, target: Target, space: ConceptSpace, budget: int, run_id: str) -> dict:
    """The metadata written to ``run.json`` when a run starts."""
    return {
        "run_id": run_id,
        "model_id": config.model,
        "model_revision": config.revision,
        "model_commit_sha": target.commit_sha,
        **served_by(target),
        "task": target.task,
        "target": target.describe(),
        "space": space.to_dict(),
        "space_name": space.name,
        "space_fingerprint": space.fingerprint(),
        "seeds": {
            "source": config.seeds or default_seeds_for(target.task),
            "split": config.split,
            "num_seeds": config.num_seeds,
            "holdout": config.holdout,
        },
        "algorithm": config.algorithm,
        "mode": config.mode,
        "budget": budget,
        "seed": config.seed,
        "config": recorded_options(config),
        "fade_hub_version": __version__,
        "versions": package_versions(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def recorded_options(config: ExploreConfig) -> dict:
    """The options ``run.json`` records, as the config's tree: all but where the output goes and the tokens, the
    endpoints without secrets."""
    tree = config.to_dict()
    for section, name in (("run", "output"), ("run", "resume"), ("run", "show_progress"),
                          ("remote", "endpoint_token"), ("judging", "judge_endpoint_token")):
        del tree[section][name]
    for section, name in (("remote", "endpoint"), ("judging", "judge_endpoint")):
        if tree[section][name]:
            tree[section][name] = redact_url(tree[section][name])
    return tree


def served_by(target: Target) -> dict:
    """``run.json``'s top-level ``endpoint`` and ``provider`` of a remote target (empty for a local one)."""
    described = target.describe()
    return {key: described[key] for key in ("endpoint", "provider") if described.get(key)}


def add_usage(store: RunStore, target: Target | Judge, key: str = "usage") -> None:
    """Add what a remote target (or a judge, under ``judge_usage``) used since the last call to the run's totals
    (kept across --resume); nothing when this process did not change the run (a refused resume leaves ``run.json``
    as it was)."""
    if not (isinstance(target, (RemoteTarget, Judge))) or not store.writing:
        return
    used = target.take_usage()
    if not any(used.values()):
        return
    totals = dict(store.read_meta().get(key) or {})
    for name, value in used.items():
        totals[name] = int(totals.get(name, 0)) + value
    store.update_meta(**{key: totals})


def explore(config: ExploreConfig) -> Run:
    """Run an exploration end to end and leave a complete run directory behind.

    The run folder is held by this process (``RunStore.hold``) while it writes: a resumed run from the start,
    before the model loads, so that a second process on it stops at once; a new one from its creation (before
    which nothing is written, so that a refused run leaves no folder behind).
    """
    config.validate()
    started = time.perf_counter()
    store = RunStore(config.run_dir)
    store.check_output(config.resume)
    check_inputs(config)
    try:
        if config.resume:
            store.hold()
        quiet_library_bars(config.show_progress)
        target, space, seeds = load_parts(config)
        try:
            return explore_loaded(config, store, target, space, seeds, started)
        finally:
            add_usage(store, target)
            target.close()
    finally:
        store.release()


def explore_loaded(
    config: ExploreConfig, store: RunStore, target: Target, space: ConceptSpace, seeds: list[Seed], started: float
) -> Run:
    """The run once its parts are loaded: judge, explore, confirm, summarize."""
    explore_seeds, held_out = split_holdout(seeds, fraction=config.holdout if config.confirm_top else 0.0,
                                            minimum=config.confirm_seeds if config.confirm_top else 0,
                                            random_seed=config.seed)
    budget = resolve_budget(config, space, explore_seeds)
    judge = make_judge(target.task, judge_config(config), target, allow_user_code=config.user_code_allowed)
    env = FailureEnv(
        target, judge, space, seeds,
        mode=config.mode, max_steps=config.max_steps, step_penalty=config.step_penalty,
        severity_weight=config.severity_weight, seed=config.seed, label_aliases=label_aliases(config),
    )
    run_id = store.read_meta()["run_id"] if config.resume else uuid.uuid4().hex[:12]
    meta = run_meta(config, target, space, budget, run_id)
    meta["judge"] = judge.describe()
    if target.lineage:
        sources = {run: portable_path(spec, store.root) for run, spec in target.lineage["run_sources"].items()}
        meta["lineage"] = {**target.lineage, "run_sources": sources}  # local runs relative to this run
    user_refs = space.user_refs + ([config.judge] if is_user_ref(config.judge) else [])
    if user_refs:
        meta["user_code"] = [user_code_record(ref) for ref in user_refs]
    meta["seeds"].update(explore=len(explore_seeds), held_out=len(held_out))
    meta.update(publication_meta(getattr(target, "origin", None), seeds_origin(meta["seeds"]["source"])))
    store.hold()  # a new run's folder: from its creation on (another process may be starting a run there too)
    store.create(meta, resume=config.resume)
    replay = store.read_queries() if config.resume else []
    # templates have no unperturbed form: their baseline is the other cells
    clean = [s.seed_id for s in [*explore_seeds, *held_out]] if space.inputs.clean_input else []
    announce(plan_calls(budget, confirm_top=config.confirm_top, held_out=len(held_out), clean=len(clean),
                        done=len(replay), references=not space.inputs.clean_input))
    loaded = time.perf_counter()
    querier = Querier(env, store, run_id=run_id, budget=budget, replay=replay, show_progress=config.show_progress,
                      pool=explore_seeds, random_seed=config.seed, stop=Convergence.from_config(config, space),
                      samples_per_query=config.samples_per_query)
    try:
        try:
            if clean:
                querier.query_clean(clean)
            # explorers batch their queries by the batch size the target settled on (for ``auto``)
            policy_probs = run_algorithm(replace(config, batch_size=target.batch_size), querier, explore_seeds, store)
        finally:
            querier.close()
        explored = time.perf_counter()
        converged = querier.stop.note(querier.spent, budget) if querier.stop is not None else None
        if converged:
            store.update_meta(converged=converged)
        confirmation = confirm_regions(querier, held_out, top=config.confirm_top,
                                       config=LandscapeConfig.from_options(config.flat()), random_seed=config.seed,
                                       policy_probs=policy_probs)
    except KeyboardInterrupt:  # outside a batch's collection (an explorer choosing): keep what is in flight
        querier.keep_in_flight()
        raise
    finally:
        add_usage(store, judge, "judge_usage")
        judge.close()
    from ..summarize import summarize

    confirmed = time.perf_counter()
    if confirmation is not None:
        store.update_meta(confirmation=confirmation.to_dict())
    if querier.repeated:
        store.update_meta(repeated_pairs=querier.repeated)
    if config.judge_audit:
        from ..agreement import audit_sample

        store.update_meta(judge_audit=audit_sample(pd.DataFrame(store.read_queries()), config.judge_audit, config.seed))
    store.update_meta(
        status="finished",
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        timings={
            "load_s": round(loaded - started, 2),
            "explore_s": round(explored - loaded, 2),
            "confirm_s": round(confirmed - explored, 2),
        },
    )
    add_usage(store, target)  # before the card is written, which shows the totals
    summarize(store)
    return Run.open(store.root)


def resolve_budget(config: ExploreConfig, space: ConceptSpace, explore_seeds: Sequence[Seed]) -> int:
    """The explore budget: the user's, or the grid's size for ``grid``, or the default."""
    if config.algorithm != "grid":
        return config.budget or DEFAULT_BUDGET
    needed = grid_size(space.num_cells, len(explore_seeds))
    if needed > GRID_LIMIT and not config.force:
        raise BadConfig(
            f"grid needs {needed} queries ({space.num_cells} cells x {len(explore_seeds)} seeds), over the "
            f"{GRID_LIMIT} limit; use a smaller space or fewer --num-seeds, or pass --force"
        )
    if config.budget is not None and config.budget < needed and not config.force:
        raise BadConfig(
            f"grid needs {needed} queries but --budget is {config.budget}; raise the budget, drop it, or pass --force to cut the grid"
        )
    return min(config.budget, needed) if config.budget else needed


def run_algorithm(config: ExploreConfig, querier: Querier, seeds: list[Seed], store: RunStore) -> np.ndarray | None:
    """Run the chosen explorer; return the policy's cell probabilities when it has one."""
    return EXPLORERS[config.algorithm].load()(config, querier, seeds, store)
