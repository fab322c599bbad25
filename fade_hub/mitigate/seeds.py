"""The seeds a mitigation trains on and the ones it measures on, kept apart.

Training uses the run's exploration seeds (those its exploration asked) plus any ``--train-seeds``. Evaluation
uses ``--eval-seeds``, else the run's seeds that neither exploration nor confirmation asked: regions were picked
because they failed on the exploration seeds and confirmed on the held-out ones, so measuring on either would
flatter the drop.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadConfig, BadSeeds, HubUnreachable
from ..explore.config import ExploreConfig
from ..explore.runner import seed_config
from ..run import Run
from ..seeds import Seed, load_seeds
from ..targets import Target
from .config import MitigateConfig

logger = logging.getLogger(__name__)


@dataclass
class SeedSplit:
    """Training seeds, evaluation seeds, and where the evaluation seeds came from."""

    train: list[Seed]
    eval: list[Seed]
    eval_source: str


def explore_config(run: Run) -> ExploreConfig:
    """The exploration settings a run recorded (options a newer fade-hub added take their defaults)."""
    known = {field.name for field in dataclasses.fields(ExploreConfig)}
    options = {key: value for key, value in (run.meta.get("config") or {}).items() if key in known}
    return ExploreConfig(**{**options, "model": str(run.meta.get("model_id", ""))})


def _run_seeds(
    run: Run, config: ExploreConfig, target: Target, *, others: bool
) -> tuple[list[Seed], list[Seed]] | None:
    """The run's exploration seeds and its unused held-out seeds, or None when its seed source is gone (said as a
    warning unless ``others``: the user passed seeds of their own to train and evaluate on)."""
    source = (run.meta.get("seeds") or {}).get("source")
    if not source:
        return None
    try:
        seeds = load_seeds(seed_config(config, source), target.modality, id2label=target.id2label)
    except (BadSeeds, HubUnreachable) as err:
        logger.log(logging.INFO if others else logging.WARNING,
                   "cannot read the run's seeds again (%s); only --train-seeds and --eval-seeds are used", err)
        return None
    asked = run.queries.groupby("phase")["seed_id"].agg(lambda ids: set(ids.astype(str)))
    explored, confirmed = asked.get("explore", set()), asked.get("confirm", set())
    return ([seed for seed in seeds if seed.seed_id in explored],
            [seed for seed in seeds if seed.seed_id not in explored | confirmed])


def _extra(config: MitigateConfig, explore: ExploreConfig, source: str, target: Target, cap: int | None,
           tag: str) -> list[Seed]:
    """Seeds of another source, their ids prefixed with ``tag`` so that they never collide with the run's."""
    seeds = load_seeds(seed_config(explore, source, split=config.split, num_seeds=cap), target.modality,
                       id2label=target.id2label)
    return [dataclasses.replace(seed, seed_id=f"{tag}:{seed.seed_id}") for seed in seeds]


def _same_source(a: str, b: str) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve() if Path(a).exists() else a == b


def split_seeds(run: Run, config: MitigateConfig, target: Target) -> SeedSplit:
    """Training and evaluation seeds for a mitigation, disjoint; BadConfig says what to pass when one is missing."""
    explore = explore_config(run)
    found = _run_seeds(run, explore, target, others=bool(config.train_seeds and config.eval_seeds))
    train = list(found[0]) if found else []
    for index, source in enumerate(config.train_seeds):
        train += _extra(config, explore, source, target, None, f"train{index}")
    if not train:
        raise BadConfig(
            f"the seeds of run {run.run_id} cannot be read here; pass --train-seeds SRC with inputs to train on"
        )
    if config.eval_seeds:
        run_source = (run.meta.get("seeds") or {}).get("source") or ""
        used = [src for src in [run_source, *config.train_seeds] if src and _same_source(src, config.eval_seeds)]
        if used:
            raise BadConfig(f"--eval-seeds {config.eval_seeds} is also a training or exploration seed source; "
                            "evaluate on seeds never trained on or explored")
        evaluation = _extra(config, explore, config.eval_seeds, target, config.num_eval_seeds, "eval")
        source = config.eval_seeds
    else:
        evaluation = list(found[1]) if found else []
        source = f"seeds of run {run.run_id} that neither exploration nor confirmation asked"
        if config.num_eval_seeds:
            evaluation = evaluation[: config.num_eval_seeds]
    if not evaluation:
        raise BadConfig(
            f"run {run.run_id} has no seeds left for evaluation (exploration and confirmation asked them all); pass "
            "--eval-seeds SRC with inputs that were never explored or trained on"
        )
    return SeedSplit(train=train, eval=evaluation, eval_source=source)
