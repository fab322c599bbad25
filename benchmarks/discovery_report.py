"""The discovery benchmark's outputs: the printed table, issues 15 and 20's acceptance checks, and the coverage plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from discovery_fixtures import GroundTruth
from discovery_metrics import BASELINE, COVERAGE, TOP_K

HIT_RATIO = 6.0  # ppo's hit rate over random's at the largest budget
FOUND = 0.95  # fraction of the true cells ppo must find at the largest budget
SPEEDUP = 3.0  # ppo reaches 90 % coverage within 1 / SPEEDUP of random's queries
PRECISION_FROM = 300  # top-5 precision must be 1.0 from this budget on
COLOURS = {"ppo": "tab:red", "random": "tab:gray", "epsilon-greedy": "tab:blue", "bo": "tab:green",
           "paper-dqn": "tab:purple"}


def _fmt(stat: dict[str, Any], digits: int) -> str:
    if stat["mean"] is None:
        return "-"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _queries_to_90(row: dict[str, Any]) -> str:
    """Mean queries to 90 % coverage; runs that never got there count as their budget, and the text says how many."""
    stat, n = row["queries_to_90_or_budget"], len(row["seeds"])
    text = f"{stat['mean']:.0f} ± {stat['std']:.0f}"
    if row["reached_90"] < n:
        text += f" (reached {row['reached_90']}/{n}; else budget)"
    return text


def _queries_to_regions(row: dict[str, Any]) -> str:
    """Mean queries until every planted region is found; runs that never got there count as their budget."""
    stat, n = row["queries_to_all_regions_or_budget"], len(row["seeds"])
    text = f"{stat['mean']:.0f} ± {stat['std']:.0f}"
    if row["found_all_regions"] < n:
        text += f" (all found {row['found_all_regions']}/{n}; else budget)"
    return text


def format_table(rows: list[dict[str, Any]], planted: int) -> str:
    """The printed table of one fixture: one line per algorithm x budget, mean ± std over seeds."""
    header = ["algorithm", "budget", f"regions found /{planted} (worst)", "false regions", "queries to all regions",
              "hit rate", "x random", "true cells found", "queries to 90%", "top-5 prec.", "spearman", "wall s"]
    lines = []
    for row in sorted(rows, key=lambda r: (r["budget"], r["algorithm"] != "ppo", r["algorithm"])):
        lines.append([
            row["algorithm"], str(row["budget"]),
            f"{_fmt(row['regions_found'], 1)} ({row['worst_seed_regions_found']})",
            f"{_fmt(row['false_regions'], 1)} (confirmed {row['false_confirmed']['mean']:.1f})",
            _queries_to_regions(row), _fmt(row["hit_rate"], 3),
            f"{row['ratio_vs_random']:.2f}" if row["ratio_vs_random"] is not None else "-",
            f"{_fmt(row['true_cells_found'], 1)} ({row['true_cells_fraction']['mean']:.0%})",
            _queries_to_90(row), _fmt(row["top5_precision"], 2), _fmt(row["spearman"], 2), _fmt(row["seconds"], 1),
        ])  # fmt: skip
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in [header, *lines]]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def _row(rows: list[dict[str, Any]], fixture: str, algorithm: str, budget: int) -> dict[str, Any] | None:
    return next((r for r in rows if (r["fixture"], r["algorithm"], r["budget"]) == (fixture, algorithm, budget)), None)


def _mean(row: dict[str, Any] | None, key: str) -> float | None:
    return row[key]["mean"] if row is not None else None


def _check(fixture: str, check: str, met: bool, measured: str) -> dict[str, Any]:
    return {"fixture": fixture, "check": check, "met": bool(met), "measured": measured}


def acceptance(rows: list[dict[str, Any]], fixtures: Sequence[str], planted: dict[str, int]) -> list[dict[str, Any]]:
    """Issues 15 and 20's bar, fixture by fixture, from the table rows (largest budget where one is named)."""
    checks = []
    for fixture in fixtures:
        mine = [r for r in rows if r["fixture"] == fixture]
        if not any(r["algorithm"] == "ppo" for r in mine):
            continue
        budgets = sorted({r["budget"] for r in mine})
        top = budgets[-1]
        ppo, base = _row(rows, fixture, "ppo", top), _row(rows, fixture, BASELINE, top)
        checks.append(_check(fixture, f"ppo finds every planted region (Jaccard >= 0.8) on every seed at budget {top}",
                             ppo["worst_seed_regions_found"] == planted[fixture],
                             f"worst seed {ppo['worst_seed_regions_found']} of {planted[fixture]}"))
        checks.append(_check(fixture, f"ppo reports no false confirmed region at budget {top}",
                             ppo["false_confirmed"]["mean"] == 0, f"mean {ppo['false_confirmed']['mean']:.2f}"))
        if base is not None:
            ratio, worst = ppo["ratio_vs_random"] or 0.0, ppo["ratio_vs_random_min_seed"] or 0.0
            checks.append(_check(fixture, f"ppo hit rate >= {HIT_RATIO:g}x random at budget {top} (mean and every seed)",
                                 ratio >= HIT_RATIO and worst >= HIT_RATIO, f"mean {ratio:.2f}x, worst seed {worst:.2f}x"))
            mine_q, base_q = _mean(ppo, "queries_to_90_or_budget"), _mean(base, "queries_to_90_or_budget")
            checks.append(_check(fixture, f"ppo reaches 90% coverage within 1/{SPEEDUP:g} of random's queries",
                                 ppo["reached_90"] == len(ppo["seeds"]) and mine_q <= base_q / SPEEDUP,
                                 f"ppo {mine_q:.0f} ({ppo['reached_90']}/{len(ppo['seeds'])} reached), "
                                 f"random {base_q:.0f} ({base['reached_90']}/{len(base['seeds'])} reached)"))
        found = _mean(ppo, "true_cells_fraction")
        checks.append(_check(fixture, f"ppo finds >= {FOUND:.0%} of the true cells at budget {top}", found >= FOUND,
                             f"{found:.1%}"))
        precise = {b: _mean(_row(rows, fixture, "ppo", b), "top5_precision") for b in budgets if b >= PRECISION_FROM}
        checks.append(_check(fixture, f"ppo top-{TOP_K} precision 1.0 from budget {PRECISION_FROM}",
                             bool(precise) and all(p == 1.0 for p in precise.values()),
                             ", ".join(f"{b}: {p:.2f}" for b, p in precise.items())))
        pairs = {b: (_mean(_row(rows, fixture, "ppo", b), "spearman"), _mean(_row(rows, fixture, BASELINE, b), "spearman"))
                 for b in budgets}
        checks.append(_check(fixture, "ppo Spearman >= random's at every budget",
                             all(p is not None and (r is None or p >= r) for p, r in pairs.values()),
                             ", ".join(f"{b}: {p:.2f} vs {r:.2f}" for b, (p, r) in pairs.items() if p is not None and r is not None)))
        for other in ("bo", "paper-dqn"):
            if not any(r["algorithm"] == other for r in mine):
                continue
            checks.append(_beats_on_coverage(rows, fixture, other, budgets))
            if other == "paper-dqn":
                theirs = _row(rows, fixture, other, top)
                checks.append(_check(fixture, f"ppo hit rate > {other}'s at budget {top}",
                                     _mean(ppo, "hit_rate") > _mean(theirs, "hit_rate"),
                                     f"{_mean(ppo, 'hit_rate'):.3f} vs {_mean(theirs, 'hit_rate'):.3f}"))
    return checks


