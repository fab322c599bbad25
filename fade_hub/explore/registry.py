"""The explorer registry: each search algorithm, the modes it runs in, and the function that runs it.

An explorer is ``run(config, querier, seeds, store) -> cell probabilities | None``: it spends the
querier's budget and returns the policy's probability of every cell when it has a policy. Functions are
named as ``"module:function"`` strings and imported on demand, so that listing the algorithms (``--help``,
config validation) loads no model code. A new algorithm is one entry here plus its function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..tasks import load_object

MODES = ("single", "sequential")


@dataclass(frozen=True)
class ExplorerSpec:
    """One search algorithm: its name, its ``module:function``, the env modes it runs in, a one-line summary,
    and whether it honours ``--stop-when-converged``."""

    name: str
    function: str
    modes: tuple[str, ...]
    summary: str
    stops_early: bool = False

    def load(self) -> Callable[..., Any]:
        """The explorer function."""
        return load_object(self.function)


EXPLORERS: dict[str, ExplorerSpec] = {
    spec.name: spec
    for spec in (
        ExplorerSpec("ppo", "fade_hub.explore.ppo:explore_ppo", MODES,
                     "a policy over the concept space trained with trl's GRPOTrainer (PPO's clipped surrogate)",
                     stops_early=True),
        ExplorerSpec("random", "fade_hub.explore.baselines:explore_random", MODES, "uniform random cells",
                     stops_early=True),
        ExplorerSpec("epsilon-greedy", "fade_hub.explore.baselines:explore_epsilon_greedy", MODES,
                     "the best cell so far, a random one with probability epsilon", stops_early=True),
        ExplorerSpec("bo", "fade_hub.explore.bo:explore_bo", ("single",),
                     "Bayesian optimisation: Thompson sampling from Beta posteriors of each cell's failure rate",
                     stops_early=True),
        ExplorerSpec("covering", "fade_hub.explore.covering:explore_covering", ("single",),
                     "rounds of pairwise covering arrays (every two levels of every two factors met each round)",
                     stops_early=True),
        ExplorerSpec("grid", "fade_hub.explore.baselines:explore_grid", ("single",), "every cell on every seed"),
    )
}
