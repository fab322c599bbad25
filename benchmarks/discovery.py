"""Failure discovery of ``ppo`` against ``random`` and ``epsilon-greedy`` on a model with planted failures.

The fixture is the demo's shapes classifier (``fade_hub.demo.shapes``): a small ResNet trained, once
per ``--cache-dir``, on generated shapes whose training data never showed dark *and* rotated shapes.
Over ``builtin:demo-shapes`` (rotation x brightness x saturation, 125 cells) it fails where that data
never went. ``grid`` (every cell on every seed, no held-out split) measures the ground truth: the
failure rate of every cell over all seed images. *True failure cells* are the cells whose ground-truth
rate is >= ``--threshold`` (default 0.25); figures against "any failure" (rate > 0) are kept too.

Every algorithm then explores at every budget with every run seed (each run holds out a quarter of
the seeds to confirm its top modes, as ``fade-hub explore`` does). Per run:

* failures found: failing explore queries; hit rate = failures / explore queries;
* x random: the algorithm's mean hit rate over the mean hit rate of ``random`` at the same budget;
* budget to 90 %: the first explore query count at which 90 % of the true failure cells have each
  failed at least once (query-log order), or not reached;
* top-5 precision: the fraction of the run's 5 best-ranked failure modes
  (``fade_hub.landscape.failure_modes(landscape, top_k=5)``) that are true failure cells (out of 5:
  a missing mode counts as wrong);
* Spearman: rank correlation over all cells of the run's estimated landscape (explore failure rate,
  0 for unvisited cells) with the ground truth; for ``ppo`` also of the policy's cell probabilities.

The table (mean +- std over seeds) is printed; ``discovery.json`` (settings, ground truth, per-run
figures, versions, machine) and ``discovery.png`` go to ``--output``. Nothing reaches the network.

    python benchmarks/discovery.py [--budgets 250 500 1000] [--seeds 0 1 2] [--cache-dir DIR] [--quick]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

logger = logging.getLogger("discovery")

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results"
SPACE = "builtin:demo-shapes"
ALGORITHMS = ("ppo", "random", "epsilon-greedy")
BASELINE = "random"
TOP_K = 5
COVERAGE = 0.9
TARGET_RATIO = 3.0
COLOURS = {"ppo": "tab:red", "random": "tab:gray", "epsilon-greedy": "tab:blue"}


@dataclass
class BenchConfig:
    """What to run: algorithms, budgets, run seeds, the fixture and where results go."""

    algorithms: list[str] = field(default_factory=lambda: list(ALGORITHMS))
    budgets: list[int] = field(default_factory=lambda: [250, 500, 1000])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    threshold: float = 0.25
    seeds_per_class: int = 16
    fixture_seed: int = 0
    batch_size: int = 32
    options: dict[str, Any] = field(default_factory=dict)
    cache_dir: Path | None = None
    runs_dir: Path | None = None
    output: Path = DEFAULT_OUTPUT
    quick: bool = False


@dataclass
class GroundTruth:
    """Per-cell failure rate of the fixture measured by ``grid`` over every seed image."""

    rates: np.ndarray
    queries_per_cell: int
    threshold: float
    labels: list[str]

    def cells(self, strict_positive: bool = False) -> set[int]:
        """True failure cells: rate >= threshold, or rate > 0 with ``strict_positive``."""
        hit = self.rates > 0 if strict_positive else self.rates >= self.threshold
        return {int(i) for i in np.flatnonzero(hit)}


# fixture and ground truth -----------------------------------------------------------------------


def prepare_fixture(cache: Path, config: BenchConfig) -> tuple[Path, Path]:
    """Train (or reuse) the shapes classifier and write (or reuse) its seed images; return both folders."""
    from fade_hub.demo.run import DEMO_MODEL_VERSION
    from fade_hub.demo.shapes import train_shape_classifier, write_seed_folder

    started = time.perf_counter()
    model = train_shape_classifier(cache / DEMO_MODEL_VERSION, seed=config.fixture_seed)
    logger.info("fixture model ready in %.0f s: %s", time.perf_counter() - started, model)
    seeds = cache / f"{DEMO_MODEL_VERSION}-seeds-{config.seeds_per_class}-{1000 + config.fixture_seed}"
    if not seeds.is_dir():
        write_seed_folder(seeds, config.seeds_per_class, seed=1000 + config.fixture_seed)
    return model, seeds


def explore_config(model: Path, seeds: Path, algorithm: str, budget: int | None, seed: int, output: Path,
                   config: BenchConfig) -> Any:
    """The ExploreConfig of one benchmark run (``--set`` options applied)."""
    from fade_hub.explore.config import ExploreConfig

    settings: dict[str, Any] = dict(
        model=str(model), seeds=str(seeds), space=SPACE, algorithm=algorithm, budget=budget, seed=seed,
        output=str(output), show_progress=False, batch_size=config.batch_size,
    )
    settings.update(config.options)
    if algorithm == "grid":
        settings.update(budget=None, confirm_top=0)  # no held-out split: every seed is measured
    return ExploreConfig(**settings)


def measure_ground_truth(model: Path, seeds: Path, runs: Path, config: BenchConfig) -> GroundTruth:
    """Run ``grid`` over every cell and every seed image; return the per-cell failure rates."""
    from fade_hub.explore.runner import explore
    from fade_hub.landscape import LANDSCAPE_COLUMNS, cell_label
    from fade_hub.store import LANDSCAPE_FILE

    run = explore(explore_config(model, seeds, "grid", None, 0, runs / "grid", config))
    landscape = pd.read_parquet(run.path / LANDSCAPE_FILE).sort_values("action_id")
    names = [name for name in landscape.columns if name not in LANDSCAPE_COLUMNS]
    return GroundTruth(
        rates=landscape["failure_rate"].to_numpy(dtype=float),
        queries_per_cell=int(landscape["queries"].min()),
        threshold=config.threshold,
        labels=[cell_label(row, names) for _, row in landscape.iterrows()],
    )


# per-run metrics ---------------------------------------------------------------------------------


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant."""
    ra = pd.Series(np.asarray(a, dtype=float)).rank(method="average").to_numpy()
    rb = pd.Series(np.asarray(b, dtype=float)).rank(method="average").to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


