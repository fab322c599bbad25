"""What a cell does to the right answer: each factor's expectation, resolved against the model's labels, and
their combination per cell.

A factor's expectation is its op's (``Op.expect``) unless the YAML overrides it with ``expect: invariant``,
``expect: unjudgeable`` or ``expect: {map: {POSITIVE: NEGATIVE, NEGATIVE: POSITIVE}}``. A cell's expectation
combines its *active* factors (those not at a no-op level): directional maps compose in factor order, and a
cell with any active unjudgeable factor is not judged. Named maps (``polarity``, negation's default) are
resolved against the model's labels: a known positive/negative pair, possibly through a ``--label-map``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import BadSpace
from .concepts import ConceptSpace
from .ops import POLARITY, Factor

_POSITIVE = frozenset({"positive", "pos"})
_NEGATIVE = frozenset({"negative", "neg"})


def _norm(name: str) -> str:
    return re.sub(r"[\W_]+", "", str(name).casefold())


@dataclass(frozen=True)
class FactorExpectation:
    """One factor's expectation: its kind and, for a directional factor, its label map (None: not resolved)."""

    kind: str
    mapping: Mapping[str, str] | None = None
    named: str | None = None


@dataclass(frozen=True)
class Expectation:
    """The expectation of one cell: whether it is judged, and the directional maps of its active factors."""

    judged: bool = True
    steps: tuple[tuple[str, FactorExpectation], ...] = ()
    unjudged_by: tuple[str, ...] = ()

    @property
    def directional(self) -> bool:
        """Whether the right answer differs from the seed's."""
        return bool(self.steps)

    def apply(self, label: str) -> str:
        """The right answer for a seed whose own answer is ``label`` (label names of the model)."""
        for _, step in self.steps:
            label = (step.mapping or {}).get(label, label)
        return label

    def describe(self, base: str) -> str:
        """Where the right answer comes from, e.g. ``seed label, flipped by negate``."""
        if not self.judged:
            return f"not judged: {', '.join(self.unjudged_by)} has no automatic expectation"
        for name, step in self.steps:
            base += f", {'flipped' if step.named == POLARITY else 'mapped'} by {name}"
        return base


CLEAN = Expectation()


def declared(space: ConceptSpace, factor: Factor) -> tuple[str, str | dict | None]:
    """A factor's declared expectation kind and map (a named map, a dict, or None) before label resolution."""
    op = space.declared_op(factor)
    if factor.expect is None:
        return op.expect, op.expect_map
    if isinstance(factor.expect, Mapping):
        return "directional", dict(factor.expect["map"])
    if factor.expect == "directional":
        return "directional", op.expect_map
    return str(factor.expect), None


def polarity_map(labels: Sequence[str], aliases: Mapping[str, Sequence[str]] | None = None) -> dict[str, str] | None:
    """``{pos: neg, neg: pos}`` when exactly one label reads as positive and one as negative, else None.

    ``aliases`` gives other names of a model label (e.g. the dataset labels a ``--label-map`` sends to
    ``LABEL_0``), so that ``LABEL_0``/``LABEL_1`` models are recognised through their label map.
    """
    names = {label: {_norm(label), *(_norm(a) for a in (aliases or {}).get(label, ()))} for label in labels}
    positive = [label for label, keys in names.items() if keys & _POSITIVE]
    negative = [label for label, keys in names.items() if keys & _NEGATIVE]
    if len(positive) != 1 or len(negative) != 1 or positive == negative:
        return None
    return {positive[0]: negative[0], negative[0]: positive[0]}


