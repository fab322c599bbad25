"""``--stop-when-converged``: end a search once the regions it would confirm have stopped changing.

The rule. Every ``CHECK_EVERY`` explore queries the run's evidence so far (the clean seeds and the exploration, one
outcome per (cell, seed) pair) is characterized exactly as the finished run will be (``fade_hub.characterize``:
the scan, then screening against the clean rate); the *screened regions* are those confirmation would test. The
search has converged when the same non-empty set of screened regions (the same region ids) has come out of every
check over the last ``convergence_window`` explore queries. Those queries went where the explorer expected to
learn most about the regions (new failures, and the boundaries of the regions found), so when a window of them
changes nothing, the regions confirmation will test would not change either unless the search looked somewhere it
considers unlikely; the longer the window, the higher that probability. A search without a screened region never
converges (it spends its budget looking).

The state is built only from the outcomes the querier returns, so a resumed run, whose querier replays the logged
outcomes, reaches the same decision at the same query. A search that stopped early says so in ``run.json``
(``converged``: the explore queries spent, the budget, the window, the regions) and in the log.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from ..landscape import LandscapeConfig

logger = logging.getLogger(__name__)

CHECK_EVERY = 50  # explore queries between two characterizations
KEPT = ("phase", "action_id", "seed_id", "context", "is_failure", "severity")  # what characterize reads of a record


class Convergence:
    """Watches a run's evidence and says when its screened regions have stopped changing (see module doc)."""

    def __init__(self, space: Any, window: int, config: LandscapeConfig | None = None,
                 check_every: int = CHECK_EVERY) -> None:
        self.space, self.window = space, int(window)
        self.config = config or LandscapeConfig()
        self.check_every = max(1, min(int(check_every), self.window))
        self.records: list[dict[str, Any]] = []
        self.explored = 0
        self.last_check = 0
        self.regions: tuple[str, ...] = ()
        self.since = 0  # explore queries seen when the current screened regions first came out
        self.done = False

    @classmethod
    def from_config(cls, config: Any, space: Any) -> "Convergence | None":
        """The monitor an explore config asks for, or None without ``--stop-when-converged``."""
        if not getattr(config, "stop_when_converged", False):
            return None
        return cls(space, config.convergence_window, LandscapeConfig.from_options(config.flat()))

    def add(self, records: Sequence[dict[str, Any]]) -> None:
        """Add a batch of query records (clean or explore, in query order) and check when one is due."""
        self.records.extend({key: record[key] for key in KEPT} for record in records)
        self.explored += sum(record["phase"] == "explore" for record in records)
        if self.explored - self.last_check >= self.check_every:
            self._check()

    def _check(self) -> None:
        from ..characterize import characterize

        self.last_check = self.explored
        regions = characterize(self.records, self.space, config=self.config, held_out=set()).regions
        screened = tuple(sorted(regions.loc[regions["screened"], "region_id"]))
        if screened != self.regions or not screened:
            self.regions, self.since = screened, self.explored
        self.done = bool(self.regions) and self.explored - self.since >= self.window

    def converged(self) -> bool:
        """Whether the same non-empty set of screened regions came out of every check of the last window."""
        return self.done

    def note(self, spent: int, budget: int) -> dict[str, Any] | None:
        """What ``run.json`` records (``converged``) when the search stopped before its budget, else None."""
        if not self.done or spent >= budget:
            return None
        logger.info("converged after %d explore queries (the same %d screened region(s) for the last %d): %d of the "
                    "budget of %d not spent", spent, len(self.regions), self.window, budget - spent, budget)
        return {"explore_queries": spent, "budget": budget, "window": self.window, "regions": list(self.regions)}
