"""The options that say when a region or cell is a failure mode and how many regions a run reports
(``RegionOptions``): a section of ``ExploreConfig`` and the base of ``landscape.LandscapeConfig``."""

from __future__ import annotations

from dataclasses import dataclass

from fade_hub.options import option

CONFIRM_GROUP = "confirmation on held-out seeds"  # the explore flags' group these options show in


@dataclass
class RegionOptions:
    """When a region or cell counts as a failure mode, and how many regions a run reports (options of ``explore``)."""

    min_excess: float = option(0.05, group=CONFIRM_GROUP, low=0.0, high=1.0, high_open=True, help="A region or cell is "
                               "a failure mode only when the lower 95%% bound of its failure rate above the clean "
                               "rate is at least this.")
    max_regions: int = option(5, group=CONFIRM_GROUP, low=1, help="Report at most this many disjoint failure regions.")