def _beats_on_coverage(rows: list[dict[str, Any]], fixture: str, other: str, budgets: list[int]) -> dict[str, Any]:
    """ppo finds at least as many true cells at every budget and, at the largest one, reaches 90 % sooner (or, where
    neither gets there sooner, finds more cells)."""
    found = {b: (_mean(_row(rows, fixture, "ppo", b), "true_cells_found"), _mean(_row(rows, fixture, other, b), "true_cells_found"))
             for b in budgets}
    top = budgets[-1]
    sooner = (_mean(_row(rows, fixture, "ppo", top), "queries_to_90_or_budget"),
              _mean(_row(rows, fixture, other, top), "queries_to_90_or_budget"))
    more = found[top][0] > found[top][1]
    met = all(p >= o for p, o in found.values()) and (sooner[0] < sooner[1] or (sooner[0] == sooner[1] and more))
    measured = ", ".join(f"{b}: {p:.1f} vs {o:.1f} cells" for b, (p, o) in found.items())
    return _check(fixture, f"ppo beats {other} on coverage", met,
                  f"{measured}; 90% at {sooner[0]:.0f} vs {sooner[1]:.0f} queries")


def plot(runs: list[dict[str, Any]], truths: dict[str, GroundTruth], budgets: Sequence[int], path: Path,
         curve: Callable[[dict[int, int], int], np.ndarray]) -> Path:
    """One panel per fixture: true failure cells found against explore queries, per algorithm (largest budget)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = max(budgets)
    fig, axes = plt.subplots(1, len(truths), figsize=(5.2 * len(truths), 4.4), squeeze=False)
    for ax, (fixture, truth) in zip(axes[0], truths.items()):
        n_true = len(truth.cells())
        for algorithm in dict.fromkeys(r["algorithm"] for r in runs if r["fixture"] == fixture):
            mine = [r for r in runs if (r["fixture"], r["algorithm"], r["budget"]) == (fixture, algorithm, top)]
            if not mine:
                continue
            first = [{int(c): t for c, t in r["true_cells_first_failure"].items()} for r in mine]
            curves = np.array([curve(f, r["queries"]) for f, r in zip(first, mine)])
            steps = np.arange(1, curves.shape[1] + 1)
            mean, std = curves.mean(axis=0), curves.std(axis=0)
            colour = COLOURS.get(algorithm)
            ax.plot(steps, mean, label=algorithm, color=colour, drawstyle="steps-post")
            ax.fill_between(steps, mean - std, mean + std, alpha=0.15, color=colour, step="post")
        ax.axhline(COVERAGE * n_true, color="black", lw=0.8, ls=":", label=f"{COVERAGE:.0%} of true cells")
        ax.set(xlabel="explore queries", ylabel="true failure cells seen failing", ylim=(0, n_true * 1.05 + 0.5),
               title=f"{fixture}: {n_true} true cells of {len(truth.rates)}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    seeds = max(len({r["seed"] for r in runs}), 1)
    fig.suptitle(f"Coverage of the true failure cells (grid rate ≥ {next(iter(truths.values())).threshold:g}), "
                 f"budget {top}, mean ± std over {seeds} seeds")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
