"""explore(): from a config to a finished run directory — load, explore, confirm, summarize."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import replace
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..env import FailureEnv
from ..errors import BadConfig
from ..judges import JUDGES, Judge, JudgeConfig, make_judge
from ..landscape import LandscapeConfig
from ..options import project
from ..paths import portable_path
from ..perturb import ConceptSpace, load_space
from ..perturb.expect import unresolvable_factors
from ..provenance import publication_meta, seeds_origin
from ..run import Run
from ..seeds import Seed, SeedConfig, default_seeds_for, load_seeds
from ..seeds.labels import read_label_map
from ..store import RunStore
from ..tasks import get_task
from ..usercode import is_user_ref, user_code_record
from ..targets import RemoteConfig, RemoteTarget, Target, load_remote_target, load_target
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


def generation_kwargs(config: ExploreConfig) -> dict[str, Any] | None:
    """The generation settings a config gives the target (None: the target's defaults); ``--sampling`` turns on
    ``do_sample`` with its temperature and top-p."""
    generation: dict[str, Any] = {
        key: value
        for key, value in (("max_new_tokens", config.max_new_tokens), ("num_inference_steps", config.num_inference_steps))
        if value is not None
    }
    if config.sampling:
        generation.update(do_sample=True, temperature=config.temperature, top_p=config.top_p)
    return generation or None


def target_options(config: ExploreConfig) -> dict[str, Any]:
    """The ``load_target`` options of a config besides the model id: how the run loads and prompts the model."""
    return {
        "task": config.task, "revision": config.revision, "device": config.device,
        "trust_remote_code": config.trust_remote_code, "dtype": config.dtype, "batch_size": config.batch_size,
        "generation_kwargs": generation_kwargs(config), "seed": config.seed,
        "system_prompt": config.system_prompt, "raw_prompts": config.raw_prompts,
    }


def load_model(config: ExploreConfig) -> Target:
    """The target a config names: loaded here, or queried at ``--endpoint`` / through ``--provider``."""
    options = target_options(config)
    if not config.is_remote:
        return load_target(config.model, **options)
    local_only = (("--dtype", config.dtype), ("--trust-remote-code", config.trust_remote_code),
                  ("--system-prompt", config.system_prompt), ("--raw-prompts", config.raw_prompts))
    ignored = [flag for flag, value in local_only if value]
    if ignored:
        logger.warning("%s: no effect on a model served elsewhere (the server applies its own chat template; "
                       "see --generation-route)", ", ".join(ignored))
    remote = RemoteConfig(
        endpoint=config.endpoint, provider=config.provider, concurrency=config.concurrency,
        max_retries=config.max_retries, timeout=config.request_timeout, labels=list(config.labels),
        generation_route=config.generation_route, token=config.endpoint_token,
    )  # fmt: skip
    for name in ("trust_remote_code", "dtype", "system_prompt", "raw_prompts"):
        options.pop(name)
    return load_remote_target(config.model, remote, **options)


def load_parts(config: ExploreConfig) -> tuple[Target, ConceptSpace, list[Seed]]:
    """Load the model, the concept space and the seed inputs a config names (``--batch-size auto`` resolved on them)."""
    target = load_model(config)
    space = concept_space(config, target)
    source = config.seeds or default_seeds_for(target.task)
    if source is None:
        raise BadConfig(f"a {target.task} model needs seed inputs: pass --seeds DATASET_ID|PATH")
    seeds = load_seeds(replace(seed_config(config, source), image_side=target.input_side), target.modality,
                       id2label=target.id2label)
    if target.batch_pending:
        target.find_batch_size([seed.input for seed in seeds])
    return target, space, seeds


def seed_config(config: ExploreConfig, source: str, *, split: str | None = None,
                num_seeds: int | None = None) -> SeedConfig:
    """How to read seeds from ``source`` with a config's columns and label map (another split or cap if given)."""
    return project(SeedConfig, config, source=source, config_name=config.dataset_config, split=split or config.split,
                   num_seeds=num_seeds if split else config.num_seeds, revision=None)  # --revision is the model's


def label_aliases(config: ExploreConfig) -> dict[str, list[str]] | None:
    """Other names of the model's labels: the dataset labels a ``--label-map`` sends to each of them."""
    if not config.label_map:
        return None
    aliases: dict[str, list[str]] = {}
    for dataset_label, model_label in read_label_map(config.label_map).items():
        aliases.setdefault(str(model_label), []).append(dataset_label)
    return aliases


def concept_space(config: ExploreConfig, target: Target) -> ConceptSpace:
    """The space a config names, or the task's default one without factors the model's labels cannot judge."""
    space = load_space(config.space or f"builtin:{get_task(target.task).default_space}",
                       allow_user_code=config.user_code_allowed)
    labels = list(target.id2label.values()) if target.id2label else None
    dropped = unresolvable_factors(space, labels, label_aliases(config)) if not config.space else []
    if dropped:
        logger.warning(
            "the default space leaves out %s: it changes the right answer, and the model's labels (%s) are not a "
            "positive/negative pair; to test it, pass --space FILE whose %s factor has expect: {map: {LABEL: LABEL}}",
            ", ".join(dropped), ", ".join(labels or []), dropped[0],
        )
        space = space.without(dropped)
    return space


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
    """The options ``run.json`` records: all but where the output goes and the endpoint's token, the endpoint
    without secrets."""
    options = {k: v for k, v in config.to_dict().items()
               if k not in ("output", "resume", "show_progress", "endpoint_token", "judge_endpoint_token")}  # fmt: skip
    for key in ("endpoint", "judge_endpoint"):
        if options.get(key):
            options[key] = redact_url(options[key])
    return options


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
        _quiet_library_bars()
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
    clean = [s.seed_id for s in [*explore_seeds, *held_out]] if space.modality != "prompt" else []
    announce(plan_calls(budget, confirm_top=config.confirm_top, held_out=len(held_out), clean=len(clean),
                        done=len(replay), references=space.modality == "prompt"))
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
                                       config=LandscapeConfig.from_options(config.to_dict()), random_seed=config.seed,
                                       policy_probs=policy_probs)
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
        from ..judges.agreement import audit_sample

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


def judge_config(config: ExploreConfig) -> JudgeConfig:
    """The judge settings an explore config names: keywords or a regex, a judge kind, or a judge model id."""
    kind = None
    if config.judge_keywords:
        kind = "keywords"
    elif config.judge_regex:
        kind = "regex"
    elif config.judge and config.judge not in JUDGES and not is_user_ref(config.judge):
        kind = "classifier"
    elif config.judge:
        kind = config.judge
    if config.judge_llm or config.judge_endpoint or config.judge_provider:
        kind = "llm"
    return JudgeConfig(
        kind=kind,
        model_id=config.judge if kind == "classifier" else config.clip,
        label=config.judge_label,
        keywords=list(config.judge_keywords),
        regex=config.judge_regex,
        threshold=config.judge_threshold,
        trust_remote_code=config.trust_remote_code,
        llm=config.judge_llm, endpoint=config.judge_endpoint, provider=config.judge_provider,
        endpoint_token=config.judge_endpoint_token, rubric=config.judge_rubric,
        device=config.judge_device or config.device, concurrency=config.concurrency, max_retries=config.max_retries,
        timeout=config.request_timeout,
    )


def _quiet_library_bars() -> None:
    """Hide transformers' and datasets' per-file progress bars; the run shows its own."""
    import datasets
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    datasets.disable_progress_bars()
