"""Concept spaces: ordered factors × levels, loaded from YAML, mapped to and from discrete actions.

A space is the product of its factors' levels; an *action* holds one level index per factor
(a ``gymnasium.spaces.MultiDiscrete`` sample) and its ``action_id`` is the row-major index.
Ops live in one registry per modality (``image``, ``text``, ``prompt`` modules, each with an
``OPS`` dict of :class:`Op`), so adding an op is one function plus one registry entry. A factor may
also name the user's own function as ``op: package.module:function``; reading such a space imports
nothing, and :meth:`ConceptSpace.import_user_ops` imports it only when user code is allowed.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..errors import BadSpace
from ..files import write_atomic
from ..paths import NotUtf8, read_utf8
from ..tasks import MODALITIES, ModalitySpec, get_modality
from ..usercode import import_user_object, is_user_ref
from . import image, prompt, text
from .ops import EXPECT_KINDS, Factor, Op, format_level, is_real

# Each modality's module defines ``OPS`` and ``coerce(item)``.
_MODULES = {"image": image, "text": text, "prompt": prompt}

_TOP_KEYS = ("modality", "name", "description", "factors")
_FACTOR_KEYS = ("name", "op", "levels", "params", "expect", "ordered")


def _modality_module(modality: str) -> Any:
    """The module implementing a modality: it defines ``OPS`` and ``coerce(item)``."""
    if modality not in MODALITIES:
        raise BadSpace(f"unknown modality {modality!r} (known: {', '.join(MODALITIES)})")
    return _MODULES[modality]


def ops_for(modality: str) -> dict[str, Op]:
    """The op registry of a modality (``image``, ``text`` or ``prompt``)."""
    return _modality_module(modality).OPS


# What a space knows of a user op before it is imported: any level, no no-op level, not a template filler.
USER_OP = Op(fn=lambda item, level, rng_seed, factor: item, check=lambda level: None)


def _derive_seed(seed: int, index: int) -> int:
    """A 64-bit rng seed from the caller's seed and the factor's position."""
    state = np.random.SeedSequence([operator.index(seed) % 2**64, index]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 32 | int(state[1])


def _fail(source: str, key: str, message: str) -> BadSpace:
    return BadSpace(f"{source}: {key}: {message}" if key else f"{source}: {message}")


def _check_factors(modality: str, factors: Sequence[Factor], source: str) -> None:
    """Raise BadSpace naming the first invalid key of an already-typed factor list."""
    if modality not in MODALITIES:
        raise _fail(source, "modality", f"unknown modality {modality!r} (known: {', '.join(MODALITIES)})")
    if not factors:
        raise _fail(source, "factors", "must be a non-empty list of factors")
    ops = ops_for(modality)
    names: set[str] = set()
    slots: set[str] = set()
    for i, factor in enumerate(factors):
        key = f"factors[{i}]"
        if not isinstance(factor.name, str) or not factor.name.strip():
            raise _fail(source, f"{key}.name", "must be a non-empty string")
        if factor.name in names:
            raise _fail(source, f"{key}.name", f"duplicate factor name {factor.name!r}")
        names.add(factor.name)
        user_op = is_user_ref(factor.op)  # the user's own function: its levels and params are its business
        if factor.op not in ops and not user_op:
            raise _fail(source, f"{key}.op", f"unknown op {factor.op!r} for modality {modality} (known: "
                        f"{', '.join(sorted(ops))}, or your own package.module:function)")
        op = USER_OP if user_op else ops[factor.op]
        if not factor.levels:
            raise _fail(source, f"{key}.levels", "must be a non-empty list")
        seen: set[object] = set()
        for j, level in enumerate(factor.levels):
            problem = op.check(level)
            if problem:
                raise _fail(source, f"{key}.levels[{j}]", f"{problem} for op {factor.op}")
            identity = float(level) if is_real(level) else format_level(level)  # 5 and 5.0 are one level
            if identity in seen:
                raise _fail(source, f"{key}.levels[{j}]", f"duplicate level {format_level(level)}")
            seen.add(identity)
        for param, value in factor.params.items():
            if user_op:
                continue
            if param not in op.params:
                allowed = ", ".join(sorted(op.params)) or "none"
                raise _fail(source, f"{key}.params.{param}", f"unknown param for op {factor.op} (allowed: {allowed})")
            problem = op.params[param](value)
            if problem:
                raise _fail(source, f"{key}.params.{param}", problem)
        problem = _expect_problem(factor.expect, op)
        if problem:
            raise _fail(source, f"{key}.expect", problem)
        if factor.ordered is not None and not isinstance(factor.ordered, bool):
            raise _fail(source, f"{key}.ordered", f"must be true or false, got {factor.ordered!r}")
        if factor.ordered and not all(is_real(level) for level in factor.levels):
            raise _fail(source, f"{key}.ordered", "an ordered factor's levels must all be numbers (they are ordered by "
                        "value); drop `ordered: true` to treat the levels as unordered")
        if op.fills_template:
            slot = factor.params.get("slot", factor.name)
            if slot in slots:
                raise _fail(source, f"{key}.params.slot", f"slot {{{slot}}} is filled by two factors")
            slots.add(slot)


def _expect_problem(expect: Any, op: Op) -> str | None:
    """Why a factor's ``expect`` override is invalid for its op, or None."""
    if expect is None or expect in ("invariant", "unjudgeable"):
        return None
    if expect == "directional":
        return None if op.expect_map else "directional needs a map here: write expect: {map: {LABEL: LABEL, ...}}"
    if isinstance(expect, Mapping) and set(expect) == {"map"}:
        mapping = expect["map"]
        if isinstance(mapping, Mapping) and mapping and all(
            isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
        ):
            return None
        return "map must be a non-empty mapping of label: label"
    return f"must be one of {', '.join(EXPECT_KINDS)}, or {{map: {{LABEL: LABEL, ...}}}}; got {expect!r}"


