"""Failure regions: conjunctions over factors that a person would name in one sentence, found by a scan statistic.

A *region* admits, per factor, any level or a set of levels, and optionally only some seed classes:

* an **ordered** factor (numeric levels, ordered by value, not by listing order) admits an interval
  ("brightness ≤ 0.4", "rotation 0 to 15") or two tails ("rotation ±30", "|rotation| ≥ 15");
* an **unordered** factor admits any subset of its levels ("case upper or toggle");
* when the seeds carry classes (2 to ``MAX_CLASSES`` of them), the class is one more unordered factor: a region
  may hold only on some classes ("on square and triangle seeds").

The scan (``fade_hub.scan``) scores a candidate by Kulldorff's Bernoulli log-likelihood ratio of failing inside
versus outside, over seed-deduplicated (class, cell) counts of the exploration, less a price for every factor it
constrains, so that a constraint stays only when the data demand it and the region is the simplest that explains
them ("brightness 0.2 and rotation ±30" wins over the same cells with a saturation subset that fits noise). The
best region is refined (a part of it failing far more often than its rest is split off, ``Scanner.refine``) and
taken, its (class, cell) pairs are removed, and the scan repeats, so regions are disjoint. An
unordered factor with many levels offers its levels sorted by failure rate (the linear-time subset scanning
property of such scores).

Regions are named by a canonical ``region_id`` (``rotation=-30,30&brightness=0.2&class=square``: constrained
factors in space order, levels in value order, the class last; ``all`` for no constraint) that
:meth:`RegionGrid.parse` reads back, and described in words by :meth:`RegionGrid.describe`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import quote, unquote

import numpy as np

from .errors import BadConfig
from .perturb.ops import format_level
from .scan import Scanner

MAX_CLASSES = 8  # more distinct seed classes than this and the class is not a factor of regions
MAX_SUBSET_LEVELS = 10  # unordered factors with more levels are scanned by rate-sorted prefixes
ALL = "all"  # the region_id of the region without constraint
CLASS = "class"  # the name of the class factor in ids and descriptions


@dataclass(frozen=True)
class Region:
    """A conjunction: per factor of the space the admitted level indices (None: any), and the admitted classes."""

    levels: tuple[tuple[int, ...] | None, ...]
    classes: tuple[int, ...] | None = None  # indices into RegionGrid.classes; None: any class

    @property
    def constrained(self) -> int:
        """How many factors (the class included) the region constrains."""
        return sum(level is not None for level in self.levels) + (self.classes is not None)

    def cell_mask(self, shape: Sequence[int]) -> np.ndarray:
        """Boolean array over the space's cells (row-major, flattened): which cells the region admits."""
        mask = np.ones(tuple(shape), dtype=bool)
        for axis, admitted in enumerate(self.levels):
            if admitted is not None:
                keep = np.zeros(shape[axis], dtype=bool)
                keep[list(admitted)] = True
                mask &= keep.reshape([-1 if a == axis else 1 for a in range(len(shape))])
        return mask.reshape(-1)

    def cells(self, shape: Sequence[int]) -> list[int]:
        """The action ids of the cells the region admits, ascending."""
        return [int(i) for i in np.flatnonzero(self.cell_mask(shape))]

    def class_mask(self, num_classes: int) -> np.ndarray:
        """Boolean array over the classes (one entry when the seeds have none): which the region admits."""
        mask = np.ones(max(num_classes, 1), dtype=bool)
        if self.classes is not None:
            mask[:] = False
            mask[list(self.classes)] = True
        return mask

    def pair_mask(self, shape: Sequence[int], num_classes: int) -> np.ndarray:
        """Boolean array (classes, cells): the (class, cell) pairs the region admits."""
        return self.class_mask(num_classes)[:, None] & self.cell_mask(shape)[None, :]


@dataclass(frozen=True)
class Axis:
    """One factor of the scan (a space factor or the class): its level texts, their order, and its choices."""

    name: str
    levels: tuple[str, ...]
    values: tuple[Any, ...]
    ordered: bool

    @property
    def value_order(self) -> list[int]:
        """Level indices sorted by value (ordered factors) or in listing order."""
        if not self.ordered:
            return list(range(len(self.levels)))
        return sorted(range(len(self.levels)), key=lambda i: (float(self.values[i]), i))

    def choices(self) -> list[tuple[int, ...] | None]:
        """Every level set the factor may admit: None (any) first, then intervals / tails or subsets."""
        size = len(self.levels)
        if size == 1:
            return [None]
        if self.ordered:
            order = self.value_order
            sets = [order[i : j + 1] for i in range(size) for j in range(i, size) if (i, j) != (0, size - 1)]
            sets += [order[: i] + order[j + 1 :] for i in range(1, size - 1) for j in range(i, size - 1)]
        elif size <= MAX_SUBSET_LEVELS:
            sets = [list(c) for r in range(1, size) for c in itertools.combinations(range(size), r)]
        else:
            sets = [[i] for i in range(size)]  # the scan adds rate-sorted prefixes per pass
        return [None] + [tuple(sorted(s)) for s in sets]

    def pieces(self, admitted: tuple[int, ...] | None) -> int:
        """How many pieces the words for ``admitted`` take: 0 for any level, 2 for two tails that are not
        symmetric ("rotation -30 or ≥ 15"), else 1 (a level, an interval, "rotation ±30", a subset)."""
        if admitted is None:
            return 0
        if not self.ordered:
            return 1
        order = self.value_order
        ranks = sorted(order.index(i) for i in admitted)
        split = next((i for i in range(1, len(ranks)) if ranks[i] != ranks[i - 1] + 1), None)
        if split is None:
            return 1
        return 1 if float(self.values[order[ranks[split - 1]]]) == -float(self.values[order[ranks[split]]]) else 2


