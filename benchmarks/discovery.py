"""Failure discovery of every explorer on models with planted failure regions, against grid ground truth.

Fixtures (``benchmarks/discovery_fixtures.py``): ``shapes``, the demo's shapes ResNet over ``builtin:demo-shapes``
(125 cells); ``shapes-hard``, a shapes ResNet over 4 factors x 6 levels (1296 cells) with three small planted
modes, one only where two factors meet; ``shapes-mixed``, the same space with three regions of different sizes and
strengths (216 cells failing on about 30 % of the seeds, a 36-cell two-factor interaction, 72 cells on squares
only); ``text``, a small BERT sentiment classifier over 4 text factors x 6 levels (1296 cells) with three planted
modes. The planted fixtures' trained weights ship in ``benchmarks/fixtures`` (the same model on every machine;
``--train-fixtures`` trains them here instead). ``grid`` (every cell on every seed input) measures each fixture's
ground truth.

Algorithms: the package's ``ppo``, ``random``, ``epsilon-greedy``, ``bo`` and ``covering`` (rounds of pairwise
covering arrays, the classical design of combinatorial interaction testing), and the paper's own agent,
``paper-dqn`` (``benchmarks/paper_dqn.py``: SB3 DQN with the authors' settings; image fixtures only, and only
when stable-baselines3 is installed, ``pip install '.[paper]'``; otherwise its row is skipped with a note).
Every algorithm explores every fixture at every budget with every run seed (each run holds out seeds to confirm its
regions, as ``fade-hub explore`` does). The figures are described in ``benchmarks/discovery_metrics.py``: planted
modes found (a region holding >= 80 % of a mode's planted (class, cell) pairs where the model fails at >= half the
mode's strength) with the worst seed, false regions, queries until every planted mode is found
with no false one (median and worst seed; a run's budget when it never gets there), hit rate and its ratio to
random, Spearman of the predicted landscape against the grid, and wall time (true cells found, queries to 90 %
coverage and top-5 precision stay in the JSON).

The table and issue 26's acceptance checks are printed; ``discovery.json`` (settings, ground truth, per-run
figures, versions, machine) and ``discovery.png`` (true cells found against queries, per algorithm and fixture) go
to ``--output``. Nothing reaches the network.

    python benchmarks/discovery.py [--fixtures shapes shapes-hard shapes-mixed text] [--budgets 300 1000]
                                   [--seeds 0 1 2 3 4] [--cache-dir DIR] [--quick]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import paper_dqn  # noqa: E402
from discovery_fixtures import FIXTURES, Fixture, GroundTruth, measure_ground_truth, prepare_fixture  # noqa: E402
from discovery_metrics import BASELINE, COVERAGE, TOP_K, coverage_curve, run_metrics, summarize_runs  # noqa: E402
from discovery_report import acceptance, format_table, plot  # noqa: E402

logger = logging.getLogger("discovery")

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results"
# the model batch of a ground-truth grid run (every cell on every seed, thousands of queries): per-batch overhead
# grows with the machine's load at 32 on CPU; the quick shapes-hard grid took 92 s at 256 against 236 s at 32 at
# load 9, 40 s against 44 s at load 3 (text: 55 s against 81 s at load 9); the ground-truth JSON is byte-identical
GRID_BATCH_SIZE = 256
ALGORITHMS = ("ppo", "random", "epsilon-greedy", "bo", "covering", paper_dqn.NAME)


@dataclass
class BenchConfig:
    """What to run: fixtures, algorithms, budgets, run seeds, and where results go."""

    fixtures: list[str] = field(default_factory=lambda: list(FIXTURES))
    algorithms: list[str] = field(default_factory=lambda: list(ALGORITHMS))
    budgets: list[int] = field(default_factory=lambda: [300, 1000])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    threshold: float = 0.25
    seeds_per_class: int = 16
    fixture_seed: int = 0
    train_fixtures: bool = False  # train the planted fixtures here instead of using the shipped weights
    batch_size: int = 32
    options: dict[str, Any] = field(default_factory=dict)
    cache_dir: Path | None = None
    runs_dir: Path | None = None
    output: Path = DEFAULT_OUTPUT
    quick: bool = False


def explore_config(fixture: Fixture, algorithm: str, budget: int | None, seed: int, output: Path,
                   config: BenchConfig) -> Any:
    """The ExploreConfig of one benchmark run (``--set`` options applied)."""
    from fade_hub.explore.config import ExploreConfig

    settings: dict[str, Any] = dict(
        model=str(fixture.model), seeds=str(fixture.seeds), space=fixture.space, algorithm=algorithm, budget=budget,
        seed=seed, output=str(output), show_progress=False, batch_size=config.batch_size,
    )
    if algorithm == "grid":  # no held-out split: every seed is measured
        settings.update(budget=None, confirm_top=0, force=True, batch_size=max(config.batch_size, GRID_BATCH_SIZE))
    else:
        settings.update(config.options)
    return ExploreConfig(**settings)


def skipped(fixture: Fixture, algorithm: str) -> str | None:
    """Why an algorithm does not run on a fixture, or None."""
    if algorithm != paper_dqn.NAME:
        return None
    if fixture.modality != "image":
        return "the paper's DQN observes raw seed images: image fixtures only"
    return paper_dqn.unavailable()


def run_one(fixture: Fixture, runs: Path, algorithm: str, budget: int, seed: int, truth: GroundTruth,
            config: BenchConfig) -> dict[str, Any]:
    """Explore once and measure the run."""
    from fade_hub.explore.runner import explore

    started = time.perf_counter()
    output = runs / f"{fixture.name}-{algorithm}-{budget}-{seed}"
    with ExitStack() as stack:
        if algorithm == paper_dqn.NAME:
            stack.enter_context(paper_dqn.registered())
        run = explore(explore_config(fixture, algorithm, budget, seed, output, config))
    seconds = time.perf_counter() - started
    result = {"fixture": fixture.name, "algorithm": algorithm, "budget": budget, "seed": seed,
              "seconds": round(seconds, 1)}
    result.update(run_metrics(run.path, truth))
    result["timings"] = run.meta.get("timings", {})
    logger.info("%s %s budget %d seed %d: %d of %d planted regions (%d false), all at %s; hit rate %.3f, "
                "spearman %s, %.0f s", fixture.name, algorithm, budget, seed, result["regions_found"],
                len(truth.regions), result["false_regions"], result["queries_to_all_regions"], result["hit_rate"],
                result["spearman"], seconds)  # fmt: skip
    return result


def versions() -> dict[str, str]:
    """Versions of fade-hub, its dependencies, stable-baselines3 when present, and Python."""
    from importlib.metadata import PackageNotFoundError, version

    import pandas as pd

    from fade_hub.explore.runner import package_versions

    found = package_versions()
    found.update(python=platform.python_version(), numpy=np.__version__, pandas=pd.__version__)
    try:
        found["stable-baselines3"] = version("stable-baselines3")
    except PackageNotFoundError:
        pass
    return found


def machine() -> dict[str, Any]:
    """Where the benchmark ran."""
    import torch

    return {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads()}  # fmt: skip


def run_benchmark(config: BenchConfig) -> tuple[dict[str, Any], dict[str, GroundTruth]]:
    """Prepare each fixture, measure its ground truth, run every algorithm x budget x seed; return results and truths."""
    from fade_hub.explore.runner import explore

    with tempfile.TemporaryDirectory(prefix="fade-discovery-") as tmp:
        cache = Path(config.cache_dir) if config.cache_dir else Path(tmp) / "cache"
        runs = Path(config.runs_dir) if config.runs_dir else Path(tmp) / "runs"
        cache.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        results: list[dict[str, Any]] = []
        truths: dict[str, GroundTruth] = {}
        notes: dict[str, dict[str, str]] = {}
        table: list[dict[str, Any]] = []
        for name in config.fixtures:
            fixture = prepare_fixture(name, cache, config.seeds_per_class, config.fixture_seed, config.quick,
                                      config.train_fixtures)
            grid = explore_config(fixture, "grid", None, 0, runs / f"{name}-grid", config)
            truth = truths[name] = measure_ground_truth(fixture, cache, config.threshold, lambda: explore(grid).path)
            logger.info("%s ground truth: %d true failure cells of %d", name, len(truth.cells()), len(truth.rates))
            algorithms = []
            for algorithm in config.algorithms:
                reason = skipped(fixture, algorithm)
                if reason:
                    notes.setdefault(name, {})[algorithm] = reason
                else:
                    algorithms.append(algorithm)
            mine = [
                run_one(fixture, runs, algorithm, budget, seed, truth, config)
                for budget in config.budgets for seed in config.seeds for algorithm in algorithms
            ]  # fmt: skip
            results += mine
            table += summarize_runs(mine, name, algorithms, config.budgets, len(truth.regions))
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
        settings.update(top_k=TOP_K, coverage=COVERAGE, baseline=BASELINE)
        result = {
            "settings": settings,
            "ground_truth": {name: truth.summary() for name, truth in truths.items()},
            "table": table,
            "skipped": notes,
            "acceptance": acceptance(table, config.fixtures, {name: len(t.regions) for name, t in truths.items()}),
            "runs": results,
            "versions": versions(),
            "machine": machine(),
            "seconds": round(time.perf_counter() - started, 1),
        }
        return result, truths


def parse_args(argv: Sequence[str] | None = None) -> BenchConfig:
    """Command-line flags to a BenchConfig."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fixtures", nargs="+", choices=FIXTURES, default=list(FIXTURES),
                        help="fixtures to run on (default: all three)")
    parser.add_argument("--algorithms", nargs="+", choices=ALGORITHMS, default=list(ALGORITHMS),
                        help="explorers to compare (default: all; paper-dqn only where it can run)")
    parser.add_argument("--budgets", nargs="+", type=int, default=[300, 1000], metavar="N",
                        help="explore budgets in model queries (default: 300 1000)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4], metavar="SEED",
                        help="run seeds: each algorithm x budget runs once with each as --random-seed (default: 0 1 2 3 4)")
    parser.add_argument("--threshold", type=float, default=0.25, metavar="RATE",
                        help="ground-truth failure rate from which a cell counts as a true failure cell (default 0.25)")
    parser.add_argument("--seeds-per-class", type=int, default=16, metavar="N",
                        help="seed inputs per class of each fixture (default 16)")
    parser.add_argument("--batch-size", type=int, default=32, metavar="N",
                        help="model batch size of every run (default 32)")
    parser.add_argument("--set", dest="options", action="append", default=[], metavar="FIELD=VALUE",
                        help="override an ExploreConfig field for every run, e.g. --set entropy_coef=0.1 (repeatable)")
    parser.add_argument("--cache-dir", type=Path, metavar="DIR",
                        help="where the trained fixtures and their ground truth are kept and reused (default: a temp dir)")
    parser.add_argument("--runs-dir", type=Path, metavar="DIR",
                        help="keep the run directories here (default: a temp dir)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, metavar="DIR",
                        help="folder for discovery.json and discovery.png (default: benchmarks/results)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: budget 64, seed 0, 2 seed inputs per class, fixtures trained for a few steps")
    parser.add_argument("--train-fixtures", action="store_true",
                        help="train the planted fixtures on this machine instead of using the weights shipped in "
                        "benchmarks/fixtures (other CPUs train other weights, whose modes to find may differ)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    config = BenchConfig(
        fixtures=args.fixtures, algorithms=args.algorithms, budgets=args.budgets, seeds=args.seeds,
        threshold=args.threshold, seeds_per_class=args.seeds_per_class, batch_size=args.batch_size,
        options=_parse_options(parser, args.options), cache_dir=args.cache_dir, runs_dir=args.runs_dir,
        output=args.output, quick=args.quick, train_fixtures=args.train_fixtures,
    )  # fmt: skip
    if args.quick:
        config.budgets, config.seeds, config.seeds_per_class = [64], [0], 2
    if any(b < 1 for b in config.budgets):
        parser.error("--budgets must be positive")
    if config.runs_dir and config.runs_dir.exists() and any(config.runs_dir.iterdir()):
        parser.error(f"--runs-dir {config.runs_dir} is not empty; pass a new or empty folder")
    return config