def _parse_factor(raw: Any, key: str, source: str) -> Factor:
    """Turn one raw YAML factor mapping into a Factor, checking keys and container types."""
    if not isinstance(raw, Mapping):
        raise _fail(source, key, "must be a mapping with name, op and levels")
    for name in raw:
        if name not in _FACTOR_KEYS:
            raise _fail(source, f"{key}.{name}", f"unknown key (allowed: {', '.join(_FACTOR_KEYS)})")
    for name in ("name", "op", "levels"):
        if name not in raw:
            raise _fail(source, f"{key}.{name}", "missing")
    if not isinstance(raw["op"], str):
        raise _fail(source, f"{key}.op", f"must be a string, got {raw['op']!r}")
    levels = raw["levels"]
    if not isinstance(levels, list) or not levels:
        raise _fail(source, f"{key}.levels", "must be a non-empty list")
    params = raw.get("params") or {}
    if not isinstance(params, Mapping):
        raise _fail(source, f"{key}.params", "must be a mapping of op keyword arguments")
    return Factor(name=raw["name"], op=raw["op"], levels=tuple(levels), params=dict(params), expect=raw.get("expect"),
                  ordered=raw.get("ordered"))


@dataclass
class ConceptSpace:
    """An ordered product of factors; actions are level indices, cells are row-major ``action_id``s."""

    modality: str
    factors: list[Factor]
    name: str | None = None
    description: str | None = None
    _user_ops: dict[str, Op] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.factors = list(self.factors)
        _check_factors(self.modality, self.factors, self.name or "<space>")

    @property
    def inputs(self) -> ModalitySpec:
        """The facts of the space's seed inputs (how seeds are read, what a run shows of them)."""
        return get_modality(self.modality)

    @property
    def shape(self) -> tuple[int, ...]:
        """Levels per factor: the ``MultiDiscrete`` nvec."""
        return tuple(len(f.levels) for f in self.factors)

    @property
    def num_cells(self) -> int:
        """Number of cells (actions) in the space."""
        return math.prod(self.shape)

    def validate_action(self, action: Sequence[int]) -> tuple[int, ...]:
        """The action as a tuple of ints; BadSpace when its length or an index is wrong."""
        try:
            values = tuple(operator.index(a) for a in action)
        except TypeError as err:
            raise BadSpace(f"action {action!r}: expected one integer level index per factor ({err})") from None
        if len(values) != len(self.factors):
            raise BadSpace(f"action {values}: has {len(values)} indices, the space has {len(self.factors)} factors")
        for factor, size, index in zip(self.factors, self.shape, values):
            if not 0 <= index < size:
                raise BadSpace(f"action {values}: index {index} for factor {factor.name} is outside 0..{size - 1}")
        return values

    def action_id(self, action: Sequence[int]) -> int:
        """Row-major index of an action."""
        ident = 0
        for size, index in zip(self.shape, self.validate_action(action)):
            ident = ident * size + index
        return ident

    def action_from_id(self, action_id: int) -> tuple[int, ...]:
        """The action whose row-major index is ``action_id``."""
        ident = operator.index(action_id)
        if not 0 <= ident < self.num_cells:
            raise BadSpace(f"action_id {ident} is outside 0..{self.num_cells - 1}")
        indices = []
        for size in reversed(self.shape):
            ident, index = divmod(ident, size)
            indices.append(index)
        return tuple(reversed(indices))

    def level_values(self, action: Sequence[int]) -> dict[str, object]:
        """Factor name -> level value of an action."""
        return {f.name: f.levels[i] for f, i in zip(self.factors, self.validate_action(action))}

    def level_strings(self, action: Sequence[int]) -> dict[str, str]:
        """Factor name -> stable level text of an action (see :func:`format_level`)."""
        return {name: format_level(value) for name, value in self.level_values(action).items()}

    @property
    def user_refs(self) -> list[str]:
        """The ``package.module:function`` ops of this space (the user's own code)."""
        return list(dict.fromkeys(f.op for f in self.factors if is_user_ref(f.op)))

    def import_user_ops(self, *, allowed: bool) -> list[str]:
        """Import the user's op functions (BadConfig unless ``allowed``); return their references."""
        for ref in self.user_refs:
            fn = import_user_object(ref, allowed=allowed, what="concept-space op")
            if not callable(fn):
                raise BadSpace(f"op {ref} is not a function fn(item, level, rng_seed, factor)")
            self._user_ops[ref] = Op(fn=fn, check=lambda level: None,
                                     is_noop=getattr(fn, "is_noop", USER_OP.is_noop))
        return self.user_refs

    def declared_op(self, factor: Factor) -> Op:
        """A factor's op as far as it is known: registered, imported, or ``USER_OP`` for a user op not imported."""
        if is_user_ref(factor.op):
            return self._user_ops.get(factor.op, USER_OP)
        return ops_for(self.modality)[factor.op]

    def op(self, factor: Factor) -> Op:
        """The op a factor applies; BadSpace for the user's function when it has not been imported."""
        if is_user_ref(factor.op) and factor.op not in self._user_ops:
            raise BadSpace(f"factor {factor.name} uses {factor.op}, which is not imported; load the space with "
                           "user code allowed (--allow-user-code)")
        return self.declared_op(factor)

    def neutral_action(self) -> tuple[int, ...] | None:
        """Per factor the index of its first no-op level, or None when some factor has none."""
        action = []
        for factor in self.factors:
            is_noop = self.declared_op(factor).is_noop
            index = next((i for i, lv in enumerate(factor.levels) if is_noop(lv)), None)
            if index is None:
                return None
            action.append(index)
        return tuple(action)

    def coerce(self, item: Any) -> Any:
        """The item in the modality's form (RGB image or text), unperturbed."""
        return _modality_module(self.modality).coerce(item)

    def apply(self, item: Any, action: Sequence[int], *, seed: int = 0) -> Any:
        """A perturbed copy of ``item``: image PIL RGB -> RGB of the same size, text -> text, template -> prompt.

        Factors run in order, except that prompt slots are filled before any other op; a slot
        missing from the template is skipped, and braces no factor fills are left untouched.
        """
        action = self.validate_action(action)
        item = _modality_module(self.modality).coerce(item)
        ops = [self.op(factor) for factor in self.factors]
        order = sorted(range(len(self.factors)), key=lambda i: not ops[i].fills_template)
        for i in order:
            item = ops[i].fn(item, self.factors[i].levels[action[i]], _derive_seed(seed, i), self.factors[i])
        return item

    def without(self, names: Sequence[str]) -> ConceptSpace:
        """A copy of the space without the named factors (user ops already imported stay imported)."""
        kept = [factor for factor in self.factors if factor.name not in set(names)]
        space = ConceptSpace(self.modality, kept, name=self.name, description=self.description)
        space._user_ops.update(self._user_ops)
        return space

    def to_dict(self) -> dict:
        """A plain dict in the YAML layout (params only where given)."""
        data: dict[str, Any] = {"modality": self.modality}
        if self.name is not None:
            data["name"] = self.name
        if self.description is not None:
            data["description"] = self.description
        data["factors"] = []
        for f in self.factors:
            entry: dict[str, Any] = {"name": f.name, "op": f.op, "levels": list(f.levels)}
            if f.params:
                entry["params"] = dict(f.params)
            if f.expect is not None:
                entry["expect"] = f.expect
            if f.ordered is not None:
                entry["ordered"] = f.ordered
            data["factors"].append(entry)
        return data

    def fingerprint(self) -> str:
        """sha256 of the canonical modality + factors (name and description excluded), for resume checks."""
        canon = {
            "modality": self.modality,
            "factors": [{"name": f.name, "op": f.op, "levels": list(f.levels), "params": f.params,
                         **({"expect": f.expect} if f.expect is not None else {}),
                         **({"ordered": f.ordered} if f.ordered is not None else {})} for f in self.factors],
        }
        return hashlib.sha256(json.dumps(canon, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def to_yaml(self, path: str | Path | None = None) -> str:
        """The space as YAML text; also written to ``path`` when given (whole: a reader, or another process
        writing the same file, never sees it half written)."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, allow_unicode=True,
                              width=1000)
        if path is not None:
            write_atomic(path, text)
        return text

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> ConceptSpace:
        """Build and validate a space from a YAML-shaped dict; BadSpace names ``source`` and the bad key."""
        if not isinstance(data, Mapping):
            raise _fail(source, "", "must be a mapping with modality and factors")
        for key in data:
            if key not in _TOP_KEYS:
                raise _fail(source, str(key), f"unknown key (allowed: {', '.join(_TOP_KEYS)})")
        if "modality" not in data:
            raise _fail(source, "modality", f"missing (one of: {', '.join(MODALITIES)})")
        modality = data["modality"]
        if modality not in MODALITIES:
            raise _fail(source, "modality", f"unknown modality {modality!r} (known: {', '.join(MODALITIES)})")
        for key in ("name", "description"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise _fail(source, key, "must be a string")
        raw_factors = data.get("factors")
        if not isinstance(raw_factors, list) or not raw_factors:
            raise _fail(source, "factors", "must be a non-empty list of factors")
        factors = [_parse_factor(raw, f"factors[{i}]", source) for i, raw in enumerate(raw_factors)]
        _check_factors(modality, factors, source)
        return cls(modality=modality, factors=factors, name=data.get("name"), description=data.get("description"))

    @classmethod
    def from_yaml(cls, path: str | Path) -> ConceptSpace:
        """Load and validate a space from a YAML file."""
        source = str(path)
        try:
            text = read_utf8(path)
        except FileNotFoundError:
            raise _fail(source, "", "file not found") from None
        except NotUtf8 as err:
            raise _fail(source, "", str(err)) from None
        except OSError as err:
            raise _fail(source, "", f"cannot read: {err.strerror or err}") from None
        return cls._from_text(text, source)

    @classmethod
    def _from_text(cls, text: str, source: str) -> ConceptSpace:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise _fail(source, "", f"YAML does not parse: {problem}{where}") from None
        return cls.from_dict(data, source=source)
