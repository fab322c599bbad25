"""The failure landscape: one row per cell of the concept space, with its seed-counted statistics and rank.

A *cell* is one point of the space (one level per factor), identified by its row-major ``action_id``. Every count
is of seeds, not queries (``fade_hub.evidence``): a (cell, seed) pair asked twice counts once.

Exploration
    ``seeds`` / ``failures`` / ``failure_rate`` / ``ci_low`` / ``ci_high`` / ``mean_severity`` come from the
    ``explore`` phase (``queries`` is how many times the cell was asked, repeats included). Intervals are Wilson
    score intervals at 95 %; ``failure_rate`` is NaN for an unvisited cell, whose interval is (0, 1).
    ``uncertain``: fewer than ``LandscapeConfig.min_queries`` seeds.

Screening
    The search chose its cells adaptively, so its tests *screen*: they propose, confirmation decides. ``p_value``
    is a one-sided Fisher exact test that the cell fails more often than the clean baseline, the unperturbed
    exploration seeds (for prompt spaces, which have no unperturbed form, the pooled other cells); ``q_value`` its
    Benjamini-Hochberg adjustment over the visited judged cells; ``excess`` the failure rate above the baseline,
    with Newcombe's 95 % interval (``excess_low``, ``excess_high``). ``significant``: ``q_value <= alpha`` and
    ``excess_low >= min_excess``.

Regions and confirmation
    ``region_id`` / ``region_rank`` name the region (``fade_hub.regions``) holding the cell, ``region_confirmed``
    whether held-out seeds confirmed it. ``confirm_*`` count the held-out queries at the cell; inside a confirmed
    region each cell is tested on them (``confirm_p_value``, ``confirm_q_value`` adjusted within the region:
    hierarchical testing) and ``confirmed`` when that holds with the minimum excess. These columns are filled by
    ``fade_hub.characterize``; :func:`cell_table` alone leaves them empty.

Ranking
    A *failure mode* cell is significant, confirmed, or inside a confirmed region. Modes come first, sorted by
    (1) inside a confirmed region, (2) confirmed, (3) the Wilson lower bound of the best evidence (held-out when
    confirmed), (4) mean severity, (5) seeds, (6) ``action_id``. Every cell gets an integer ``rank`` (1 = worst).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import BadConfig
from .config.regions import ErrorRateOptions, RegionOptions
from .evidence import Evidence, cell_counts, whole
from .perturb.expect import describe_cells
from .stats import benjamini_hochberg, fisher_greater, newcombe_differences, wilson_intervals

LANDSCAPE_COLUMNS = [
    "action_id", "expectation", "judged", "seeds", "failures", "queries", "failure_rate", "ci_low", "ci_high",
    "mean_severity", "policy_prob", "uncertain", "excess", "excess_low", "excess_high", "p_value", "q_value",
    "significant", "region_id", "region_rank", "region_confirmed", "confirm_seeds", "confirm_failures",
    "confirm_rate", "confirm_ci_low", "confirm_ci_high", "confirm_p_value", "confirm_q_value", "confirmed", "rank",
]  # fmt: skip


@dataclass
class LandscapeConfig(RegionOptions, ErrorRateOptions):
    """How cells and regions are tested and reported: the ``RegionOptions``, the tests' ``ErrorRateOptions`` and
    their other settings.

    ``min_queries``: fewer seeds than this at a cell and its rate is "uncertain". ``alpha``: the error rate of the
    tests (false discovery rate when screening, family-wise when confirming). ``min_excess``: a region or cell is a
    failure mode only when the lower 95 % bound of its failure rate above the clean rate is at least this.
    ``max_regions``: the scan reports at most this many disjoint regions. ``paired_above``: when the exploration
    seeds' clean failure rate is at least this, confirmation pairs each held-out seed's clean and perturbed answers
    (McNemar) instead of testing against the pooled clean rate. ``simpler_within``: a region constraining fewer
    factors is preferred while its scan score is within this share of the best.
    """

    min_queries: int = 5
    paired_above: float = 0.1
    simpler_within: float = 0.05

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> LandscapeConfig:
        """The config of a run's options by flat name (``--min-excess``, ``--max-regions``; defaults for runs made
        before they existed)."""
        defaults = cls()
        return cls(min_excess=float(options.get("min_excess", defaults.min_excess)),
                   max_regions=int(options.get("max_regions", defaults.max_regions)))


def factor_levels(space: Any) -> dict[str, list[str]]:
    """The level strings of every factor of ``space``, in factor and level order."""
    names = [factor.name for factor in space.factors]
    levels: dict[str, list[str]] = {}
    for j, factor in enumerate(space.factors):
        strings = []
        for i in range(len(factor.levels)):
            action = [0] * len(names)
            action[j] = i
            strings.append(str(space.level_strings(tuple(action))[factor.name]))
        levels[factor.name] = strings
    return levels


def _shape(levels: dict[str, list[str]]) -> tuple[int, ...]:
    return tuple(len(values) for values in levels.values())


def _rate(k: np.ndarray, n: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, k / np.where(n > 0, n, 1), np.nan)


def _intervals(k: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wilson intervals of seed counts (failure shares rounded to whole seeds)."""
    return wilson_intervals(np.rint(k), n)