def _label_map(factor: Factor, raw: Mapping, labels: Sequence[str] | None) -> dict[str, str]:
    """A user's label map checked against the model's labels: known names, one-to-one."""
    by_norm = {_norm(label): label for label in labels or ()}
    resolved: dict[str, str] = {}
    for key, value in raw.items():
        if labels is not None:
            missing = [name for name in (key, value) if _norm(name) not in by_norm]
            if missing:
                raise BadSpace(
                    f"factor {factor.name}: expect map names {missing[0]!r}, which is not a label of the model "
                    f"(labels: {', '.join(labels)})"
                )
            key, value = by_norm[_norm(key)], by_norm[_norm(value)]
        resolved[str(key)] = str(value)
    targets = list(resolved.values())
    if len(set(targets)) != len(targets):
        twice = next(t for t in targets if targets.count(t) > 1)
        raise BadSpace(
            f"factor {factor.name}: expect map sends two labels to {twice!r}; a directional map must be "
            "one-to-one (use expect: unjudgeable where the right answer cannot be stated)"
        )
    return resolved


def resolve(
    space: ConceptSpace, labels: Sequence[str] | None, aliases: Mapping[str, Sequence[str]] | None = None
) -> dict[str, FactorExpectation]:
    """Each factor's expectation with its map resolved against the model's labels (None: not a classifier).

    BadSpace when a map names labels the model lacks or is not one-to-one, and when a named map (negation's
    ``polarity``) cannot be resolved for a classifier whose labels are not a positive/negative pair.
    """
    resolved: dict[str, FactorExpectation] = {}
    for factor in space.factors:
        kind, raw = declared(space, factor)
        if kind != "directional":
            resolved[factor.name] = FactorExpectation(kind)
        elif isinstance(raw, Mapping):
            resolved[factor.name] = FactorExpectation(kind, _label_map(factor, raw, labels))
        elif labels is None:
            resolved[factor.name] = FactorExpectation(kind, None, raw)
        else:
            mapping = polarity_map(labels, aliases) if raw == POLARITY else None
            if mapping is None:
                raise BadSpace(
                    f"factor {factor.name} ({factor.op}) changes the right answer, and the model's labels "
                    f"({', '.join(labels)}) are not a positive/negative pair; give it expect: {{map: {{...}}}} "
                    "naming your labels, or expect: unjudgeable"
                )
            resolved[factor.name] = FactorExpectation(kind, mapping, raw)
    return resolved


def unresolvable_factors(
    space: ConceptSpace, labels: Sequence[str] | None, aliases: Mapping[str, Sequence[str]] | None = None
) -> list[str]:
    """Factors whose named directional map the model's labels cannot resolve (e.g. negation on a topic model)."""
    if labels is None:
        return []
    names = []
    for factor in space.factors:
        kind, raw = declared(space, factor)
        if kind == "directional" and raw == POLARITY and polarity_map(labels, aliases) is None:
            names.append(factor.name)
    return names


def cell_expectation(
    space: ConceptSpace, action: Sequence[int], factors: Mapping[str, FactorExpectation]
) -> Expectation:
    """The expectation of one cell from its active factors (those not at a no-op level)."""
    steps, unjudged = [], []
    for factor, index in zip(space.factors, space.validate_action(action)):
        if space.declared_op(factor).is_noop(factor.levels[index]):
            continue
        expectation = factors[factor.name]
        if expectation.kind == "unjudgeable":
            unjudged.append(factor.name)
        elif expectation.kind == "directional":
            steps.append((factor.name, expectation))
    return Expectation(judged=not unjudged, steps=tuple(steps), unjudged_by=tuple(unjudged))


def describe_cells(space: ConceptSpace) -> list[str]:
    """Per cell (row-major), what it expects in words: ``invariant``, ``directional (negate)`` or ``not judged (op)``."""
    factors = resolve(space, None)
    texts = []
    for action_id in range(space.num_cells):
        cell = cell_expectation(space, space.action_from_id(action_id), factors)
        if not cell.judged:
            texts.append(f"not judged ({', '.join(cell.unjudged_by)})")
        elif cell.directional:
            texts.append(f"directional ({', '.join(name for name, _ in cell.steps)})")
        else:
            texts.append("invariant")
    return texts
