"""What ppo's reward asks for, without the policy: replay a fixture's grid through the reward with an ideal policy.

``ppo`` trains its policy (trl's ``GRPOTrainer``) towards ``pi(cell | class) ∝ value ** power``, the values of
``fade_hub.explore.region_reward`` (see its module doc). This script leaves the policy out: each query's cell is
drawn exactly from that optimum, and answered from the fixture's grid truth: the seed's own answer at the cell, as
the grid run recorded it. (A model's failures are correlated over a seed's cells: shapes-mixed's
``noisy-small-shapes`` fails on the smallest shapes only, a third of the seeds, wherever the noise is heaviest. Drawn
independently at the grid's rate of each (class, cell) pair instead, the answers told another story: on seeds 0-23
of main's reward, every mode found on 13 / 5 / 7 seeds of shapes-hard / text / shapes-mixed, against 11 / 10 / 0 from
the seeds' own answers; ppo itself found every mode of text on 2 of seeds 0-9 and of shapes-mixed on 1 of 0-4.) It
runs in ppo's batches (``prompts_per_step`` groups of ``queried_per_group`` queries, one class per
group, the classes in turn), on its exploration seeds (those not held out to confirm: each pair at most once per
seed) and through the same belief (the failure model, the candidate regions and the values). After the budget, the
scan of ``fade_hub.regions`` frames the replayed counts (up to ``max_regions`` regions, unscreened and unconfirmed:
an optimistic reading of what a run would report), and ``discovery_metrics.match_regions`` scores them against the
planted modes.

So it measures what the reward and the scan reach when the policy follows the reward perfectly: a mode it finds
and ppo misses is lost to the policy's lag behind its reward; a mode it misses too is lost to the reward (or the
scan). A replay of one seed takes seconds, so a change to the reward or the belief can be tried before ppo runs.
It reads the fixtures and the ground truth that ``discovery.py`` left in ``--cache-dir`` (run that first, with the
same ``--quick`` and ``--train-fixtures``).

    python benchmarks/discovery_ideal.py --cache-dir DIR [--fixtures shapes-hard text] [--seeds 0 1 2 3 4]
                                          [--budget 1000] [--set FIELD=VALUE] [--train-fixtures] [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from discovery import _parse_options
from discovery_fixtures import FIXTURES, GroundTruth, prepare_fixture, measure_ground_truth
from discovery_metrics import match_regions

QUICK_SEEDS_PER_CLASS = 2  # discovery.py --quick's seed inputs per class


class MissingTruth(Exception):
    """The cache holds no grid ground truth for a fixture."""


def replay(truth: GroundTruth, space: Any, config: Any, seed: int) -> dict[str, Any]:
    """One replay of ``config.budget`` queries drawn from the reward's optimum: the planted modes its regions find,
    its false regions and its hit rate."""
    from fade_hub.explore.belief import Belief
    from fade_hub.explore.confirm import split_holdout
    from fade_hub.explore.grpo import GRPOSearchConfig
    from fade_hub.explore.querier import Outcome
    from fade_hub.explore.region_reward import FLOOR, RegionReward
    from fade_hub.landscape import LandscapeConfig
    from fade_hub.seeds.sources import Seed

    seeds = [Seed(seed_id, None, context=label or None) for seed_id, label in sorted(truth.seed_classes.items())]
    explore, _ = split_holdout(seeds, fraction=config.holdout, minimum=config.confirm_seeds, random_seed=seed)
    belief = Belief(space, explore)
    pools = belief.seeds_by_class(explore)
    spent = 0
    reward = RegionReward(belief, power=config.coverage_power, entropy_coef=config.entropy_coef,
                          progress=lambda: spent / config.budget, start=config.boundary_weight_start,
                          end=config.boundary_weight_end)
    group, groups = config.queried_per_group, GRPOSearchConfig().prompts_per_step
    rng = np.random.default_rng([seed, 11])
    used = np.zeros((belief.num_classes, belief.num_cells), dtype=int)
    turn = failures = 0
    while spent < config.budget:
        values = reward.values()
        batch = []
        for g in range(groups):
            c = (turn + g) % belief.num_classes
            open_ = used[c] < len(pools[c])
            weights = np.where(open_, (values[c] + FLOOR) ** config.coverage_power, 0.0)
            if not weights.any() or spent + len(batch) >= config.budget:
                continue
            for cell in rng.choice(belief.num_cells, size=group, p=weights / weights.sum()):
                if used[c, cell] >= len(pools[c]) or spent + len(batch) >= config.budget:
                    continue
                seed_id = pools[c][used[c, cell]]
                failed = bool(truth.seed_failures[seed_id][cell])
                batch.append(Outcome(seed_id, int(cell), failed, 0.0, float(failed)))
                used[c, cell] += 1
                failures += failed
        if not batch:
            break
        turn += groups
        spent += len(batch)
        belief.update(batch)
    k, n = belief.counts()
    scan = LandscapeConfig.from_options(config.flat())  # the reporting scan's settings, as characterize reads them
    found = belief.grid.scan(k, n, max_regions=scan.max_regions, tolerance=scan.simpler_within)
    ids = [belief.grid.region_id(region) for region, _ in found]
    match = match_regions(pd.DataFrame({"region_id": ids}), truth, space)
    return {"found": match["found"], "false": match["false"], "hit_rate": failures / max(spent, 1)}


def fixture_truth(name: str, cache: Path, quick: bool, trained: bool) -> tuple[GroundTruth, Any]:
    """The fixture's grid truth from the cache and its concept space (MissingTruth when discovery.py left none)."""
    from fade_hub.perturb import load_space

    fixture = prepare_fixture(name, cache, QUICK_SEEDS_PER_CLASS if quick else 16, 0, quick, trained)

    def missing() -> Path:
        raise MissingTruth(f"{cache} holds no grid ground truth for {name}; run benchmarks/discovery.py --fixtures "
                           f"{name} --cache-dir {cache}{' --quick' if quick else ''} first")

    return measure_ground_truth(fixture, cache, 0.25, missing), load_space(fixture.space)


