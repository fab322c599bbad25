"""Config dataclasses as the one source of CLI flags, YAML keys, defaults, help texts and value ranges.

A field declared with :func:`option` carries its help text, its flag group and, for numbers, its range.
:func:`add_options` turns a dataclass into argparse flags (``batch_size`` -> ``--batch-size``, the default
appended to the help text), :func:`load_options` reads a ``--config`` YAML file with the same names, and
:func:`build_config` merges the two (flags win). :func:`check_ranges` rejects values of the wrong type (one rule
from each field's declaration: booleans are not numbers, ``2.0`` is not a whole number, a list holds text), NaN,
infinities and out-of-range numbers for every field, so that no option is checked by hand twice.

``transformers.HfArgumentParser`` does not fit here: it writes list options as ``nargs="+"`` where our
users pass comma-separated values, names negated booleans ``--no_<field>`` where ours keep their
established names (``--no-progress``), and cannot leave an option unset so that a YAML value shows through.

A command's config is a tree (:class:`ConfigTree`): small option dataclasses, one per group (the target, the seeds,
the judge, ...), each a :func:`section` of it, the way trl composes ``ScriptArguments``, ``GRPOConfig`` and
``ModelConfig``. Each option is declared once, in its section, and the layer below takes that section. The tree
still reads and takes its options by their flat names (``config.budget``, ``ExploreConfig(budget=...)``), its flags
stay flat, and a YAML file may give them flat or by section. A section several commands share (where the result
goes, the judge, the review) is declared once and offered by each command as it words it: some of its options,
under the command's flag group, with the command's help texts and defaults (:func:`section`).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import math
import sys
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import yaml

from .errors import BadConfig

_MISSING = dataclasses.MISSING
# the largest random seed every seeded library takes (numpy's legacy seeding, used by trl, stops at 2**32 - 1)
MAX_SEED = 2**32 - 1
# the largest whole number any option may hold: past it, counts overflow the index types of numpy and torch
MAX_INT = 2**63 - 1


def option(
    default: Any = _MISSING,
    *,
    help: str,  # noqa: A002 - argparse's name
    group: str | None = None,
    flag: str | None = None,
    metavar: str | None = None,
    choices: Sequence[str] | None = None,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    auto: bool = False,
    csv: bool = False,
    many: bool = False,
    cli: bool = True,
    renamed_from: Sequence[str] = (),
    secret: bool = False,
    default_factory: Callable[[], Any] | Any = _MISSING,
) -> Any:
    """A dataclass field with everything its flag and its checks need.

    ``low``/``high`` bound numbers (``low_open``/``high_open`` exclude the bound); ``auto`` also accepts the
    word ``auto``; ``csv`` reads a comma-separated list; ``many`` a list given as several values, commas
    allowed, the flag repeatable (``--adapters a b,c --adapters d``); ``flag`` overrides the flag name (a boolean whose
    default is True gets a store-false flag such as ``--no-progress``); ``cli=False`` keeps it out of the CLI;
    ``renamed_from`` lists the option's old flags (``--space``), still accepted, hidden from ``--help``, with one
    deprecation line (their YAML keys too); ``secret`` keeps the value out of the config's repr (a token).
    """
    metadata = {
        "help": help, "group": group, "flag": flag, "metavar": metavar, "choices": tuple(choices or ()),
        "low": low, "high": high, "low_open": low_open, "high_open": high_open, "auto": auto, "csv": csv, "many": many, "cli": cli,
        "renamed_from": tuple(renamed_from),
    }
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata, repr=not secret)
    return dataclasses.field(default=default, metadata=metadata, repr=not secret)


def section(cls: type, *, only: Sequence[str] | None = None, group: str | None | Any = _MISSING,
            helps: dict[str, str] | None = None, meta: dict[str, dict[str, Any]] | None = None,
            **defaults: Any) -> Any:
    """A field of a :class:`ConfigTree` holding one group of options (an instance of the option dataclass ``cls``),
    as the tree's command offers it: ``only`` the options it names, in that order (None: all, as declared; the others
    keep their defaults and are neither flags nor YAML keys), under the flag ``group`` given (None: the command's own
    options; unset: each option's own), with the ``helps`` texts given for some options, other ``meta`` data of
    :func:`option` for some (``{"space_id": {"cli": True, "metavar": "REPO_ID"}}``) and the ``defaults`` given for
    others."""
    shown = {"only": tuple(only) if only is not None else None, "group": group, "helps": dict(helps or {}),
             "meta": dict(meta or {}), "defaults": dict(defaults)}
    return dataclasses.field(default_factory=lambda: cls(**defaults), metadata={"section": cls, "shown": shown})


def is_section(field: dataclasses.Field) -> bool:
    """Whether a field of a config holds a section (a group of options) rather than one option."""
    return "section" in field.metadata


@functools.cache
def section_options(field: dataclasses.Field) -> tuple[dataclasses.Field, ...]:
    """The options a tree's section field offers, each as its command shows it (its group, help and default)."""
    shown = field.metadata["shown"]
    leaves = {leaf.name: leaf for leaf in dataclasses.fields(field.metadata["section"])}
    offered = []
    for leaf in [leaves[name] for name in shown["only"]] if shown["only"] is not None else leaves.values():
        changes = {"group": shown["group"]} if shown["group"] is not _MISSING else {}
        changes.update(shown["meta"].get(leaf.name, {}))
        if leaf.name in shown["helps"]:
            changes["help"] = shown["helps"][leaf.name]
        if changes or leaf.name in shown["defaults"]:
            leaf = copy.copy(leaf)
            leaf.metadata = types.MappingProxyType({**leaf.metadata, **changes})
            if leaf.name in shown["defaults"]:
                leaf.default, leaf.default_factory = shown["defaults"][leaf.name], _MISSING
        offered.append(leaf)
    return tuple(offered)


def option_fields(cls: type) -> list[tuple[str | None, dataclasses.Field]]:
    """Every option of a config, flattened: ``(section name, field)``, the section None for a top-level option."""
    found: list[tuple[str | None, dataclasses.Field]] = []
    for field in dataclasses.fields(cls):
        if is_section(field):
            found += [(field.name, leaf) for leaf in section_options(field)]
        else:
            found.append((None, field))
    order = getattr(cls, "flag_order", ())
    return sorted(found, key=lambda item: order.index(item[1].name) if item[1].name in order else len(order))


@functools.cache
def _owners(cls: type) -> dict[str, str | None]:
    """Flat option name -> the section declaring it (None: the tree itself); TypeError on a name declared twice."""
    owners: dict[str, str | None] = {}
    for owner, field in option_fields(cls):
        if field.name in owners:
            raise TypeError(f"{cls.__name__}: option {field.name!r} is declared in two sections")
        owners[field.name] = owner
    keys = set(owners) | {flag_name(field).removeprefix("--").replace("-", "_") for _, field in option_fields(cls)}
    clash = {field.name for field in dataclasses.fields(cls) if is_section(field)} & keys
    if clash:
        raise TypeError(f"{cls.__name__}: section {sorted(clash)[0]!r} has the name of an option (a YAML key)")
    return owners


class ConfigTree:
    """Base of a config composed of sections (``@dataclass(init=False)`` subclasses whose section fields come from
    :func:`section`).

    Built from sections (``ExploreConfig(search=SearchOptions(budget=5))``), from flat options
    (``ExploreConfig(budget=5)``, each sent to the section declaring it), or both (flat options win); an option is
    read and set by its flat name too (``config.budget``), so ``dataclasses.replace(config, budget=9)`` works.
    ``flag_order`` lists options whose flags come in that order before the others (a command keeps the order its
    flags had before its options became sections).
    """

    flag_order: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **values: Any) -> None:
        owners = _owners(type(self))
        flat: dict[str, dict[str, Any]] = {}
        for name, value in values.items():
            if name in owners and owners[name] is not None:
                flat.setdefault(str(owners[name]), {})[name] = value
            elif name not in {field.name for field in dataclasses.fields(self)}:
                raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {name!r}")
        for field in dataclasses.fields(self):
            if field.name in values and is_section(field):
                value = values[field.name]
                value = field.metadata["section"](**value) if isinstance(value, dict) else value
            elif field.name in values:
                value = values[field.name]
            else:
                value = _default_of(field)
            if is_section(field) and field.name in flat:
                value = dataclasses.replace(value, **flat[field.name])
            object.__setattr__(self, field.name, value)

    def __getattr__(self, name: str) -> Any:
        owner = _owners(type(self)).get(name) if not name.startswith("__") else None
        if owner is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(self.__dict__[owner], name)

    def __setattr__(self, name: str, value: Any) -> None:
        owner = _owners(type(self)).get(name)
        if owner is not None:
            setattr(getattr(self, owner), name, value)
        else:
            object.__setattr__(self, name, value)

    @classmethod
    def from_recorded(cls, options: dict[str, Any], **values: Any) -> Any:
        """The config a run recorded, as a tree (by section) or flat (runs written before the tree); options this
        version does not know are left out, options it added take their defaults; ``values`` win."""
        owners = _owners(cls)
        known = {name: value for name, value in flat_options(options).items() if name in owners}
        return cls(**{**known, **values})

    def flat(self) -> dict[str, Any]:
        """Every option the tree offers, by its flat name."""
        return {name: getattr(self, name) for name in _owners(type(self))}


