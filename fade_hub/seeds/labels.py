"""Label alignment: dataset labels matched to a model's ``id2label`` by name, synonym or a ``--label-map`` file."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import yaml

from fade_hub.errors import BadConfig, LabelAlignmentError
from fade_hub.paths import NotUtf8, read_utf8
from fade_hub.seeds.sources import Seed, examples_text

logger = logging.getLogger(__name__)


def align_labels(
    dataset_labels: Iterable[str], id2label: dict[int, str], label_map: dict[str, str] | None = None
) -> dict[str, int]:
    """Map each dataset label to a model label id, by name (case and separators ignored) or via ``label_map``."""
    index = _LabelIndex(id2label)
    wanted = list(dict.fromkeys(str(label) for label in dataset_labels))
    mapped_keys = {_norm(str(key)): value for key, value in (label_map or {}).items()}
    mapping: dict[str, int] = {}
    unmatched: list[str] = []
    for name in wanted:
        target = mapped_keys.get(_norm(name)) if label_map else None
        if label_map and name in label_map:
            target = label_map[name]
        label_id = index.resolve(target if target is not None else name)
        if label_id is None and target is not None:
            raise LabelAlignmentError(
                f"the label map sends {name!r} to {target!r}, which is not a model label "
                f"(model labels {examples_text(index.names)})"
            )
        if label_id is None:
            unmatched.append(name)
        else:
            mapping[name] = label_id
    if unmatched:
        hint = (
            "add them to the --label-map file"
            if label_map
            else "pass --label-map FILE mapping dataset labels to model labels"
        )
        if mapping:
            raise LabelAlignmentError(
                f"dataset labels {examples_text(unmatched)} have no match among model labels "
                f"{examples_text(index.names)} ({len(mapping)} others matched); {hint}"
            )
        raise LabelAlignmentError(
            f"dataset labels {examples_text(wanted)} do not match model labels {examples_text(index.names)}; {hint}"
        )
    return mapping


class _LabelIndex:
    """Model label lookup by exact name, normalised name, or comma-separated synonym."""

    def __init__(self, id2label: dict[int, str]):
        self.id2label = {int(key): str(value) for key, value in sorted(id2label.items(), key=lambda kv: int(kv[0]))}
        self.names = list(self.id2label.values())
        self.exact: dict[str, int] = {}
        for label_id, name in self.id2label.items():
            self.exact.setdefault(name, label_id)
        self.full = _unique_index((_norm(name), label_id) for label_id, name in self.id2label.items())
        synonyms = _unique_index(
            (_norm(part), label_id)
            for label_id, name in self.id2label.items()
            if "," in name
            for part in name.split(",")
        )
        self.synonyms = {key: value for key, value in synonyms.items() if key not in self.full}

    def resolve(self, value: object) -> int | None:
        """The model label id for a label name (or id), or None."""
        if isinstance(value, int) and not isinstance(value, bool):
            return value if value in self.id2label else None
        name = str(value)
        if name in self.exact:
            return self.exact[name]
        for candidate in [name, *name.split(",")]:
            key = _norm(candidate)
            found = self.full.get(key, self.synonyms.get(key))
            if found is not None:
                return found
        return None


def _unique_index(pairs: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Keys that point at exactly one label id."""
    index: dict[str, set[int]] = {}
    for key, label_id in pairs:
        index.setdefault(key, set()).add(label_id)
    return {key: ids.pop() for key, ids in index.items() if len(ids) == 1}


def _norm(name: str) -> str:
    """A label name with case, spaces, underscores, hyphens and punctuation ignored."""
    return re.sub(r"[\W_]+", "", name.casefold()) or name.strip().casefold()


def apply_labels(
    seeds: list[Seed], id2label: dict[int, str] | None, label_map_path: str | None, names_declared: bool
) -> list[Seed]:
    """Set each labelled seed's ``label`` to the model's id and its name to the model's name."""
    labelled = [seed.label_name for seed in seeds if seed.label_name is not None]
    if id2label is None or not labelled:
        return seeds
    label_map = read_label_map(label_map_path) if label_map_path else None
    model = {int(key): str(value) for key, value in id2label.items()}
    try:
        mapping = align_labels(labelled, model, label_map)
    except LabelAlignmentError:
        if label_map is not None or names_declared or not all(_is_int(name) for name in labelled):
            raise
        if any(int(name) not in model for name in labelled):
            raise
        logger.warning("dataset labels are bare integers: taking them as the model's label ids")
        mapping = {name: int(name) for name in labelled}
    aligned = []
    for seed in seeds:
        if seed.label_name is None:
            aligned.append(seed)
            continue
        label = mapping[seed.label_name]
        context = model[label] if seed.context == seed.label_name else seed.context
        aligned.append(replace(seed, label=label, label_name=model[label], context=context))
    return aligned


def _is_int(text: str) -> bool:
    """Whether ``text`` spells an integer."""
    return re.fullmatch(r"-?\d+", text) is not None


def read_label_map(path: str) -> dict[str, object]:
    """A JSON or YAML file mapping dataset label -> model label name (or id)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise BadConfig(f"label map file {path!r} does not exist")
    try:
        text = read_utf8(file)
    except NotUtf8 as err:
        raise BadConfig(f"label map file {path!r} is {err}") from None
    try:
        data = json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise BadConfig(f"label map file {path!r} is not valid {file.suffix.lstrip('.') or 'YAML'}: {err}") from err
    if not isinstance(data, dict) or not data:
        raise BadConfig(f"label map file {path!r} must hold a mapping of dataset label -> model label")
    return {str(key): value for key, value in data.items()}
