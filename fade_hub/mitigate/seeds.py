"""The seeds a mitigation trains on and the ones it measures on, kept apart.

Training uses the run's exploration seeds (those its exploration asked) plus any ``--train-seeds``. Evaluation
uses ``--eval-seeds``, else the run's seeds that neither exploration nor confirmation asked: regions were picked
because they failed on the exploration seeds and confirmed on the held-out ones, so measuring on either would
flatter the drop.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadConfig, BadSeeds, HubUnreachable
from ..explore.config import ExploreConfig
from ..assembly import recorded_config, seed_config
from ..run import Run
from ..seeds import Seed, load_seeds
from ..stats import wilson_interval
from ..targets import Target
from .config import MitigateConfig
from .selection import TargetRegion

logger = logging.getLogger(__name__)

ONE_POINT = 0.01  # the smallest change of a rate the evaluation should be able to show


@dataclass
class SeedSplit:
    """Training seeds, evaluation seeds, and where the evaluation seeds came from."""

    train: list[Seed]
    eval: list[Seed]
    eval_source: str


@dataclass
class RunSeeds:
    """The run's seeds by what its queries did with them: explored, used by confirmation, and neither."""

    explored: list[Seed]
    confirmation: list[Seed]
    unused: list[Seed]


def _run_seeds(run: Run, config: ExploreConfig, target: Target, *, others: bool) -> RunSeeds | None:
    """The run's exploration, confirmation and unused held-out seeds, or None when its seed source is gone (said as
    a warning unless ``others``: the user passed seeds of their own to train and evaluate on)."""
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
    return RunSeeds([seed for seed in seeds if seed.seed_id in explored],
                    [seed for seed in seeds if seed.seed_id in confirmed],
                    [seed for seed in seeds if seed.seed_id not in explored | confirmed])


def _extra(config: MitigateConfig, explore: ExploreConfig, source: str, target: Target, cap: int | None,
           tag: str) -> list[Seed]:
    """Seeds of another source, their ids prefixed with ``tag`` so that they never collide with the run's."""
    seeds = load_seeds(seed_config(explore, source, split=config.split, num_seeds=cap), target.modality,
                       id2label=target.id2label)
    return [dataclasses.replace(seed, seed_id=f"{tag}:{seed.seed_id}") for seed in seeds]


def _same_source(a: str, b: str) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve() if Path(a).exists() else a == b


def fingerprint(seed: Seed) -> str:
    """A hash of what a seed is (its image's pixels or its text, and its label), whatever its id, file or source."""
    digest = hashlib.sha256()
    item = seed.input
    if hasattr(item, "tobytes"):  # an image: mode, size and pixels
        digest.update(f"image {item.mode} {item.size}".encode())
        digest.update(item.tobytes())
    else:
        digest.update(f"text {item}".encode())
    digest.update(f"\0context {seed.context}\0label {seed.label_name if seed.label_name is not None else seed.label}"
                  .encode())
    return digest.hexdigest()


def _overlap(evaluation: list[Seed], groups: dict[str, list[Seed]]) -> tuple[set[str], dict[str, int]]:
    """The fingerprints of evaluation seeds that some group also holds, and how many of them each group holds."""
    mine = {fingerprint(seed) for seed in evaluation}
    found: dict[str, int] = {}
    shared: set[str] = set()
    for name, seeds in groups.items():
        common = mine & {fingerprint(seed) for seed in seeds}
        if common:
            found[name] = len(common)
            shared |= common
    return shared, found


def _groups_text(found: dict[str, int]) -> str:
    return ", ".join(f"{count} {name}" for name, count in found.items())