def flat_options(options: dict[str, Any]) -> dict[str, Any]:
    """Recorded options by their flat names: a tree's sections (dict values) opened, a flat record as it is."""
    flat: dict[str, Any] = {}
    for key, value in (options or {}).items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return flat


def base_type(field: dataclasses.Field) -> str:
    """``int`` for ``int | None``, ``list`` for ``list[str]``, ... (annotations are strings here)."""
    text = str(field.type).replace("typing.", "")
    first = [part.strip() for part in text.split("|") if part.strip() != "None"][0]
    return first.split("[")[0]


def flag_name(field: dataclasses.Field) -> str:
    """The field's CLI flag (``--batch-size``)."""
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def _default_of(field: dataclasses.Field) -> Any:
    if field.default is not _MISSING:
        return field.default
    if field.default_factory is not _MISSING:
        return field.default_factory()
    return None


def _help_text(field: dataclasses.Field) -> str:
    text = field.metadata["help"]
    default = _default_of(field)
    if default in (None, False, "", []) or base_type(field) == "bool":
        return text
    shown = ",".join(map(str, default)) if isinstance(default, list) else default
    return f"{text} (default: {shown})"


def parse_number(kind: str, auto: bool = False) -> Callable[[str], Any]:
    """An argparse ``type`` for int/float flags that also takes ``auto`` when allowed."""
    convert = int if kind == "int" else float

    def parse(text: str) -> Any:
        if auto and text.strip().lower() == "auto":
            return "auto"
        try:
            return convert(text)
        except ValueError:
            expected = f"an {'integer' if kind == 'int' else 'number'}" + (" or 'auto'" if auto else "")
            raise argparse.ArgumentTypeError(f"{text!r} is not {expected}") from None

    return parse