def main(argv: Sequence[str] | None = None) -> int:
    """Replay each fixture and seed; print the modes found per seed. Exit 2 on bad input."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", type=Path, required=True, metavar="DIR",
                        help="discovery.py's --cache-dir, holding the fixtures and their grid ground truth")
    parser.add_argument("--fixtures", nargs="+", choices=FIXTURES, default=["shapes-hard", "text"],
                        help="fixtures to replay (default: shapes-hard text)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4], metavar="SEED",
                        help="replay seeds (default: 0 1 2 3 4)")
    parser.add_argument("--budget", type=int, default=1000, metavar="N", help="queries per replay (default 1000)")
    parser.add_argument("--set", dest="options", action="append", default=[], metavar="FIELD=VALUE",
                        help="override an ExploreConfig option of the reward, e.g. --set coverage_power=2 (repeatable)")
    parser.add_argument("--train-fixtures", action="store_true",
                        help="replay the fixtures discovery.py trained here (its --train-fixtures)")
    parser.add_argument("--quick", action="store_true", help="replay discovery.py --quick's fixtures")
    args = parser.parse_args(argv)
    if args.budget < 1:
        parser.error("--budget must be positive")
    from fade_hub.explore.config import ExploreConfig

    config = ExploreConfig(**{**_parse_options(parser, args.options), "budget": args.budget})
    for name in args.fixtures:
        try:
            truth, space = fixture_truth(name, args.cache_dir, args.quick, args.train_fixtures)
        except MissingTruth as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        found = []
        for seed in args.seeds:
            result = replay(truth, space, config, seed)
            found.append(len(result["found"]))
            print(f"{name} seed {seed}: {len(result['found'])} of {len(truth.regions)} modes "
                  f"{result['found']}, {result['false']} false (unscreened), hit rate {result['hit_rate']:.3f}")
        print(f"{name}: modes found per seed {found} (of {len(truth.regions)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