def _parse_options(parser: argparse.ArgumentParser, items: list[str]) -> dict[str, Any]:
    from fade_hub.explore.config import ExploreConfig
    from fade_hub.options import option_fields

    known = {field.name for _, field in option_fields(ExploreConfig)}  # flat option names, as the CLI's flags
    options = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in known:
            parser.error(f"--set {item!r}: expected FIELD=VALUE with FIELD one of ExploreConfig's options")
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
    """Run the benchmark, print the tables and the acceptance checks, write the JSON and the PNG."""
    for name, value in (("HF_HUB_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"),
                        ("HF_HUB_DISABLE_TELEMETRY", "1")):  # fmt: skip
        os.environ.setdefault(name, value)
    config = parse_args(argv)
    result, truths = run_benchmark(config)
    for name in config.fixtures:
        gt = result["ground_truth"][name]
        print(f"\n[{name}] ground truth (grid, {gt['queries_per_cell']} seed inputs per cell, {gt['cells']} cells): "
              f"{gt['true_failure_cells']} true failure cells (rate >= {config.threshold:g}), "
              f"{gt['cells_with_any_failure']} cells with any failure, "
              f"overall failure rate {gt['overall_failure_rate']:.4f}")  # fmt: skip
        for region, planted in gt["planted_regions"].items():
            grid = planted["grid_region"]
            found = (f"the grid's region: {len(grid)} cells, mean rate {planted['grid_region_rate']:.2f}" if grid
                     else "the grid finds no region there (left out)")
            print(f"  planted region {region}: {len(planted['cells'])} cells, mean grid rate {planted['mean_rate']:.2f}; "
                  f"{found}")
        print(format_table([row for row in result["table"] if row["fixture"] == name], len(truths[name].regions)))
        for algorithm, reason in result["skipped"].get(name, {}).items():
            print(f"  {algorithm}: skipped, {reason}")
    print("\nacceptance (issue 26):")
    for check in result["acceptance"]:
        print(f"  [{'pass' if check['met'] else 'FAIL'}] {check['fixture']}: {check['check']} ({check['measured']})")
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "discovery.json").write_text(json.dumps(result, indent=1, allow_nan=False, default=_json_default) + "\n",
                                           encoding="utf-8")  # fmt: skip
    plot(result["runs"], truths, config.budgets, output / "discovery.png", coverage_curve)
    print(f"wrote {output / 'discovery.json'} and {output / 'discovery.png'}")
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


if __name__ == "__main__":
    sys.exit(main())
