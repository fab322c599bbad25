"""The coverage reward of ``ppo``: train the policy to sample every cell in proportion to its chance of failing,
with a premium on cells whose failures have not been seen yet.

After each batch, a :class:`~fade_hub.explore.failure_model.FailureModel` (per-cell Beta posteriors over a
logistic model of factor levels and pairs of levels, so that evidence is shared between cells with levels
in common) gives ``p_a``, the posterior mean failure rate of each queried cell ``a``. The target of cell
``a`` is

    t_a = p_a * (1 + novelty_bonus / (1 + k_a))

with ``k_a`` its failures before the batch: a count-based novelty premium, largest for a cell that has
never failed, fading as its failures are seen. The training reward of the query is
``entropy_coef * power * log(t_a)``. With grpo's entropy bonus ``-entropy_coef * log pi(a)`` the
objective is ``E_pi[log t^power - log pi]``, a reverse KL whose optimum is ``pi(a) ∝ t_a ** power``: the
policy matches the (sharpened) failure landscape rather than collapsing on its worst cell, which keeps
every mode found in play, and the reward is the model's estimate rather than the single pass / fail, so
it moves as soon as the model has evidence. ``power`` is ``coverage_power`` while the search keeps finding
cells that fail for the first time; after ``quiet_window`` queries without one it rises to
``(1 + growth) * coverage_power`` (the search exploits what it mapped) and falls back as soon as a new
cell fails. Measured on the discovery benchmark (window 100, growth 2): the same coverage and Spearman on
the 1296-cell fixtures, where new cells keep failing, and a higher hit rate on every seed of the
125-cell one, whose failing cells are all found early. With ``quiet_window`` 0 the power instead rises
linearly with the budget spent, and with ``growth`` 0 it is constant (the reward before both).

With ``optimism`` > 0 (``--coverage-optimism``), ``p_a`` is read optimistically as its posterior mean plus
``optimism * (1 - progress)`` posterior standard deviations: a cell with few queries of its own is worth
more than its mean while the budget is young, and the bonus is gone by the last query (measured on the
discovery benchmark: more of the hard fixture's cells mapped and a better Spearman, at a lower hit rate,
so it is off by default).

The model is updated only from the outcomes the querier returns, so a resumed run (whose querier replays
the logged outcomes) rebuilds exactly the same rewards.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .failure_model import FailureModel
from .querier import Outcome

FLOOR = 1e-3  # targets are floored here before the log: a cell never judged impossible


class CoverageReward:
    """The coverage training reward of batches of explore outcomes."""

    def __init__(self, shape: Sequence[int], novelty_bonus: float, power: float, entropy_coef: float,
                 progress: Callable[[], float], contexts: int = 1, growth: float = 0.0,
                 optimism: float = 0.0, quiet_window: int = 0) -> None:
        # the seed's context (its class) is one more factor of the model: modes of one class are learned as such
        self.model = FailureModel(((contexts,) if contexts > 1 else ()) + tuple(shape))
        self.num_cells = int(np.prod(shape))
        self.cell_failures = np.zeros(self.num_cells)
        self.novelty_bonus = float(novelty_bonus)
        self.power = float(power)
        self.growth = float(growth)
        self.optimism = float(optimism)
        self.quiet_window = int(quiet_window)
        self.queries = self.last_new_cell = 0
        # scaled by entropy_coef, the entropy-regularised optimum is pi ∝ target ** power; without an entropy
        # bonus the policy simply climbs to the highest targets
        self.scale = float(entropy_coef) if entropy_coef > 0 else 1.0
        self.progress = progress

    def __call__(self, outcomes: Sequence[Outcome], contexts: Sequence[int] | None = None,
                 exhausted: set[int] = frozenset()) -> list[float]:
        """Count a batch of outcomes (with the index of each query's context), refit, return the training rewards.

        Repeated (cell, seed) pairs are not counted again, and a cell in ``exhausted`` (all its exploration seeds
        asked) is worth the floor: there is nothing left to learn there.
        """
        cells = np.array([o.action_id for o in outcomes], dtype=np.int64)
        ids = cells + self.num_cells * np.asarray(contexts if contexts is not None else np.zeros_like(cells))
        fresh = np.array([o.fresh for o in outcomes], dtype=bool)
        failed = np.array([o.failed_share for o in outcomes], dtype=float) * fresh  # a sampled query: its share
        before = self.cell_failures[cells].copy()  # novelty is per cell, whatever the context
        np.add.at(self.cell_failures, cells, failed)
        self.queries += int(fresh.sum())
        if (before[failed > 0] == 0).any():  # a cell failed for the first time
            self.last_new_cell = self.queries
        self.model.update(ids[fresh], failed[fresh])
        rates = np.where(np.isin(cells, list(exhausted)), 0.0, self.model.rates(ids))
        if self.optimism:  # optimism fades over the budget: map first, exploit last
            optimism = self.optimism * (1.0 - self.progress())
            rates = np.minimum(rates + optimism * self.model.spread(ids), 1.0)
        targets = rates * (1.0 + self.novelty_bonus / (1.0 + before))
        power = self.power * (1.0 + self.growth * self._phase())
        return (self.scale * power * np.log(targets + FLOOR)).tolist()

    def _phase(self) -> float:
        """How far the power has risen, 0 to 1: with the budget spent, or all at once after a quiet window."""
        if self.quiet_window:
            return float(self.queries - self.last_new_cell >= self.quiet_window)
        return self.progress()