def csv_list(text: str) -> list[str]:
    """Comma-separated values, stripped, empty items dropped."""
    return [item.strip() for item in str(text).split(",") if item.strip()]


def csv_values(metavar: str | None) -> Callable[[str], list[str]]:
    """An argparse ``type`` for a comma-separated flag that refuses a value naming nothing (``""``, ``",,"``): unset,
    the flag keeps its default; given empty, it would silently mean the same."""

    def parse(text: str) -> list[str]:
        items = csv_list(text)
        if not items:
            raise argparse.ArgumentTypeError(f"{text!r} names nothing; write {metavar or 'A,B,...'} or leave the "
                                             "flag out")
        return items

    return parse


class _ManyValues(argparse.Action):
    """Collects ``--flag a b,c --flag d`` as ``["a", "b", "c", "d"]``."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001 - argparse's API
        items = list(getattr(namespace, self.dest, None) or [])
        items.extend(item for value in values for item in csv_list(value))
        setattr(namespace, self.dest, items)


def add_options(parser: argparse.ArgumentParser, cls: type, *, skip: Sequence[str] = ()) -> None:
    """Add one flag per ``option`` field of ``cls`` (grouped as declared), leaving unset flags out of the namespace."""
    groups: dict[str | None, Any] = {None: parser}
    for _, field in option_fields(cls):
        meta = field.metadata
        if not meta.get("cli", False) or field.name in skip:
            continue
        group = meta["group"]
        if group not in groups:
            groups[group] = parser.add_argument_group(group)
        kwargs: dict[str, Any] = {"dest": field.name, "help": _help_text(field), "default": argparse.SUPPRESS}
        kind = base_type(field)
        if kind == "bool":
            kwargs["action"] = "store_false" if _default_of(field) is True else "store_true"
        elif meta.get("many"):
            kwargs.update(nargs="+", action=_ManyValues, metavar=meta["metavar"] or None)
        else:
            if meta["csv"] or kind == "list":
                kwargs["type"] = csv_values(meta["metavar"])
            elif kind in ("int", "float"):
                kwargs["type"] = parse_number(kind, meta["auto"])
            if meta["choices"]:
                kwargs["choices"] = meta["choices"]
            if meta["metavar"]:
                kwargs["metavar"] = meta["metavar"]
        groups[group].add_argument(flag_name(field), **kwargs)
        for old in meta.get("renamed_from", ()):
            action = _renamed(parser, kwargs.get("action"), flag_name(field))
            groups[group].add_argument(old, **{**kwargs, "action": action, "help": argparse.SUPPRESS})


def deprecation(old: str, new: str) -> None:
    """Say in one stderr line that ``old`` (a flag, a YAML key or a command) is now ``new``."""
    print(f"deprecated: {old} is now {new}; the old name still works for now", file=sys.stderr)


def _renamed(parser: argparse.ArgumentParser, action: Any, new_flag: str) -> type[argparse.Action]:
    """The action of an old flag name: one deprecation line, then what the new flag does."""
    base = action if isinstance(action, type) else parser._registry_get("action", action, action)

    class Renamed(base):  # type: ignore[misc, valid-type]
        renamed = True  # an old name: hidden from --help

        def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001 - argparse's API
            deprecation(str(option_string), new_flag)
            super().__call__(parser, namespace, values, option_string)

    return Renamed


def load_options(cls: type, path: str | Path) -> dict[str, Any]:
    """The options of a YAML config file (keys = field names, dashes allowed), numbers-as-text made numbers."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise BadConfig(f"config file {path} not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise BadConfig(f"config file {path} cannot be read as UTF-8 text ({type(err).__name__})") from None
    except yaml.YAMLError as err:
        raise BadConfig(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise BadConfig(f"config file {path} must be a mapping of option: value")
    sections = {field.name for field in dataclasses.fields(cls) if is_section(field)}
    data = {**{key: value for key, value in data.items() if str(key) not in sections},
            **{name: value for key in sections & set(map(str, data)) for name, value in _section_items(path, key, data[key])}}
    leaves = [field for _, field in option_fields(cls)]
    fields = {field.name: field for field in leaves}
    renamed = [field for field in leaves if field.metadata.get("renamed_from")]
    old_names = {old.removeprefix("--").replace("-", "_"): field.name for field in renamed
                 for old in field.metadata["renamed_from"]}
    new_names = {flag_name(field).removeprefix("--").replace("-", "_"): field.name for field in renamed}
    options: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name in old_names:
            new = next(flag for flag, field in new_names.items() if field == old_names[name])
            deprecation(f"{key!s} in {path}", new.replace("_", "-"))
            name = old_names[name]
        name = new_names.get(name, name)  # a renamed option's YAML key is its flag's name
        if name not in fields:
            raise BadConfig(f"config file {path}: unknown option {key!r}; see --help for the options")
        options[name] = _coerce(path, fields[name], value)
    return options


def _section_items(path: str | Path, key: str, value: Any) -> list[tuple[str, Any]]:
    """The options a YAML section gives (``search: {budget: 5}``)."""
    if not isinstance(value, dict):
        raise BadConfig(f"config file {path}: {key} is a section of options; give it as a mapping of option: value")
    return list(value.items())


def _coerce(path: str | Path, field: dataclasses.Field, value: Any) -> Any:
    """YAML 1.1 reads ``3e-3`` as a string: turn numbers-as-text into the field's number type; split csv text; then
    BadConfig naming the file and the key when the value is not of the field's declared type."""
    kind = base_type(field)
    if isinstance(value, str) and (field.metadata.get("csv") or kind == "list"):
        value = csv_list(value)
    elif isinstance(value, str) and kind in ("int", "float"):
        try:
            value = parse_number(kind, field.metadata.get("auto", False))(value)
        except argparse.ArgumentTypeError:
            raise BadConfig(f"config file {path}: {field.name} must be a number, got {value!r}") from None
    problem = type_problem(field, value)
    if problem:
        raise BadConfig(f"config file {path}: {field.name} {problem}")
    return value


def type_problem(field: dataclasses.Field, value: Any) -> str | None:
    """What is wrong with ``value``'s type for ``field`` (``"must be a whole number, got 2.0"``), or None.

    One rule for every option: None only where the field allows it, a boolean only for a boolean (``true`` is not
    1), a whole number for an integer (``2.0`` is not one: write ``2``), any finite or infinite number for a float,
    text for text, and a list of text for a list.
    """
    kind, auto = base_type(field), field.metadata.get("auto", False)
    if value is None:
        return None if "None" in str(field.type) else f"must be given, got {value!r}"
    if auto and value == "auto":
        return None
    if kind == "bool":
        wanted, fits = "true or false", isinstance(value, bool)
    elif kind == "int":
        wanted, fits = "a whole number", isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        wanted, fits = "a number", isinstance(value, (int, float)) and not isinstance(value, bool)
    elif kind == "list":
        wanted, fits = "a list of text", isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    elif kind == "str":
        wanted, fits = "text", isinstance(value, str)
    else:
        return None
    if fits:
        return None
    hint = " (put it in quotes)" if kind in ("str", "list") and isinstance(value, (int, float, bool)) else ""
    return f"must be {wanted}{' or auto' if auto else ''}, got {value!r}{hint}"


def build_config(cls: type, args: argparse.Namespace, config_file: str | Path | None = None, **fixed: Any) -> Any:
    """An instance of ``cls`` from a YAML file (when given), overridden by the flags set on the command line."""
    names = {field.name for _, field in option_fields(cls)}
    values = load_options(cls, config_file) if config_file else {}
    values.update({key: value for key, value in vars(args).items() if key in names})
    values.update(fixed)
    return cls(**values)


def check_ranges(config: Any) -> None:
    """BadConfig naming the flag of the first value of the wrong type (``type_problem``), or the first number that
    is NaN, infinite, larger than any count can be, or outside its field's range."""
    for owner, field in option_fields(type(config)):
        meta = field.metadata
        if "low" not in meta:
            continue
        value = getattr(getattr(config, owner) if owner else config, field.name)
        problem = type_problem(field, value)
        if problem:
            raise BadConfig(f"{flag_name(field)} {problem}")
        if value is None or value == "auto" or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        low, high = meta["low"], meta["high"]
        if isinstance(value, float) and not math.isfinite(value):
            raise BadConfig(f"{flag_name(field)} must be a finite number, got {value}")
        too_low = low is not None and (value <= low if meta["low_open"] else value < low)
        too_high = high is not None and (value >= high if meta["high_open"] else value > high)
        if too_low or too_high:
            raise BadConfig(f"{flag_name(field)} must be {_range_text(meta)}, got {value}")
        if isinstance(value, int) and abs(value) > MAX_INT:
            raise BadConfig(f"{flag_name(field)} is too large: {value} (at most {MAX_INT})")


def _range_text(meta: dict) -> str:
    low, high = _number_text(meta["low"]), _number_text(meta["high"])
    if meta["low"] is not None and meta["high"] is not None:
        return f"in {'(' if meta['low_open'] else '['}{low}, {high}{')' if meta['high_open'] else ']'}"
    if meta["low"] is not None:
        return f"{'>' if meta['low_open'] else '>='} {low}"
    return f"{'<' if meta['high_open'] else '<='} {high}"


def _number_text(value: float | None) -> str:
    """An int bound in full (``4294967295``), a float one short (``0.5``)."""
    return str(value) if isinstance(value, int) else f"{value:g}" if value is not None else ""


def to_dict(config: Any) -> dict[str, Any]:
    """A plain dict of a config's fields."""
    return dataclasses.asdict(config)


def recorded_options(meta: dict[str, Any]) -> dict[str, Any]:
    """The options a run's ``run.json`` recorded, by their flat names (a tree by section, or flat as runs written
    before the tree have them)."""
    return flat_options(meta.get("config") or {})
