"""``--stop-when-converged``: end a search early once it stops learning anything new, returning budget to the user.

The search has converged when both hold:

* no new failure mode (a cell failing for the first time) in the last ``convergence_window`` explore queries;
* every failure mode found is settled: it has at least ``LandscapeConfig.min_queries`` explore queries, so
  the landscape does not flag it ``uncertain``.

The state is built only from the outcomes the querier returns, so a resumed run, whose querier replays
the logged outcomes, reaches the same decision at the same query. A search that stopped early says so in
``run.json`` (``converged``: the explore queries spent, the budget, the window).
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from ..landscape import LandscapeConfig
from .querier import Outcome, Querier

logger = logging.getLogger(__name__)


class Convergence:
    """Watches explore outcomes and says when the search has converged."""

    def __init__(self, num_cells: int, window: int, min_queries: int | None = None) -> None:
        self.window = int(window)
        self.min_queries = LandscapeConfig().min_queries if min_queries is None else int(min_queries)
        self.queries = np.zeros(num_cells, dtype=np.int64)
        self.failures = np.zeros(num_cells, dtype=np.int64)
        self.seen = 0
        self.last_new_mode = 0  # explore queries seen when the newest mode first failed

    @classmethod
    def from_config(cls, config, num_cells: int) -> "Convergence | None":
        """The monitor an explore config asks for, or None without ``--stop-when-converged``."""
        if not getattr(config, "stop_when_converged", False):
            return None
        return cls(num_cells, config.convergence_window)

    def update(self, outcomes: Sequence[Outcome]) -> None:
        """Count a batch of explore outcomes, in query order (a repeated pair spends the window, adds no evidence)."""
        for outcome in outcomes:
            self.seen += 1
            if not outcome.fresh:
                continue
            self.queries[outcome.action_id] += 1
            if outcome.is_failure:
                if self.failures[outcome.action_id] == 0:
                    self.last_new_mode = self.seen
                self.failures[outcome.action_id] += 1

    @property
    def unsettled(self) -> int:
        """Failure modes with fewer than ``min_queries`` explore queries."""
        return int(((self.failures > 0) & (self.queries < self.min_queries)).sum())

    def converged(self) -> bool:
        """Whether the last ``window`` queries found no new mode and every mode found is settled."""
        return self.seen - self.last_new_mode >= self.window and self.unsettled == 0

    def record(self, querier: Querier) -> None:
        """Note in ``run.json`` (``converged``) and the log when the search stopped before its budget."""
        if not self.converged() or querier.left() == 0:
            return
        logger.info("converged after %d explore queries: %d of the budget of %d not spent",
                    querier.spent, querier.left(), querier.budget)
        querier.store.update_meta(converged={"explore_queries": querier.spent, "budget": querier.budget,
                                             "window": self.window, "min_queries": self.min_queries})
