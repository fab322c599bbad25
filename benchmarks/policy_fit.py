"""How closely the ``ppo`` explorer's GRPO-trained policy fits a fixed target, with no model under test.

The ``regions`` reward trains the policy towards ``pi(cell | class) ∝ v ** power`` (``fade_hub.explore.region_reward``).
This script runs ``run_grpo`` alone, with the ``ppo`` explorer's default options, against made-up values ``v`` over a
6 x 6 x 6 x 6 grid and two classes, every completion scored by the values (asked and imagined alike), and prints the
total variation distance between the trained policy and its target, and the policy's mass where the target puts it:

* ``block``: one block of cells per class (36 and 18 cells) worth 0.2, the rest 0.01: a target that factors over the
  concept's factors;
* ``swap``: the same, the two blocks swapping classes halfway through the budget;
* ``scattered``: 50 pairs per class, drawn at random, worth 0.2: a target with no structure over the factors.

    python benchmarks/policy_fit.py [--budget 1000] [--targets block swap scattered]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

SHAPE = (6, 6, 6, 6)
CLASSES = ("A", "B")
HIGH, LOW = 0.2, 0.01
FLOOR = 1e-3  # the reward's floor (region_reward.FLOOR)


def values(target: str, late: bool) -> np.ndarray:
    """The values ``v`` of every (class, cell) pair, shaped (classes, cells); ``late``: after the swap."""
    v = np.full((len(CLASSES), *SHAPE), LOW)
    if target == "scattered":
        rng = np.random.default_rng(5)
        flat = v.reshape(len(CLASSES), -1)
        for k in range(len(CLASSES)):
            flat[k, rng.choice(flat.shape[1], 50, replace=False)] = HIGH
        return flat
    first, second = (1, 0) if target == "swap" and late else (0, 1)
    v[first, 5, :, 5, :] = HIGH  # 36 cells
    v[second, 0, :, 3, :3] = HIGH  # 18 cells
    return v.reshape(len(CLASSES), -1)


def fit(target: str, budget: int) -> list[str]:
    """Train a fresh policy against one target for ``budget`` queries; one line per class."""
    from fade_hub.explore.config import ExploreConfig
    from fade_hub.explore.grpo import GRPOSearchConfig, run_grpo
    from fade_hub.explore.policy import build_policy

    options = ExploreConfig(budget=budget)
    spent = [0]

    def current() -> np.ndarray:
        return values(target, late=spent[0] >= budget // 2)

    def reward(actions: list, contexts: list) -> list[float]:
        cells = [int(np.ravel_multi_index(a, SHAPE)) for a in actions]
        rows = [CLASSES.index(c) for c in contexts]
        return (options.entropy_coef * options.coverage_power * np.log(current()[rows, cells] + FLOOR)).tolist()

    def evaluate(actions: list, contexts: list) -> list[float]:
        spent[0] += len(actions)
        return reward(actions, contexts)

    with tempfile.TemporaryDirectory(prefix="fade-policy-fit-") as tmp:
        policy = build_policy(SHAPE, list(CLASSES), Path(tmp), mode="single", max_steps=1, seed=0)
        run_grpo(policy, list(CLASSES), evaluate, lambda: budget - spent[0], GRPOSearchConfig(ppo=options.ppo), 0,
                 Path(tmp) / "trainer", imagine=reward)
        lines = []
        for k, name in enumerate(CLASSES):
            v = current()[k]
            aim = (v + FLOOR) ** options.coverage_power
            aim /= aim.sum()
            got = policy.cell_probs(name)
            high = v >= HIGH
            distance = 0.5 * np.abs(aim - got).sum()
            lines.append(f"{target:9s} budget {budget:5d} class {name}: total variation {distance:.2f}; "
                         f"mass on the {int(high.sum())} valuable pairs: policy {got[high].sum():.2f}, target "
                         f"{aim[high].sum():.2f}, uniform {high.mean():.3f}")
        return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Fit each target and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=int, default=1000, metavar="N", help="queries per fit (default 1000)")
    parser.add_argument("--targets", nargs="+", choices=("block", "swap", "scattered"),
                        default=["block", "swap", "scattered"], help="targets to fit (default: all three)")
    args = parser.parse_args(argv)
    if args.budget < 64:
        parser.error("--budget must be at least 64 (one generated batch)")
    for target in args.targets:
        print("\n".join(fit(target, args.budget)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