class RegionGrid:
    """The axes of a space's regions (its factors, and the seed classes when there are 2 to ``MAX_CLASSES``)."""

    def __init__(self, space: Any, classes: Sequence[str] = ()) -> None:
        self.space = space
        self.shape = tuple(space.shape)
        self.axes = [
            Axis(factor.name, tuple(format_level(v) for v in factor.levels), tuple(factor.levels), factor.is_ordered)
            for factor in space.factors
        ]
        classes = sorted({str(c) for c in classes if str(c)})
        self.classes = tuple(classes) if 2 <= len(classes) <= MAX_CLASSES else ()

    @property
    def num_classes(self) -> int:
        """Classes as a factor of regions (1 when the class is not one)."""
        return max(len(self.classes), 1)

    def class_index(self, contexts: Sequence[str]) -> np.ndarray:
        """The class index of each seed context (0 for all when the class is not a factor; -1 for unknown ones)."""
        if not self.classes:
            return np.zeros(len(contexts), dtype=np.int64)
        lookup = {name: i for i, name in enumerate(self.classes)}
        return np.array([lookup.get(str(c), -1) for c in contexts], dtype=np.int64)

    # names ------------------------------------------------------------------------------------------------

    def region_id(self, region: Region) -> str:
        """The canonical id: ``factor=level,level`` for each constrained factor in space order, then the class."""
        parts = []
        for axis, admitted in zip(self.axes, region.levels):
            if admitted is not None:
                ordered = [i for i in axis.value_order if i in admitted]
                parts.append(f"{_quote(axis.name)}={','.join(_quote(axis.levels[i]) for i in ordered)}")
        if region.classes is not None:
            parts.append(f"{CLASS}={','.join(_quote(self.classes[i]) for i in region.classes)}")
        return "&".join(parts) or ALL

    def parse(self, region_id: str) -> Region:
        """The region a canonical id names; BadConfig naming what does not fit this space."""
        text = str(region_id).strip()
        levels: list[tuple[int, ...] | None] = [None] * len(self.axes)
        classes = None
        if text == ALL:
            return Region(tuple(levels))
        names = [axis.name for axis in self.axes]
        for part in text.split("&"):
            name, sep, values = part.partition("=")
            name = unquote(name)
            if not sep or not values:
                raise BadConfig(f"region {text!r}: {part!r} is not factor=level[,level...]")
            wanted = [unquote(v) for v in values.split(",")]
            if name == CLASS and CLASS not in names:
                unknown = [w for w in wanted if w not in self.classes]
                if unknown or not self.classes:
                    raise BadConfig(f"region {text!r}: class {', '.join(unknown) or wanted[0]} is not one of the run's "
                                    f"classes ({', '.join(self.classes) or 'none'})")
                classes = tuple(sorted(self.classes.index(w) for w in set(wanted)))
                continue
            if name not in names:
                raise BadConfig(f"region {text!r}: {name!r} is not a factor of the space ({', '.join(names)})")
            axis = self.axes[names.index(name)]
            unknown = [w for w in wanted if w not in axis.levels]
            if unknown:
                raise BadConfig(f"region {text!r}: {name} has no level {unknown[0]!r} (levels: {', '.join(axis.levels)})")
            levels[names.index(name)] = tuple(sorted({axis.levels.index(w) for w in wanted}))
        return Region(tuple(levels), classes)

    def describe(self, region: Region) -> str:
        """The region in words: ``rotation ±30 and brightness 0.2 (any saturation), on square and triangle seeds``."""
        said = [_describe_levels(axis, admitted) for axis, admitted in zip(self.axes, region.levels) if admitted is not None]
        free = [axis.name for axis, admitted in zip(self.axes, region.levels) if admitted is None]
        text = " and ".join(said) if said else "every perturbation"
        if said and free:
            text += f" (any {_join(free, 'or')})"
        if region.classes is not None:
            text += f", on {_join([self.classes[i] for i in region.classes], 'and')} seeds"
        return text

    def factors(self, region: Region) -> dict[str, list[str]]:
        """The conjunction as a mapping: constrained factor (or ``class``) -> admitted level texts in value order."""
        mapping = {
            axis.name: [axis.levels[i] for i in axis.value_order if i in admitted]
            for axis, admitted in zip(self.axes, region.levels) if admitted is not None
        }
        if region.classes is not None:
            mapping[CLASS] = [self.classes[i] for i in region.classes]
        return mapping

    # scan -------------------------------------------------------------------------------------------------

    def scan(self, failures: np.ndarray, seeds: np.ndarray, *, max_regions: int,
             tolerance: float = 0.05) -> list[tuple[Region, float]]:
        """Up to ``max_regions`` disjoint regions, best first, with their scan scores (log-likelihood ratios).

        ``failures`` and ``seeds`` are (classes, cells) arrays of seed-deduplicated counts. Each region is the best
        candidate under the penalized score of ``fade_hub.scan`` (a constraint costs at least ``tolerance`` times
        the best score), refined; the scan stops when no candidate has excess failures.
        """
        if max_regions < 1:
            raise BadConfig(f"max_regions must be >= 1, got {max_regions}")
        shape = (self.num_classes, *self.shape)
        k = np.asarray(failures, dtype=float).reshape(shape)
        n = np.asarray(seeds, dtype=float).reshape(shape)
        taken = np.zeros(shape, dtype=bool)
        found: list[tuple[Region, float]] = []
        while len(found) < max_regions:
            k_left, n_left = np.where(taken, 0.0, k), np.where(taken, 0.0, n)
            choices = self._axes_choices(k_left, n_left)
            pieces = [[0 if c is None else 1 for c in choices[0]]] + [
                [axis.pieces(c) for c in axis_choices] for axis, axis_choices in zip(self.axes, choices[1:])]
            scanner = Scanner(choices, k_left, n_left, taken, tolerance, pieces)
            best = scanner.best()
            if best is None:
                break
            best = scanner.refine(best[0])
            region = self._region(best[0])
            found.append((region, best[1]))
            taken |= region.pair_mask(self.shape, self.num_classes).reshape(shape)
        return found

    def _axes_choices(self, k: np.ndarray, n: np.ndarray) -> list[list[tuple[int, ...] | None]]:
        """The choices of each scan axis (class first), prefixes by rate for large unordered factors."""
        axes: list[list[tuple[int, ...] | None]] = [self._class_choices()]
        for position, axis in enumerate(self.axes):
            choices = axis.choices()
            if not axis.ordered and len(axis.levels) > MAX_SUBSET_LEVELS:
                others = tuple(a for a in range(k.ndim) if a != position + 1)
                choices = [None] + _rate_prefixes(k.sum(axis=others), n.sum(axis=others))
            axes.append(choices)
        return axes

    def _class_choices(self) -> list[tuple[int, ...] | None]:
        if not self.classes:
            return [None]
        size = len(self.classes)
        return [None] + [c for r in range(1, size) for c in itertools.combinations(range(size), r)]

    def _region(self, picks: Sequence[tuple[int, ...] | None]) -> Region:
        """The region of one choice per scan axis (class first)."""
        return Region(tuple(picks[1:]), picks[0])


