"""The ``regions`` reward of ``ppo`` (the default): pay for information about failure regions, not for failures alone.

A region is found when its boundary is known, not when every one of its cells has failed once. After each batch the
:class:`~fade_hub.explore.belief.Belief` (the shared failure model over (class, cell) pairs and the candidate regions
the scan finds in the counts) gives every pair ``a`` its posterior mean failure rate ``m_a`` and standard deviation
``s_a``, and two values:

* **discovery**, a failure where the model is unsure: ``d_a = min(1, m_a + kappa * s_a) * (1 - m_a)``, the
  (optimistic) chance that the query fails times how much that failure would surprise the model. It is highest
  where a failure is plausible and not yet expected (cells sharing levels with failures seen, cells with few seeds
  of their own), and low both where the model knows the pair fails and where it knows it does not;
* **boundary**, a query that decides where a candidate region ends: ``b_a = m_a * (1 - m_a)`` (the variance of
  the query's outcome under the model) for the pairs inside a candidate region or on its boundary (one step
  outside it on a factor it constrains, see ``belief.py``), 0 elsewhere. A boundary the model already knows not
  to fail, or an inside it knows to fail, is worth little; one it cannot yet tell is worth most.

A pair that a candidate region claims (inside it) but that no seed has asked is worth the most a query's outcome can
be, ``b_a = 1/4`` (``UNASKED``), whatever the model's mean there. The scan leaves a factor unconstrained when its
other levels were never asked (the region's score is the same with them or without them, and the simpler region
wins), and the failure model, whose main effects and pairwise interactions cannot hold a region of three factors
and a class, often expects such a pair to pass: valued by ``m_a * (1 - m_a)`` it was never asked, and the region
stayed as wide as its unasked cells (shapes-hard's ``bright-vivid-noisy-triangles`` reported at any noise level).
Only asking decides whether the region reaches the pair. (Through the replay of ``benchmarks/discovery_ideal.py``,
seeds 0-23: every mode found on 11 of 24 seeds of shapes-hard against 4 with the model's mean, on 10 against 4 of
text; on shapes-mixed, whose weak mode no replay finds, ``tilted-and-dark`` on 18 against 9.)

Both are what one more seed of the pair would *teach*, so both are scaled by ``u_a = (strength + 1) / (strength + 1
+ n_a)``, the share of the pair's posterior variance left after its own ``n_a`` seeds (``strength``: the failure
model's prior pseudo-seeds; 1 for a pair never asked). The variance of an outcome does not fall with data: a pair
failing half the time keeps ``m_a * (1 - m_a) = 0.25`` however often it is asked, and without ``u_a`` the search
poured a quarter to a third of its budget into the few pairs that fail sometimes (shapes-hard: the 141 pairs of 3888
failing 15 to 85 % of the time took 250 to 320 of 1000 queries over seeds 0-4; 170 to 260 with ``u_a``).

The value of a pair is ``v_a = u_a * ((1 - w) * d_a + w * b_a)`` with the weight ``w`` scheduled over the budget:
linear from ``boundary_weight_start`` at the first query to ``boundary_weight_end`` at the last (defaults 0.6 to 0.9):
the search looks for regions all along, and more and more settles the ones it found. (Measured on the discovery
benchmark's fixtures through a replay of their grids: a boundary weight of 0.6 to 0.9 found every region sooner
than 0.1 to 0.5 or 0.3 to 0.8; boundaries decide whether the scan reports a region exactly.) Pairs whose exploration seeds are
all asked are worth nothing (``exhausted``).

The reward is the model's, so it extends to the policy's completions that are not asked of the model (model-based
RL, as in Dyna): of each group of ``num_generations`` completions only ``queried_per_group`` are asked, and every
one is scored from the belief updated with those answers, so that the group-relative advantage compares many
cells for the price of a few queries. As with the coverage reward, the training reward of a query at pair ``a`` is ``entropy_coef * power * log(v_a +
FLOOR)``; with grpo's entropy bonus the policy's optimum is ``pi(a | class) ∝ v_a ** power``: it samples each class's
cells in proportion to what they would teach about the regions, and keeps sampling all of them. The belief is
updated with the batch's outcomes before its rewards are computed, so a failure pays at once: the pair's (and its
neighbours') values move with it. The belief is built only from the outcomes the querier returns, so a resumed run
rebuilds exactly the same rewards.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .belief import Belief
from .querier import Outcome

FLOOR = 1e-3  # values are floored here before the log: no pair is ever worth nothing to the policy
KAPPA = 1.0  # posterior standard deviations of optimism in the discovery value
UNASKED = 0.25  # the boundary value of a claimed pair no seed has asked: the largest outcome variance


class RegionReward:
    """The ``regions`` training reward of batches of explore outcomes (see module doc)."""

    def __init__(self, belief: Belief, *, power: float, entropy_coef: float, progress: Callable[[], float],
                 start: float = 0.6, end: float = 0.9, kappa: float = KAPPA) -> None:
        self.belief = belief
        self.power = float(power)
        self.start, self.end, self.kappa = float(start), float(end), float(kappa)
        self.scale = float(entropy_coef) if entropy_coef > 0 else 1.0
        self.progress = progress

    def weight(self) -> float:
        """The boundary weight ``w`` now: linear in the share of the budget spent."""
        return self.start + (self.end - self.start) * min(max(self.progress(), 0.0), 1.0)

    def values(self, exhausted: set[int] = frozenset()) -> np.ndarray:
        """The value ``v`` of every (class, cell) pair now, shaped (classes, cells)."""
        model = self.belief.model
        mean, spread = model.all_rates(), model.all_spread()
        seeds = model.queries.reshape(mean.shape)
        unknown = (model.strength + 1.0) / (model.strength + 1.0 + seeds)
        discovery = np.minimum(mean + self.kappa * spread, 1.0) * (1.0 - mean) * unknown
        settle = np.where(self.belief.inside & (seeds == 0), UNASKED, mean * (1.0 - mean))
        boundary = settle * unknown * (self.belief.inside | self.belief.boundary)
        w = self.weight()
        value = (1.0 - w) * discovery + w * boundary
        if exhausted:
            value[:, sorted(exhausted)] = 0.0
        return value

    def __call__(self, outcomes: Sequence[Outcome], exhausted: set[int] = frozenset()) -> list[float]:
        """Count a batch of outcomes, update the belief, return the training rewards."""
        self.belief.update(outcomes)
        return self._reward(self.values(exhausted).reshape(-1)[self.belief.pair_ids(outcomes)])

    def imagined(self, cells: Sequence[int], contexts: Sequence[str | None],
                 exhausted: set[int] = frozenset()) -> list[float]:
        """The training rewards of cells not asked (the policy's other completions), from the values now: of the
        seed class a context names, the mean over the classes for no context."""
        values = self.values(exhausted)
        classes = self.belief.class_index(contexts)
        known = np.array([c is not None for c in contexts])
        value = np.where(known, values[classes, cells], values.mean(axis=0)[np.asarray(cells)])
        return self._reward(value)

    def _reward(self, value: np.ndarray) -> list[float]:
        return (self.scale * self.power * np.log(value + FLOOR)).tolist()