def split_seeds(run: Run, config: MitigateConfig, target: Target) -> SeedSplit:
    """Training and evaluation seeds for a mitigation, disjoint in content; BadConfig says what to pass when one is
    missing, or when ``--eval-seeds`` holds seeds that were explored, confirmed on or trained on."""
    explore = recorded_config(run)
    found = _run_seeds(run, explore, target, others=bool(config.train_seeds and config.eval_seeds))
    train = list(found.explored) if found else []
    extra: list[Seed] = []
    for index, source in enumerate(config.train_seeds):
        extra += _extra(config, explore, source, target, None, f"train{index}")
    train += extra
    if not train:
        raise BadConfig(
            f"the seeds of run {run.run_id} cannot be read here; pass --train-seeds SRC with inputs to train on"
        )
    groups = {"explored by the run": found.explored if found else [],
              "used by its confirmation": found.confirmation if found else [], "in --train-seeds": extra}
    if config.eval_seeds:
        run_source = (run.meta.get("seeds") or {}).get("source") or ""
        used = [src for src in [run_source, *config.train_seeds] if src and _same_source(src, config.eval_seeds)]
        if used:
            raise BadConfig(f"--eval-seeds {config.eval_seeds} is also a training or exploration seed source; "
                            "evaluate on seeds never trained on or explored")
        evaluation = _extra(config, explore, config.eval_seeds, target, config.num_eval_seeds, "eval")
        shared, where = _overlap(evaluation, groups)
        if shared:
            count = sum(fingerprint(seed) in shared for seed in evaluation)
            raise BadConfig(
                f"{count} of the {len(evaluation)} seeds of --eval-seeds {config.eval_seeds} have the same content "
                f"as seeds {_groups_text(where)} (same image or text and label, whatever the file name); evaluate on "
                "seeds never explored, confirmed on or trained on"
            )
        source = config.eval_seeds
    else:
        evaluation = list(found.unused) if found else []
        source = f"seeds of run {run.run_id} that neither exploration nor confirmation asked"
        shared, where = _overlap(evaluation, groups)
        if shared:
            kept = [seed for seed in evaluation if fingerprint(seed) not in shared]
            logger.warning("%d of the run's %d held-out seeds have the same content as seeds %s; they are left out of "
                           "the evaluation", len(evaluation) - len(kept), len(evaluation), _groups_text(where))
            evaluation = kept
        if config.num_eval_seeds:
            evaluation = evaluation[: config.num_eval_seeds]
    if not evaluation:
        raise BadConfig(
            f"run {run.run_id} has no seeds left for evaluation (exploration and confirmation asked them all); pass "
            "--eval-seeds SRC with inputs that were never explored or trained on"
        )
    warn_if_small(len(evaluation), bool(config.eval_seeds))
    return SeedSplit(train=train, eval=evaluation, eval_source=source)


def check_region_classes(regions: list[TargetRegion], evaluation: list[Seed], source: str) -> None:
    """BadConfig when a targeted region holds on seed classes of which the evaluation seeds have none: its before and
    after could not be measured."""
    present = {str(seed.context) for seed in evaluation}
    for region in regions:
        if region.classes and not present & set(region.classes):
            raise BadConfig(
                f"the {len(evaluation)} evaluation seeds ({source}) hold no seed of class {' or '.join(region.classes)}"
                f", where region {region.region_id!r} fails, so its fading could not be measured; pass --eval-seeds "
                "SRC with such seeds, never explored or trained on"
            )


def warn_if_small(count: int, given: bool) -> None:
    """Warn when ``count`` evaluation seeds cannot show a one-point change of a clean rate: the narrowest 95 % interval
    such a rate can have (at 0 failures) is wider than one point."""
    width = wilson_interval(0, count)[1]
    if width <= ONE_POINT:
        return
    needed = next(n for n in range(count, 100_000) if wilson_interval(0, n)[1] <= ONE_POINT)
    advice = "with more seeds" if given else "SRC with seeds never explored or trained on"
    logger.warning("evaluating on %d seeds: a clean rate measured on them has a 95%% interval at least %.0f points "
                   "wide, too wide to show a 1-point change; pass --eval-seeds %s (%d or more)", count, width * 100,
                   advice, needed)
