"""The scan behind regions: the best conjunction of level sets over a counts tensor, by penalized scan statistic.

The counts are arrays shaped (axis 0, axis 1, ...), one axis per scan factor (the seed class first, then the
space's factors), holding seed-deduplicated failures ``k`` and seeds ``n``; ``taken`` marks entries already in an
earlier region (a candidate touching them is invalid: regions are disjoint). Each axis offers *choices*: None (any
level) or a tuple of admitted level indices.

A candidate scores Kulldorff's Bernoulli log-likelihood ratio of failing inside versus outside, minus a price for
each *piece* of each axis it constrains (see below: two tails that are not symmetric, "brightness ≤ 0.4 or 1.0",
say two things and cost twice): ``max(0.5 * z**2, tolerance * best)``, with ``z`` the normal quantile of a two-sided
test at 5 % Bonferroni-corrected over the axis's choices (a likelihood-ratio test of the constraint, which the
best of that many choices passes by chance about 5 % of the time), and ``best`` the best unpenalized score. So
a constraint stays only when the data demand it, and a region a person would name in one sentence ("brightness
0.2 and rotation ±30") wins over the same cells with a level subset that fits noise.

The prices decide how many axes a region constrains. Among the candidates constraining as many axes as the top one
whose penalized score is within ``tolerance * best`` of it, the one with the fewest *pieces* wins (each choice
states its own: an interval or a symmetric pair of tails such as "rotation ±30" is one piece, "rotation -30 or
≥ 15" two), then the higher score: a cell that fails a little more than the outside does not stretch a region into
a shape nobody would name.

The likelihood ratio of a union can beat each of its parts': a small region failing almost always glued to a wide
one failing a little scores more than either alone, and the second can then no longer be found whole (the union took
its pairs). So the best candidate is *refined* (``Scanner.refine``): when a part of it (some axes narrowed) fails
significantly more than its rest (by more than the price of the axes it narrows) and at least four times as often,
the part is taken instead, widened again on each axis where the pairs it adds fail alike, and the rest is left to
the next regions. (A mode failing unevenly, e.g. 60 % on squares and 20 % on triangles, is not cut: at twice as
often the discovery benchmark's shapes fixture lost its region on 2 of 5 seeds.)

Two pieces of one choice ("rotation ≤ 9 or 45") say that the pieces fail alike; they may instead be two regions
that the conjunction cut down to what they share. When no part fails far more than the rest, each piece of such a
choice is taken alone and widened on the other axes (the piece held) to one-piece choices whose added pairs fail like
it (``Scanner.refine``, ``_unglue``): when a piece widens to pairs that were asked, or holds alone a part failing
far more than its rest (a part the other piece hid: "rotation 0 or ≥ 36 and noise 0.25" where the upright tail fails
at every brightness and the tilted one only dark), the pieces were unlike, and the (widened) piece with the best
score is taken instead, the other left to the next regions. (The discovery benchmark's
shapes-mixed: squares fail dark at rotation ≤ 9 and 45, circles and triangles at 45 only. Asked most on squares, the
scan reported "rotation ≤ 9 or 45 and brightness 0.25, on square seeds" and then "rotation 45 and brightness 0.25,
on circle and triangle seeds": the tilted mode cut in two by class. Taken alone, the tail at 45 widens to every
class. Over ppo's recorded runs the final framing found every mode on 7 of 20 runs instead of 4.)

Search: every candidate at once when their number is at most ``ENUMERATION_LIMIT`` (tensor contractions); else
every candidate constraining at most two axes, then coordinate ascent from the best of those, one axis at a time,
each step vectorized over the axis's choices (multidimensional subset scanning, Zhang & Neill 2016).
"""

from __future__ import annotations

import itertools
from statistics import NormalDist
from typing import Sequence

import numpy as np

from .stats import bernoulli_scan_llr

ENUMERATION_LIMIT = 2_000_000  # candidates enumerated at once; larger grids go through the ascent
ASCENT_STARTS = 8  # best two-axis candidates the ascent starts from
SWEEPS = 20  # at most this many passes over the axes per ascent
SPLITS = 3  # at most this many splits of a region into its strongest part (``Scanner.refine``)
SPLIT_RATIO = 0.25  # a part is split off when the rest of the region fails at most this share as often