def _rate_prefixes(k: np.ndarray, n: np.ndarray) -> list[tuple[int, ...]]:
    """Level sets of the top 1, 2, ... levels by failure rate (all but the last, which is 'any')."""
    rate = np.where(n > 0, k / np.where(n > 0, n, 1.0), 0.0)
    order = [int(i) for i in np.argsort(-rate, kind="mergesort")]
    return [tuple(sorted(order[: t])) for t in range(1, len(order))]


def _quote(text: str) -> str:
    """A level or factor text safe inside a region id (``&``, ``=``, ``,`` and ``%`` escaped)."""
    return quote(str(text), safe=" .-+_:()/'")


def _join(words: Sequence[str], last: str) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    words = list(words)
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


def _number(value: Any) -> str:
    return format_level(value)


def _describe_levels(axis: Axis, admitted: tuple[int, ...]) -> str:
    """One factor's admitted levels in words."""
    if not axis.ordered:
        return f"{axis.name} {_join([axis.levels[i] for i in admitted], 'or')}"
    order = axis.value_order
    ranks = sorted(order.index(i) for i in admitted)
    values = [axis.values[order[r]] for r in ranks]
    last = len(order) - 1
    if ranks == list(range(ranks[0], ranks[-1] + 1)):  # an interval
        if len(ranks) == 1:
            return f"{axis.name} {_number(values[0])}"
        if ranks[0] == 0:
            return f"{axis.name} ≤ {_number(values[-1])}"
        if ranks[-1] == last:
            return f"{axis.name} ≥ {_number(values[0])}"
        return f"{axis.name} {_number(values[0])} to {_number(values[-1])}"
    split = next(i for i in range(1, len(ranks)) if ranks[i] != ranks[i - 1] + 1)  # two tails
    low, high = values[split - 1], values[split]
    if float(low) == -float(high):
        if split == 1 and len(ranks) == 2:
            return f"{axis.name} ±{_number(high)}"
        return f"|{axis.name}| ≥ {_number(high)}"
    low_text = _number(low) if split == 1 else f"≤ {_number(low)}"
    high_text = _number(high) if split == len(ranks) - 1 else f"≥ {_number(high)}"
    return f"{axis.name} {low_text} or {high_text}"
