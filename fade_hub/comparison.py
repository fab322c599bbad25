"""``compare(config)``: two runs over the same concept space and task compared region by region (the statistics
and the statuses are ``fade_hub.region_changes``'s), with the comparison written as JSON and drawn when asked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config.regions import ErrorRateOptions, RegionOptions
from .options import ConfigTree, check_ranges, option, section
from .paths import check_file_target
from .region_changes import Comparison, compare_runs, open_pair


@dataclass(init=False)
class CompareConfig(ConfigTree):
    """Settings of ``fade-hub compare`` (``fade-hub compare --help`` shows each with its default): the two runs, the
    tests' error rate and explore's ``--min-excess``, and what to write."""

    run_a: str = option("", help="The reference run (e.g. the base model's): a run directory or dataset repo.",
                        cli=False)
    run_b: str = option("", help="The run compared with it (e.g. the mitigated variant's).", cli=False)
    tests: ErrorRateOptions = section(ErrorRateOptions)
    regions: RegionOptions = section(RegionOptions, only=("min_excess",), group=None, helps={
        "min_excess": "A region still fails in B while the lower 95%% bound of B's failure rate there above its clean "
                      "rate is at least this (explore's --min-excess)."})
    json: str | None = option(None, metavar="FILE", help="Also write the comparison as JSON to FILE.")
    plot: str | None = option(None, metavar="FILE", help="Also draw the per-cell change heatmaps (A, B, B - A) with "
                              "the failure regions outlined, as a PNG file.")

    def validate(self) -> None:
        """Check the options before any run is read; BadConfig names the option."""
        check_ranges(self)
        for flag, target in (("--json", self.json), ("--plot", self.plot)):
            if target:
                check_file_target(target, flag)


def compare(config: CompareConfig) -> Comparison:
    """Compare ``config.run_a`` with ``config.run_b`` (and write the JSON and the picture when asked)."""
    config.validate()
    comparison = compare_runs(*open_pair(config.run_a, config.run_b), alpha=config.alpha,
                              min_excess=config.min_excess)
    if config.json:
        from .jsonio import to_json

        Path(config.json).write_text(to_json(comparison.to_dict(), indent=2) + "\n", encoding="utf-8")
    if config.plot:
        from .comparison_plot import change_png

        change_png(comparison, Path(config.plot))
    return comparison
