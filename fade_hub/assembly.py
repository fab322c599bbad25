"""Assembly: the parts of an exploration built from its settings (a config, or what a run recorded): the target,
the concept space, the seeds, the judge. ``explore`` builds a new run from them; ``mitigate``, ``compare``,
``rejudge`` and the re-check rebuild a recorded run's parts with the same functions (``recorded_config``).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import replace
from typing import Any

from .config.judge import JudgeOptions
from .config.target import RemoteOptions, TargetOptions
from .errors import BadConfig
from .explore.config import ExploreConfig
from .judges import JUDGES, JudgeConfig
from .perturb import ConceptSpace, load_space
from .perturb.expect import unresolvable_factors
from .run import Run
from .seeds import Seed, SeedConfig, default_seeds_for, load_seeds
from .seeds.labels import read_label_map
from .targets import RemoteConfig, Target, load_remote_target, load_target
from .tasks import get_task
from .usercode import is_user_ref

logger = logging.getLogger(__name__)


def target_options(config: ExploreConfig) -> dict[str, Any]:
    """The ``load_target`` options of a config besides the model id: how the run loads and prompts the model."""
    options = config.target
    return {
        "task": options.task, "revision": options.revision, "device": options.device,
        "trust_remote_code": options.trust_remote_code, "dtype": options.dtype, "batch_size": options.batch_size,
        "generation_kwargs": options.generation(), "seed": config.seed,
        "system_prompt": options.system_prompt, "raw_prompts": options.raw_prompts,
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
    remote = RemoteConfig(**dataclasses.asdict(config.remote))
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
    return SeedConfig(**{**dataclasses.asdict(config.inputs), "seeds": source, "split": split or config.split,
                         "num_seeds": num_seeds if split else config.num_seeds})


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
            "positive/negative pair; to test it, pass --concepts FILE whose %s factor has expect: {map: {LABEL: LABEL}}",
            ", ".join(dropped), ", ".join(labels or []), dropped[0],
        )
        space = space.without(dropped)
    return space

def judge_config(config: ExploreConfig) -> JudgeConfig:
    """The judge settings an explore config names: keywords or a regex, a judge kind, or a judge model id; an LLM
    judge served elsewhere is asked as hard as the model (``--concurrency``, ``--max-retries``,
    ``--request-timeout``)."""
    return judge_settings(config.judging, config.remote, config.target)


def judge_settings(options: JudgeOptions, remote: RemoteOptions, target: TargetOptions) -> JudgeConfig:
    """The judge settings ``options`` name, a served LLM judge asked as hard as ``remote`` says, a local one on
    ``target``'s device unless ``--judge-device`` says otherwise."""
    kind = None
    if options.judge_keywords:
        kind = "keywords"
    elif options.judge_regex:
        kind = "regex"
    elif options.judge and options.judge not in JUDGES and not is_user_ref(options.judge):
        kind = "classifier"
    elif options.judge:
        kind = options.judge
    if options.judge_llm or options.judge_endpoint or options.judge_provider:
        kind = "llm"
    return JudgeConfig(
        kind=kind,
        model_id=options.judge if kind == "classifier" else options.clip,
        label=options.judge_label,
        keywords=list(options.judge_keywords),
        regex=options.judge_regex,
        threshold=options.judge_threshold,
        llm=options.judge_llm, rubric=options.judge_rubric,
        loading=TargetOptions(device=options.judge_device or target.device, trust_remote_code=target.trust_remote_code),
        served=RemoteOptions(endpoint=options.judge_endpoint, provider=options.judge_provider,
                             endpoint_token=options.judge_endpoint_token, concurrency=remote.concurrency,
                             max_retries=remote.max_retries, request_timeout=remote.request_timeout),
    )


def quiet_library_bars(show_progress: bool = True) -> None:
    """Hide transformers' and datasets' per-file progress bars (the run shows its own), and huggingface_hub's
    download and upload bars too unless ``show_progress``."""
    import datasets
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    if not show_progress:
        disable_progress_bars()


def recorded_config(run: Run) -> ExploreConfig:
    """The exploration settings a run recorded, as a tree or flat (runs written before the tree); options a newer
    fade-hub added take their defaults."""
    return ExploreConfig.from_recorded(run.meta.get("config") or {}, model=str(run.meta.get("model_id", "")))
