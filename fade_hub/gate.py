"""``check(config)``: may this model ship? A gate for CI over one run, each failure region a test case.

Without ``against``, a run fails the gate when one of its failure regions (confirmed, or screened where the run
confirmed nothing) fails more often than its clean inputs by more than ``max_excess`` (the excess measured on the
held-out seeds when the region was confirmed, on the exploration seeds otherwise; its 95 % interval is shown), or
when the clean failure rate is ``max_clean`` or more. With ``against`` (the base model's run, say) it is a regression
gate: it fails when ``compare`` finds a new region (a failure region the other run does not have, or where this run
fails significantly more); ``max_excess`` and ``max_clean`` then apply only when given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .comparison_text import change_text, rate_text
from .junit import Case, write_junit
from .config.output import SourceOptions
from .config.regions import ErrorRateOptions
from .options import ConfigTree, check_ranges, option, section
from .paths import check_file_target
from .region_changes import Comparison, RegionChange, compare_runs, open_pair
from .region_text import excess_figures, excess_text, figures_text, percent
from .run import Run

DEFAULT_MAX_EXCESS = 0.10


@dataclass(init=False)
class CheckConfig(ConfigTree):
    """Settings of ``fade-hub check`` (``fade-hub check --help`` shows each with its default)."""

    source: SourceOptions = section(SourceOptions, helps={"run": "The run to check: a run directory or dataset repo."})
    max_excess: float | None = option(None, low=0.0, high=1.0, help="Fail when a failure region fails more often "
                                      "than clean inputs by more than this share of seeds (default 0.10; with "
                                      "--against, only when given).")
    max_clean: float | None = option(None, low=0.0, high=1.0, help="Fail when the clean failure rate is this or "
                                     "more.")
    against: str | None = option(None, metavar="RUN_OR_REPO", help="A regression gate: fail when RUN has a failure "
                                 "region that this run (e.g. the base model's) does not have, or where RUN fails "
                                 "significantly more (the new regions of `fade-hub compare`).")
    junit: str | None = option(None, metavar="FILE", help="Also write a JUnit XML report: one test case per region "
                               "of RUN (and one for the clean rate with --max-clean).")
    tests: ErrorRateOptions = section(ErrorRateOptions, helps={
        "alpha": "With --against: the family-wise error rate of compare's tests (Holm's adjustment)."})

    def validate(self) -> None:
        """Check the options before any run is read; BadConfig names the option."""
        check_ranges(self)
        if self.junit:
            check_file_target(self.junit, "--junit")

    @property
    def excess_limit(self) -> float | None:
        """The excess gate in force: ``max_excess``, else 0.10 unless the gate is a regression gate."""
        if self.max_excess is not None:
            return self.max_excess
        return None if self.against else DEFAULT_MAX_EXCESS


@dataclass
class CheckResult:
    """The gate's verdict on a run: its test cases and, with ``against``, the comparison behind them."""

    run: Run
    cases: list[Case]
    comparison: Comparison | None = None
    limits: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Whether every test case passed."""
        return all(case.passed for case in self.cases)

    @property
    def failed(self) -> list[Case]:
        """The test cases that failed."""
        return [case for case in self.cases if not case.passed]


def check(config: CheckConfig) -> CheckResult:
    """Gate ``config.run`` (see the module doc) and write the JUnit report when asked."""
    config.validate()
    comparison = None
    if config.against:
        base, run = open_pair(config.against, config.run)
        comparison = compare_runs(base, run, alpha=config.alpha)
    else:
        run = Run.open(config.run)
    limit = config.excess_limit
    compared = {region.region_id: region for region in comparison.regions if region.side == "b"} if comparison else {}
    cases = [_region_case(row, limit, compared.get(row.region_id)) for row in run.regions.itertuples()]
    if config.max_clean is not None:
        cases.append(_clean_case(run, config.max_clean))
    result = CheckResult(run, cases, comparison, {"max_excess": limit, "max_clean": config.max_clean,
                                                  "against": config.against})
    if config.junit:
        write_junit(config.junit, f"fade-hub check {run.spec}", cases, {"run": run.spec, "run_id": run.run_id,
                                                                         "model": run.model_text, **result.limits})
    return result


def _region_case(row: Any, limit: float | None, compared: RegionChange | None) -> Case:
    """A region's test case: it fails when it is a failure region whose excess passes ``limit``, or a new one
    (``compared``: the region as ``compare`` saw it against the other run)."""
    name = f"region {int(row.rank)}: {row.description}"
    if not bool(row.is_mode):
        return Case(name, "region", True, f"not a failure region ({excess_text(row)}, not confirmed)")
    problems = []
    excess = excess_figures(row)[0]
    if limit is not None and math.isfinite(excess) and excess > limit:
        problems.append(f"{figures_text(row)}: excess {excess_text(row)} above --max-excess {100 * limit:.0f} points")
    if compared is not None:
        change = compared.change
        rates = f"it fails {rate_text(change, 'after')} here, {rate_text(change, 'before')} in --against"
        if compared.status == "new":
            problems.append(f"new: fails significantly more than in --against ({rates}; change "
                            f"{change_text(change, compared.p_holm)})" if compared.matches else
                            f"new: no failure region of --against overlaps it ({rates})")
        elif not problems:
            return Case(name, "region", True, f"known: --against has it too ({', '.join(compared.matches)}); {rates}")
    if problems:
        return Case(name, "region", False, "; ".join(problems))
    return Case(name, "region", True, f"failure region within the gate: {figures_text(row)}, excess "
                f"{excess_text(row)}")


def _clean_case(run: Run, limit: float) -> Case:
    """The clean rate's test case: it fails at ``limit`` or more."""
    clean = run.meta.get("clean") or {}
    rate = clean.get("rate")
    if rate is None:
        return Case("clean failure rate", "clean", True, "no clean inputs (a space of prompt templates)")
    shown = (f"{percent(rate)} [{100 * clean['ci_low']:.0f}, {100 * clean['ci_high']:.0f}] of {clean['queries']} "
             "seeds")
    if rate >= limit:
        return Case("clean failure rate", "clean", False, f"clean inputs fail {shown}, at or above --max-clean "
                    f"{percent(limit)}")
    return Case("clean failure rate", "clean", True, f"clean inputs fail {shown}, under --max-clean {percent(limit)}")