def constraint_price(choices: int, alpha: float = 0.05) -> float:
    """Half the squared normal quantile of a two-sided test at ``alpha`` over ``choices`` constrained options."""
    if choices <= 1:
        return 0.0
    z = NormalDist().inv_cdf(1.0 - alpha / (2.0 * (choices - 1)))
    return 0.5 * z * z


def _masks(choices: Sequence, size: int) -> np.ndarray:
    """(choices, levels) 0/1 matrix of which levels each choice admits."""
    masks = np.zeros((len(choices), size))
    for row, admitted in enumerate(choices):
        masks[row, list(range(size)) if admitted is None else list(admitted)] = 1.0
    return masks


def _contract(tensor: np.ndarray, masks: Sequence[np.ndarray]) -> np.ndarray:
    """Sum ``tensor`` over every candidate: axis a of the result indexes the choices of axis a."""
    out = tensor
    for matrix in masks:
        out = np.tensordot(out, matrix, axes=([0], [1]))  # the contracted axis goes last, in order
    return out


class Scanner:
    """The penalized scan of one counts tensor (see module doc)."""

    def __init__(self, choices: Sequence[Sequence], k: np.ndarray, n: np.ndarray, taken: np.ndarray,
                 tolerance: float, pieces: Sequence[Sequence[int]]) -> None:
        self.choices = [list(c) for c in choices]
        self.pieces = [list(p) for p in pieces]  # per axis and choice: the pieces of its words (see module doc)
        self.k, self.n, self.taken = k, n, taken.astype(float)
        self.k_all, self.n_all = float(k.sum()), float(n.sum())
        self.masks = [_masks(c, size) for c, size in zip(self.choices, k.shape)]
        self.prices = np.array([constraint_price(len(c) - 1) for c in self.choices])
        self.tolerance = tolerance

    def best(self) -> tuple[list, float] | None:
        """The best penalized candidate (one choice per axis) and its raw score, or None when none has excess."""
        total = float(np.prod([len(c) for c in self.choices], dtype=float))
        return self._enumerate() if total <= ENUMERATION_LIMIT else self._ascend()

    def _score(self, k_in: np.ndarray, n_in: np.ndarray, overlap: np.ndarray) -> np.ndarray:
        """Raw scores, 0 where a candidate overlaps taken entries or has no failure."""
        score = bernoulli_scan_llr(k_in, n_in, self.k_all, self.n_all)
        return np.where((overlap == 0) & (k_in > 0), score, 0.0)

    def _price(self, best: float) -> np.ndarray:
        """The price of constraining each axis, given the best raw score."""
        return np.maximum(self.prices, self.tolerance * best)

    def _over_candidates(self, per_choice: Sequence[Sequence[float]]) -> np.ndarray:
        """Sum, for every candidate, of a per-axis value of its choice (an array shaped like the candidates)."""
        ndim = len(self.choices)
        return sum(np.asarray(values, dtype=float).reshape([-1 if i == a else 1 for i in range(ndim)])
                   for a, values in enumerate(per_choice))

    def _enumerate(self) -> tuple[list, float] | None:
        score = self._score(_contract(self.k, self.masks), _contract(self.n, self.masks),
                            _contract(self.taken, self.masks))
        best = float(score.max())
        if best <= 0:
            return None
        price = self._price(best)
        penalty = self._over_candidates([[price[a] * pieces for pieces in self.pieces[a]]
                                         for a in range(len(self.choices))])
        value = np.where(score > 0, score - penalty, -np.inf)
        constrained = self._over_candidates([[c is not None for c in choices] for choices in self.choices])
        top = np.unravel_index(int(np.argmax(value)), score.shape)
        near = (value >= value[top] - self.tolerance * best) & (constrained == constrained[top])
        cost = np.where(near, self._over_candidates(self.pieces), np.inf)
        index = np.unravel_index(int(np.argmax(np.where(cost == cost.min(), value, -np.inf))), score.shape)
        return [self.choices[a][i] for a, i in enumerate(index)], float(score[index])

    def refine(self, picks: list) -> tuple[list, float]:
        """Split a region whose inside is not one failure rate: its strongest part, grown while it stays alike.

        The best region may glue a small region that fails almost always to a wide one that fails a little (the
        likelihood ratio of the union beats each part's). Within the region, the scan looks for the part (the
        region with some of its axes narrowed) whose rate differs from the rest's by more than the price of the
        axes it narrows, and fails at least ``1 / SPLIT_RATIO`` times as often as the rest; when there is one, it is
        taken instead, then widened one axis at a time to the level set with the best score among those whose
        added pairs fail alike (their difference from the part is below the axis's price). When there is none, a
        choice of two pieces whose pieces are unlike is split (``_unglue``). Either way the result is split again,
        at most ``SPLITS`` times. Returns the picks and their raw score.
        """
        for _ in range(SPLITS):
            split = self._strongest_part(picks)
            if split is None:
                split = self._unglue(picks)
            if split is None:
                break
            picks = split
        k_in, n_in, _ = self._counts(picks)
        return picks, float(self._score(np.array(k_in), np.array(n_in), np.array(0.0)))

    def _strongest_part(self, picks: list) -> list | None:
        """The part of a region failing far more than its rest, grown while it stays alike, or None (see
        ``refine``)."""
        inside = self._mask(picks)
        narrower = [list(c) if p is None else [None] + [x for x in c if x is not None and set(x) < set(p)]
                    for c, p in zip(self.choices, picks)]
        pieces = [[self.pieces[a][self.choices[a].index(x)] if x is not None else 0 for x in c]
                  for a, c in enumerate(narrower)]
        sub = Scanner(narrower, self.k * inside, self.n * inside, np.zeros(self.k.shape), self.tolerance, pieces)
        found = sub.best()
        if found is None:
            return None
        narrowed, within = found
        part = [p if x is None else x for x, p in zip(narrowed, picks)]
        price = sub._price(within)
        k_p, n_p, _ = self._counts(part)
        k_r, n_r, _ = self._counts(picks)
        if (within - sum(price[a] for a, x in enumerate(narrowed) if x is not None) <= 0 or n_p >= n_r
                or (k_r - k_p) / (n_r - n_p) > SPLIT_RATIO * k_p / n_p):
            return None
        return self._grow(part)

    def _unglue(self, picks: list) -> list | None:
        """The strongest piece of a region glued from unlike pieces, grown on its own, or None (see module doc).

        A choice of two pieces ("rotation ≤ 9 or 45") says that the pieces fail alike. When one piece, alone, widens
        on another axis to asked pairs that fail like it (``_grow`` with the piece held), the pieces are two regions
        that the conjunction cut down to what they share; when one piece, alone, holds a part failing far more than
        its rest (``_strongest_part``), which the other piece hid, they are two regions glued. Either way the piece
        with the best score (widened) is taken, and the other is left to the next regions.
        """
        best, best_score = None, 0.0
        for axis, pick in enumerate(picks):
            if pick is None or self.pieces[axis][self.choices[axis].index(pick)] < 2:
                continue
            for piece in self._pieces_of(axis, pick):
                part = picks[:axis] + [piece] + picks[axis + 1 :]
                grown = self._grow(part, held=axis, whole=True)
                k_g, n_g, _ = self._counts(grown)
                if n_g > self._counts(part)[1] or self._strongest_part(part) is not None:
                    score = float(self._score(np.array(k_g), np.array(n_g), np.array(0.0)))
                    if score > best_score:
                        best, best_score = grown, score
        return best

    def _pieces_of(self, axis: int, pick: tuple) -> list[tuple]:
        """The one-piece choices of an axis inside a choice of several pieces (an interval of it, or a symmetric
        pair of tails)."""
        return [c for i, c in enumerate(self.choices[axis])
                if c is not None and set(c) <= set(pick) and self.pieces[axis][i] == 1]

    def _grow(self, picks: list, held: int | None = None, whole: bool = False) -> list:
        """Widen ``picks`` one axis at a time (but axis ``held``; with ``whole``, to choices of one piece only) while
        the pairs it adds fail like the region (see ``refine``)."""
        picks = list(picks)
        for _ in range(SWEEPS):
            changed = False
            for axis in range(len(picks)):
                if axis == held:
                    continue
                k_w, n_w, overlap = self._axis_sums(picks, axis)  # every choice of the axis at once
                now_index = self.choices[axis].index(picks[axis])
                k_r, n_r = k_w[now_index], n_w[now_index]
                now = set(range(self.k.shape[axis])) if picks[axis] is None else set(picks[axis])
                best, best_score = picks[axis], -np.inf
                for i, choice in enumerate(self.choices[axis]):
                    admitted = set(range(self.k.shape[axis])) if choice is None else set(choice)
                    if not admitted >= now or overlap[i] > 0 or (whole and self.pieces[axis][i] > 1):
                        continue
                    differ = bernoulli_scan_llr(np.array(k_r), np.array(n_r), k_w[i], n_w[i]) if n_w[i] > n_r else 0.0
                    if float(differ) >= self.prices[axis]:
                        continue
                    score = float(self._score(np.array(k_w[i]), np.array(n_w[i]), np.array(0.0)))
                    if score > best_score + 1e-9 or (abs(score - best_score) <= 1e-9 and choice is None):
                        best, best_score = choice, score
                if best != picks[axis]:
                    picks[axis], changed = best, True
            if not changed:
                break
        return picks

    def _mask(self, picks: list) -> np.ndarray:
        """0/1 tensor of the entries a candidate admits."""
        out = np.ones(self.k.shape)
        for a, p in enumerate(picks):
            vector = self.masks[a][self.choices[a].index(p)]
            out = out * vector.reshape([-1 if i == a else 1 for i in range(self.k.ndim)])
        return out

    def _counts(self, picks: list) -> tuple[float, float, float]:
        """Failures, seeds and taken entries inside a candidate."""
        sums = self._axis_sums(picks, 0)
        index = self.choices[0].index(picks[0])
        return tuple(float(column[index]) for column in sums)  # type: ignore[return-value]

    def _constrained(self, picks: list) -> int:
        return sum(p is not None for p in picks)

    def _pieces(self, picks: list) -> int:
        return sum(self.pieces[a][self.choices[a].index(p)] for a, p in enumerate(picks))

    def _pair_candidates(self) -> list[tuple[float, list]]:
        """Every candidate constraining at most two axes, scored raw: (score, picks), best first."""
        found = []
        axes = range(self.k.ndim)
        for a, b in itertools.combinations(axes, 2):
            others = tuple(i for i in axes if i not in (a, b))
            sums = [t.sum(axis=others) for t in (self.k, self.n, self.taken)]
            k_in, n_in, overlap = (self.masks[a] @ s @ self.masks[b].T for s in sums)
            score = self._score(k_in, n_in, overlap)
            for i, j in zip(*np.nonzero(score > 0)):
                picks = [None] * self.k.ndim
                picks[a], picks[b] = self.choices[a][i], self.choices[b][j]
                found.append((float(score[i, j]), picks))
        found.sort(key=lambda item: -item[0])
        return found

    def _axis_sums(self, picks: list, axis: int) -> list[np.ndarray]:
        """Failures, seeds and taken entries of every choice of one axis, the other axes held at ``picks``."""
        vectors = [self.masks[a][self.choices[a].index(p)] if a != axis else None for a, p in enumerate(picks)]
        sums = []
        for tensor in (self.k, self.n, self.taken):
            out = tensor
            for a in reversed(range(tensor.ndim)):  # contract the other axes with their admitted-level vectors
                if a != axis:
                    out = np.tensordot(out, vectors[a], axes=([a], [0]))
            sums.append(self.masks[axis] @ out)
        return sums

    def _axis_options(self, picks: list, axis: int) -> np.ndarray:
        """Raw scores of every choice of one axis, the other axes held at ``picks``."""
        return self._score(*self._axis_sums(picks, axis))

    def _penalized(self, picks: list, score: float, price: np.ndarray) -> float:
        return score - sum(price[a] * self.pieces[a][self.choices[a].index(p)] for a, p in enumerate(picks))

    def _ascend(self) -> tuple[list, float] | None:
        starts = self._pair_candidates()
        if not starts:
            return None
        price = self._price(starts[0][0])
        ends: list[tuple[float, list, float]] = []
        for score, picks in starts[:ASCENT_STARTS]:
            picks = list(picks)
            value = self._penalized(picks, score, price)
            for _ in range(SWEEPS):
                improved = False
                for axis in range(len(picks)):
                    raw = self._axis_options(picks, axis)
                    options = [self._penalized(picks[:axis] + [c] + picks[axis + 1 :], float(r), price) if r > 0
                               else -np.inf for c, r in zip(self.choices[axis], raw)]
                    top = int(np.argmax(options))
                    if options[top] > value + 1e-9:
                        picks[axis], value, score, improved = self.choices[axis][top], options[top], float(raw[top]), True
                if not improved:
                    break
            ends.append((value, picks, score))
        top = max(ends, key=lambda end: end[0])
        near = [end for end in ends if end[0] >= top[0] - self.tolerance * starts[0][0]
                and self._constrained(end[1]) == self._constrained(top[1])]
        value, picks, score = min(near, key=lambda end: (self._pieces(end[1]), -end[0]))
        return picks, score