def baseline_counts(clean: pd.DataFrame) -> tuple[int, int]:
    """(failing seeds, seeds) of some clean pairs."""
    return whole(clean["failure"].sum()), int(len(clean))


def clean_baseline(queries: pd.DataFrame | list[dict]) -> dict[str, Any]:
    """The clean failure rate: failing unperturbed seeds, with its interval."""
    return Evidence.from_queries(queries).clean_summary()


def screen_cells(k: np.ndarray, n: np.ndarray, judged: np.ndarray, baseline: tuple[int, int] | None,
                 config: LandscapeConfig) -> dict[str, np.ndarray]:
    """Per cell: the excess over the baseline (or the other cells) with Newcombe's interval, the one-sided Fisher
    p-value, its BH q-value over the visited judged cells, and whether the cell is significant."""
    tested = judged & (n > 0)
    k1 = np.rint(k)
    if baseline is not None:
        k0, n0 = np.full(len(k), float(baseline[0])), np.full(len(k), float(baseline[1]))
    else:  # the pooled other cells
        k0, n0 = np.rint(k[judged].sum()) - k1, n[judged].sum() - n
    out = dict(zip(("excess", "excess_low", "excess_high"),
                   (np.where(tested, x, np.nan) for x in newcombe_differences(k1, n, k0, n0))))
    out["p_value"] = np.full(len(k), np.nan)
    for cell in np.flatnonzero(tested):
        out["p_value"][cell] = fisher_greater(int(k1[cell]), int(n[cell]), int(k0[cell]), int(n0[cell]))
    out["q_value"] = benjamini_hochberg(out["p_value"])
    with np.errstate(invalid="ignore"):
        out["significant"] = (out["q_value"] <= config.alpha) & (out["excess_low"] >= config.min_excess) & (k > 0)
    return out