def first_failures(explore_rows: pd.DataFrame, cells: set[int]) -> dict[int, int]:
    """For each of ``cells`` that failed: the explore query count at its first failure (1-based)."""
    failing = explore_rows[explore_rows["is_failure"] & explore_rows["action_id"].isin(cells)]
    first = failing.groupby("action_id")["position"].min()
    return {int(cell): int(position) + 1 for cell, position in first.sort_values().items()}


def budget_to_cover(first: dict[int, int], cells: set[int], fraction: float = COVERAGE) -> int | None:
    """Explore queries spent when ``fraction`` of ``cells`` had each failed at least once; None if never."""
    needed = math.ceil(fraction * len(cells) - 1e-9)
    times = sorted(t for cell, t in first.items() if cell in cells)
    return times[needed - 1] if cells and len(times) >= needed else None


def cells_found_curve(first: dict[int, int], length: int) -> np.ndarray:
    """Cells seen failing after each explore query (index i = after i + 1 queries)."""
    return np.searchsorted(np.sort(list(first.values())), np.arange(1, length + 1), side="right")


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def run_metrics(run_dir: Path, truth: GroundTruth) -> dict[str, Any]:
    """The benchmark's figures for one finished run directory."""
    from fade_hub.landscape import failure_modes
    from fade_hub.store import LANDSCAPE_FILE, RunStore

    store = RunStore(run_dir)
    queries = pd.DataFrame(store.read_queries()).sort_values("query_id")
    explore_rows = queries[queries["phase"] == "explore"].reset_index(drop=True)
    explore_rows["position"] = np.arange(len(explore_rows))
    landscape = pd.read_parquet(run_dir / LANDSCAPE_FILE).sort_values("action_id")
    true_cells, any_cells = truth.cells(), truth.cells(strict_positive=True)
    modes = [int(a) for a in failure_modes(landscape, top_k=TOP_K)["action_id"]]
    failures = int(explore_rows["is_failure"].sum())
    estimate = landscape["failure_rate"].fillna(0.0).to_numpy(dtype=float)
    policy = landscape["policy_prob"].to_numpy(dtype=float)
    first_true, first_any = first_failures(explore_rows, true_cells), first_failures(explore_rows, any_cells)
    late = explore_rows.tail(max(1, len(explore_rows) // 4))
    return {
        "queries": int(len(explore_rows)),
        "confirm_queries": int((queries["phase"] == "confirm").sum()),
        "failures": failures,
        "hit_rate": failures / max(len(explore_rows), 1),
        "late_hit_rate": float(late["is_failure"].mean()),
        "true_cells_found": len(first_true),
        "any_cells_found": len(first_any),
        "budget_to_90": budget_to_cover(first_true, true_cells),
        "budget_to_90_any": budget_to_cover(first_any, any_cells),
        "true_cells_first_failure": {str(cell): t for cell, t in first_true.items()},
        "top_modes": modes,
        "top5_precision": sum(a in true_cells for a in modes) / TOP_K,
        "top5_precision_any": sum(a in any_cells for a in modes) / TOP_K,
        "top_modes_confirmed": int(landscape.set_index("action_id").loc[modes, "confirmed"].sum()) if modes else 0,
        "spearman_rate": _finite(spearman(estimate, truth.rates)),
        "spearman_policy": _finite(spearman(policy, truth.rates)) if np.isfinite(policy).all() else None,
    }


def run_one(model: Path, seeds: Path, runs: Path, algorithm: str, budget: int, seed: int, truth: GroundTruth,
            config: BenchConfig) -> dict[str, Any]:
    """Explore once and measure the run."""
    from fade_hub.explore.runner import explore

    started = time.perf_counter()
    run = explore(explore_config(model, seeds, algorithm, budget, seed, runs / f"{algorithm}-{budget}-{seed}", config))
    seconds = time.perf_counter() - started
    result = {"algorithm": algorithm, "budget": budget, "seed": seed, "seconds": round(seconds, 1)}
    result.update(run_metrics(run.path, truth))
    result["timings"] = run.meta.get("timings", {})
    logger.info(
        "%s budget %d seed %d: %d failures (hit rate %.3f), top-5 precision %.1f, %.0f s",
        algorithm, budget, seed, result["failures"], result["hit_rate"], result["top5_precision"], seconds,
    )
    return result


# aggregation and output ----------------------------------------------------------------------------


def _mean_std(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean and (population) std of the non-missing values, with how many there were."""
    present = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not present:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(np.mean(present)), "std": float(np.std(present)), "n": len(present)}


def summarize_runs(runs: list[dict[str, Any]], config: BenchConfig) -> list[dict[str, Any]]:
    """One row per algorithm x budget: mean / std over seeds of every figure, and the ratio to random."""
    rows = []
    for algorithm in config.algorithms:
        for budget in config.budgets:
            group = [r for r in runs if r["algorithm"] == algorithm and r["budget"] == budget]
            if not group:
                continue
            row: dict[str, Any] = {"algorithm": algorithm, "budget": budget, "seeds": [r["seed"] for r in group]}
            for key in ("failures", "hit_rate", "late_hit_rate", "true_cells_found", "budget_to_90", "budget_to_90_any",
                        "top5_precision", "top5_precision_any", "spearman_rate", "spearman_policy"):
                row[key] = _mean_std([r[key] for r in group])
            rows.append(row)
    for row in rows:
        base = next((b for b in rows if b["algorithm"] == BASELINE and b["budget"] == row["budget"]), None)
        base_rate = base["hit_rate"]["mean"] if base else None
        row["ratio_vs_random"] = row["hit_rate"]["mean"] / base_rate if base_rate else None
    return rows


def acceptance(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Issue 4's bar: ppo >= 3x random's hit rate and top-5 precision 1.0 at some budget <= 1000."""
    passing = [
        row["budget"]
        for row in rows
        if row["algorithm"] == "ppo" and row["budget"] <= 1000
        and (row["ratio_vs_random"] or 0) >= TARGET_RATIO and row["top5_precision"]["mean"] == 1.0
    ]
    return {"target_ratio": TARGET_RATIO, "passing_budgets": passing, "met": bool(passing)}


def _fmt(stat: dict[str, Any], digits: int, total: int | None = None) -> str:
    if stat["mean"] is None:
        return "not reached"
    text = f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"
    if total is not None and stat["n"] < total:
        text += f" ({stat['n']}/{total})"
    return text


def format_table(rows: list[dict[str, Any]]) -> str:
    """The printed table: one line per algorithm x budget, mean ± std over seeds."""
    header = ["algorithm", "budget", "failures", "hit rate", "x random", "budget to 90%", "top-5 prec.",
              "top-5 prec. (>0)", "spearman", "spearman policy"]
    lines = []
    for row in rows:
        n = len(row["seeds"])
        lines.append([
            row["algorithm"], str(row["budget"]), _fmt(row["failures"], 1), _fmt(row["hit_rate"], 3),
            f"{row['ratio_vs_random']:.2f}" if row["ratio_vs_random"] is not None else "-",
            _fmt(row["budget_to_90"], 0, n), _fmt(row["top5_precision"], 2), _fmt(row["top5_precision_any"], 2),
            _fmt(row["spearman_rate"], 2), _fmt(row["spearman_policy"], 2) if row["spearman_policy"]["n"] else "-",
        ])  # fmt: skip
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in [header, *lines]]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def truth_summary(truth: GroundTruth) -> dict[str, Any]:
    """What the ground truth looks like: cell counts, overall rate, the true failure cells."""
    order = np.argsort(-truth.rates, kind="stable")
    return {
        "queries_per_cell": truth.queries_per_cell,
        "overall_failure_rate": float(truth.rates.mean()),
        "threshold": truth.threshold,
        "true_failure_cells": len(truth.cells()),
        "cells_with_any_failure": len(truth.cells(strict_positive=True)),
        "cells": [
            {"action_id": int(i), "cell": truth.labels[i], "failure_rate": float(truth.rates[i])}
            for i in order if truth.rates[i] > 0
        ],
        "rates": [float(r) for r in truth.rates],
    }


def plot(rows: list[dict[str, Any]], runs: list[dict[str, Any]], truth: GroundTruth, path: Path) -> Path:
    """Three panels: hit rate vs budget, true failure cells found vs queries, top-5 precision vs budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    algorithms = list(dict.fromkeys(r["algorithm"] for r in rows))
    budgets = sorted({r["budget"] for r in rows})
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    offsets = np.linspace(-0.04, 0.04, len(algorithms)) if len(algorithms) > 1 else [0.0]
    for offset, algorithm in zip(offsets, algorithms):
        mine = sorted((r for r in rows if r["algorithm"] == algorithm), key=lambda r: r["budget"])
        x = np.array([r["budget"] for r in mine], dtype=float) * (1 + offset)
        colour = COLOURS.get(algorithm)
        axes[0].errorbar(x, [r["hit_rate"]["mean"] for r in mine], yerr=[r["hit_rate"]["std"] for r in mine],
                         marker="o", capsize=4, label=algorithm, color=colour)  # fmt: skip
        axes[2].errorbar(x, [r["top5_precision"]["mean"] for r in mine],
                         yerr=[r["top5_precision"]["std"] for r in mine], marker="o", capsize=4, label=algorithm,
                         color=colour)  # fmt: skip
        longest = max(budgets)
        curves = np.array([
            cells_found_curve(r["true_cells_first_failure"], r["queries"])
            for r in runs if r["algorithm"] == algorithm and r["budget"] == longest
        ])  # fmt: skip
        if len(curves):
            steps = np.arange(1, curves.shape[1] + 1)
            mean, std = curves.mean(axis=0), curves.std(axis=0)
            axes[1].plot(steps, mean, label=algorithm, color=colour, drawstyle="steps-post")
            axes[1].fill_between(steps, mean - std, mean + std, alpha=0.2, color=colour, step="post")
    overall = float(truth.rates.mean())
    axes[0].axhline(overall, color="black", lw=0.8, ls=":", label=f"grid failure rate ({overall:.3f})")
    seeds = max(len(r["seeds"]) for r in rows)
    axes[0].set(xscale="log", xlabel="budget (explore queries)", ylabel="hit rate (failures / query)",
                ylim=(0, None), title=f"Hit rate (mean ± std over {seeds} seeds)")  # fmt: skip
    n_true = len(truth.cells())
    axes[1].axhline(COVERAGE * n_true, color="black", lw=0.8, ls=":", label=f"{COVERAGE:.0%} of true cells")
    axes[1].set(xlabel="explore queries", ylabel="true failure cells seen failing", ylim=(0, n_true + 0.5),
                title=f"True failure cells found (of {n_true}), budget {max(budgets)}")  # fmt: skip
    axes[2].set(xscale="log", xlabel="budget (explore queries)", ylabel="fraction of top-5 modes that are true",
                ylim=(-0.05, 1.05), title="Top-5 failure-mode precision")  # fmt: skip
    for ax in axes:
        if ax.get_xscale() == "log":
            ax.set_xticks(budgets)
            ax.set_xticklabels([str(b) for b in budgets])
            ax.minorticks_off()
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"Failure discovery on the planted shapes fixture (true failure cell: grid rate ≥ {truth.threshold:g})"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def versions() -> dict[str, str]:
    """Versions of fade-hub, its dependencies and Python."""
    from fade_hub.explore.runner import package_versions

    found = package_versions()
    found.update(python=platform.python_version(), numpy=np.__version__, pandas=pd.__version__)
    return found


def machine() -> dict[str, Any]:
    """Where the benchmark ran."""
    import torch

    return {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads()}  # fmt: skip


# entry point -----------------------------------------------------------------------------------------


def run_benchmark(config: BenchConfig) -> tuple[dict[str, Any], GroundTruth]:
    """Prepare the fixture, measure the ground truth, run every algorithm x budget x seed; return results and truth."""
    with tempfile.TemporaryDirectory(prefix="fade-discovery-") as tmp:
        cache = Path(config.cache_dir) if config.cache_dir else Path(tmp) / "cache"
        runs = Path(config.runs_dir) if config.runs_dir else Path(tmp) / "runs"
        started = time.perf_counter()
        model, seeds = prepare_fixture(cache, config)
        truth = measure_ground_truth(model, seeds, runs, config)
        logger.info("ground truth: %d true failure cells (rate >= %g), %d with any failure",
                    len(truth.cells()), truth.threshold, len(truth.cells(strict_positive=True)))  # fmt: skip
        results = [
            run_one(model, seeds, runs, algorithm, budget, seed, truth, config)
            for budget in config.budgets
            for seed in config.seeds
            for algorithm in config.algorithms
        ]
        rows = summarize_runs(results, config)
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
        settings.update(space=SPACE, top_k=TOP_K, coverage=COVERAGE, baseline=BASELINE)
        result = {
            "settings": settings,
            "ground_truth": truth_summary(truth),
            "table": rows,
            "acceptance": acceptance(rows),
            "runs": results,
            "versions": versions(),
            "machine": machine(),
            "seconds": round(time.perf_counter() - started, 1),
        }
        return result, truth


def parse_args(argv: Sequence[str] | None = None) -> BenchConfig:
    """Command-line flags to a BenchConfig."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--algorithms", nargs="+", choices=ALGORITHMS, default=list(ALGORITHMS),
                        help="explorers to compare (default: all three)")
    parser.add_argument("--budgets", nargs="+", type=int, default=[250, 500, 1000], metavar="N",
                        help="explore budgets in model queries (default: 250 500 1000)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], metavar="SEED",
                        help="run seeds: each algorithm x budget runs once with each as --seed (default: 0 1 2)")
    parser.add_argument("--threshold", type=float, default=0.25, metavar="RATE",
                        help="ground-truth failure rate from which a cell counts as a true failure cell (default 0.25)")
    parser.add_argument("--seeds-per-class", type=int, default=16, metavar="N",
                        help="seed images per shape class (default 16)")
    parser.add_argument("--batch-size", type=int, default=32, metavar="N",
                        help="model batch size of every run (default 32)")
    parser.add_argument("--set", dest="options", action="append", default=[], metavar="FIELD=VALUE",
                        help="override an ExploreConfig field for every run, e.g. --set entropy_coef=0.1 (repeatable)")
    parser.add_argument("--cache-dir", type=Path, metavar="DIR",
                        help="where the trained fixture is kept and reused (default: a temp dir)")
    parser.add_argument("--runs-dir", type=Path, metavar="DIR",
                        help="keep the run directories here (default: a temp dir)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, metavar="DIR",
                        help="folder for discovery.json and discovery.png (default: benchmarks/results)")
    parser.add_argument("--quick", action="store_true", help="smoke run: budget 64, seed 0, 4 seed images per class")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    config = BenchConfig(
        algorithms=args.algorithms, budgets=args.budgets, seeds=args.seeds, threshold=args.threshold,
        seeds_per_class=args.seeds_per_class, batch_size=args.batch_size, options=_parse_options(parser, args.options),
        cache_dir=args.cache_dir, runs_dir=args.runs_dir, output=args.output, quick=args.quick,
    )  # fmt: skip
    if args.quick:
        config.budgets, config.seeds, config.seeds_per_class = [64], [0], 4
    if any(b < 1 for b in config.budgets):
        parser.error("--budgets must be positive")
    if config.runs_dir and config.runs_dir.exists() and any(config.runs_dir.iterdir()):
        parser.error(f"--runs-dir {config.runs_dir} is not empty; pass a new or empty folder")
    return config


def _parse_options(parser: argparse.ArgumentParser, items: list[str]) -> dict[str, Any]:
    from fade_hub.explore.config import ExploreConfig

    known = set(ExploreConfig.__dataclass_fields__)
    options = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in known:
            parser.error(f"--set {item!r}: expected FIELD=VALUE with FIELD one of ExploreConfig's fields")
        options[name] = _parse_value(value)
    return options


def _parse_value(text: str) -> Any:
    """A ``--set`` value: JSON (numbers such as ``3e-3``, true / false, lists), else YAML, else the string."""
    import yaml

    try:
        return json.loads(text)
    except ValueError:
        return yaml.safe_load(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON and the PNG."""
    for name, value in (("HF_HUB_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"),
                        ("HF_HUB_DISABLE_TELEMETRY", "1")):  # fmt: skip
        os.environ.setdefault(name, value)
    config = parse_args(argv)
    result, truth = run_benchmark(config)
    gt = result["ground_truth"]
    print(f"ground truth (grid, {gt['queries_per_cell']} seed images per cell): "
          f"{gt['true_failure_cells']} true failure cells (rate >= {truth.threshold:g}), "
          f"{gt['cells_with_any_failure']} cells with any failure, "
          f"overall failure rate {gt['overall_failure_rate']:.4f}")  # fmt: skip
    print(format_table(result["table"]))
    verdict = result["acceptance"]
    passing = ", ".join(map(str, verdict["passing_budgets"]))
    print(f"acceptance (ppo >= {TARGET_RATIO:g}x random per query and top-5 precision 1.0 at budget <= 1000): "
          f"{'met at budget ' + passing if verdict['met'] else 'NOT met'}")  # fmt: skip
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "discovery.json").write_text(json.dumps(result, indent=1, allow_nan=False, default=_json_default) + "\n",
                                           encoding="utf-8")  # fmt: skip
    plot(result["table"], result["runs"], truth, output / "discovery.png")
    print(f"wrote {output / 'discovery.json'} and {output / 'discovery.png'}")
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


if __name__ == "__main__":
    sys.exit(main())
