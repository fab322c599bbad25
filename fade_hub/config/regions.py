"""The options that say when a region or cell is a failure mode and how many regions a run reports
(``RegionOptions``): a section of ``ExploreConfig`` and ``CompareConfig`` and a base of ``landscape.LandscapeConfig``;
and the error rate of the tests that decide it (``ErrorRateOptions``): a section of ``CompareConfig`` and
``CheckConfig`` and the other base of ``LandscapeConfig``."""

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


@dataclass
class ErrorRateOptions:
    """How often the tests that call a region failing (or changed) may be wrong."""

    alpha: float = option(0.05, low=0.0, high=1.0, low_open=True, high_open=True,
                          help="Family-wise error rate of the tests across regions (Holm's adjustment).")