def cell_table(evidence: Evidence, space: Any, policy_probs: np.ndarray | None = None,
               config: LandscapeConfig | None = None) -> pd.DataFrame:
    """The landscape's cell rows from exploration and screening (region and confirmation columns left empty)."""
    config = config or LandscapeConfig()
    levels = factor_levels(space)
    shape = _shape(levels)
    num_cells = int(np.prod(shape))
    expectation = np.asarray(describe_cells(space), dtype=object)
    judged = np.array([not text.startswith("not judged") for text in expectation])

    explore = evidence.phase("explore")
    k, n = (counts[0] for counts in cell_counts(explore, num_cells))
    severity = np.bincount(explore["action_id"].to_numpy(dtype=int),
                           weights=(explore["severity"] * (explore["failure"] > 0)).to_numpy(dtype=float),
                           minlength=num_cells)
    failing = np.bincount(explore["action_id"].to_numpy(dtype=int),
                          weights=(explore["failure"] > 0).to_numpy(dtype=float), minlength=num_cells)
    records = evidence.records
    asked = np.bincount(records.loc[records["phase"] == "explore", "action_id"].to_numpy(dtype=int), minlength=num_cells)
    baseline = baseline_counts(evidence.clean(held_out=False)) if evidence.has_clean else None
    screened = screen_cells(k, n, judged, baseline, config)
    ck, cn = (counts[0] for counts in cell_counts(evidence.phase("confirm"), num_cells))
    ci_low, ci_high = _intervals(k, n)
    c_low, c_high = _intervals(ck, cn)
    if policy_probs is None:
        probs = np.full(num_cells, np.nan)
    else:
        probs = np.asarray(policy_probs, dtype=float).reshape(-1)
        if probs.size != num_cells:
            raise BadConfig(f"policy_probs has {probs.size} entries; the space has {num_cells} cells")

    index = np.unravel_index(np.arange(num_cells), shape)
    data: dict[str, Any] = {name: np.asarray(values, dtype=object)[index[j]] for j, (name, values) in enumerate(levels.items())}
    data.update(
        action_id=np.arange(num_cells), expectation=expectation.astype(str), judged=judged,
        seeds=n.astype(int), failures=k, queries=asked, failure_rate=_rate(k, n), ci_low=ci_low, ci_high=ci_high,
        mean_severity=np.where(failing > 0, severity / np.where(failing > 0, failing, 1), 0.0), policy_prob=probs,
        uncertain=n < config.min_queries, **screened,
        region_id="", region_rank=-1, region_confirmed=False,
        confirm_seeds=cn.astype(int), confirm_failures=ck, confirm_rate=_rate(ck, cn),
        confirm_ci_low=np.where(cn > 0, c_low, np.nan), confirm_ci_high=np.where(cn > 0, c_high, np.nan),
        confirm_p_value=np.nan, confirm_q_value=np.nan, confirmed=False,
    )
    frame = pd.DataFrame(data)
    for name in levels:
        frame[name] = frame[name].astype(str)
    frame["rank"] = rank_cells(frame)
    return frame[list(levels) + LANDSCAPE_COLUMNS]


def is_mode(landscape: pd.DataFrame) -> pd.Series:
    """Which cells are failure modes: significant, confirmed, or inside a confirmed region (any failing cell in
    landscapes written before the significance test existed)."""
    if "significant" not in landscape.columns:
        return landscape["failures"] > 0
    mode = landscape["significant"].astype(bool) | landscape["confirmed"].astype(bool)
    if "region_confirmed" in landscape.columns:
        mode |= landscape["region_confirmed"].astype(bool)
    return mode


def seed_counts(landscape: pd.DataFrame, prefix: str = "") -> pd.Series:
    """The seeds behind each cell's rate (``prefix="confirm_"`` for the held-out ones); landscapes written before
    seeds were counted give their query counts."""
    name = f"{prefix}seeds" if f"{prefix}seeds" in landscape.columns else f"{prefix}queries"
    return landscape[name]


def rank_cells(frame: pd.DataFrame) -> np.ndarray:
    """Integer rank per row (1 = worst) under the module's ranking rule."""
    evidence = np.where(frame["confirmed"], frame["confirm_ci_low"], frame["ci_low"])
    key = pd.DataFrame(
        {
            "mode": is_mode(frame),
            "region": frame["region_confirmed"] if "region_confirmed" in frame.columns else False,
            "confirmed": frame["confirmed"],
            "failed": frame["failures"] > 0,
            "evidence": evidence,
            "severity": frame["mean_severity"],
            "seeds": seed_counts(frame),
            "action_id": frame["action_id"],
        }
    )
    order = key.sort_values(
        ["mode", "region", "confirmed", "failed", "evidence", "severity", "seeds", "action_id"],
        ascending=[False, False, False, False, False, False, False, True],
        kind="mergesort",
    ).index.to_numpy()
    ranks = np.empty(len(frame), dtype=int)
    ranks[order] = np.arange(1, len(frame) + 1)
    return ranks


def failure_modes(landscape: pd.DataFrame, top_k: int | None = None) -> pd.DataFrame:
    """The ranked failure-mode cells (see module doc), worst first, at most ``top_k``."""
    modes = landscape[is_mode(landscape)].sort_values("rank")
    if top_k is not None:
        modes = modes.head(top_k)
    return modes.reset_index(drop=True)


def _effect_table(level_names: list[str], n: np.ndarray, k: np.ndarray) -> pd.DataFrame:
    low, high = _intervals(k, n)
    return pd.DataFrame(
        {"level": level_names, "seeds": n.astype(int), "failures": k, "failure_rate": _rate(k, n),
         "ci_low": low, "ci_high": high}
    )


def _explore_grid(queries: pd.DataFrame | list[dict], shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Explore (seeds, failures) per cell, shaped like the space."""
    k, n = (counts[0] for counts in cell_counts(Evidence.from_queries(queries).phase("explore"), int(np.prod(shape))))
    return n.reshape(shape), k.reshape(shape)


def marginal_effects(queries: pd.DataFrame | list[dict], space: Any) -> dict[str, pd.DataFrame]:
    """Per factor: explore failure rate of each level (all levels, in order) pooled over the other factors."""
    levels = factor_levels(space)
    shape = _shape(levels)
    n, k = _explore_grid(queries, shape)
    effects = {}
    for j, (name, values) in enumerate(levels.items()):
        others = tuple(i for i in range(len(shape)) if i != j)
        effects[name] = _effect_table(values, n.sum(axis=others), k.sum(axis=others))
    return effects


def pair_table(queries: pd.DataFrame | list[dict], space: Any, pair: tuple[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Explore failure rates (NaN where unvisited) and seed counts of one factor pair; rows = levels of ``pair[0]``."""
    levels = factor_levels(space)
    shape = _shape(levels)
    names = list(levels)
    if pair[0] not in levels or pair[1] not in levels or pair[0] == pair[1]:
        raise BadConfig(f"{pair} is not a pair of two factors of the space ({', '.join(names)})")
    a, b = names.index(pair[0]), names.index(pair[1])
    n, k = _explore_grid(queries, shape)
    others = tuple(i for i in range(len(shape)) if i not in (a, b))
    n2, k2 = n.sum(axis=others), k.sum(axis=others)
    if a > b:
        n2, k2 = n2.T, k2.T
    rows, cols = pd.Index(levels[pair[0]], name=pair[0]), pd.Index(levels[pair[1]], name=pair[1])
    return pd.DataFrame(_rate(k2, n2), index=rows, columns=cols), pd.DataFrame(n2.astype(int), index=rows, columns=cols)


def pairwise_effects(queries: pd.DataFrame | list[dict], space: Any) -> dict[tuple[str, str], pd.DataFrame]:
    """Per factor pair (in factor order): explore failure rates, rows = levels of the first, NaN where unvisited."""
    names = [factor.name for factor in space.factors]
    return {pair: pair_table(queries, space, pair)[0] for pair in itertools.combinations(names, 2)}


def cell_label(row: pd.Series | dict, names: list[str], sep: str = " ") -> str:
    """``factor=level`` pairs of one landscape row."""
    return sep.join(f"{name}={row[name]}" for name in names)


def held_out_text(row: pd.Series | dict) -> str:
    """``yes 3/4`` / ``no 0/4`` for cells re-evaluated on held-out seeds, ``not run`` otherwise."""
    seeds = int(row.get("confirm_seeds", row.get("confirm_queries", 0)) or 0)
    if seeds == 0:
        return "not run"
    verdict = "yes" if bool(row["confirmed"]) else "no"
    return f"{verdict} {whole(row['confirm_failures'])}/{seeds}"


def count_text(row: pd.Series | dict) -> str:
    """Explore seed count of a cell, marked ``(uncertain)`` when under the landscape's threshold."""
    seeds = int(row.get("seeds", row.get("queries", 0)))
    return f"{seeds} (uncertain)" if bool(row["uncertain"]) else str(seeds)


def format_mode_table(modes: pd.DataFrame, space: Any, max_rows: int = 10) -> str:
    """Plain-text table of ranked failure-mode cells for the terminal."""
    names = [factor.name for factor in space.factors]
    with_policy = bool(modes["policy_prob"].notna().any()) if len(modes) else False
    header = ["rank", "cell", "failure rate [95% CI]", "seeds", "severity", "held-out"] + (["policy p"] if with_policy else [])
    rows = [
        [
            str(int(row["rank"])),
            cell_label(row, names),
            f"{row['failure_rate']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]",
            count_text(row),
            f"{row['mean_severity']:.2f}",
            held_out_text(row),
        ]
        + ([f"{row['policy_prob']:.3f}"] if with_policy else [])
        for _, row in modes.head(max_rows).iterrows()
    ]
    if not rows:
        return "no failure-mode cells"
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    if len(modes) > max_rows:
        lines.append(f"... {len(modes) - max_rows} more")
    return "\n".join(lines)
