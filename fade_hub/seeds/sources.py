"""Where seeds come from: rows of a Hub dataset, a local folder or file, or a built-in set, turned into ``Seed``s.

A seed is one unperturbed input (an RGB image, a text, or a text-to-image template with
``{slot}`` placeholders) plus its label name (classifiers) or reference output when the source has them.
"""

from __future__ import annotations

import csv
import json
import logging
import random
import string
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from PIL import Image

from fade_hub.errors import NETWORK_ERRORS, BadConfig, BadSeeds, HubUnreachable
from fade_hub.paths import NotUtf8, looks_like_path, read_utf8
from fade_hub.perturb.image import MAX_DECODED_PIXELS, ImageTooLarge
from fade_hub.seeds.images import hub_opener, local_opener
from fade_hub.config.seeds import SeedOptions
from fade_hub.tasks import MODALITIES, get_modality

logger = logging.getLogger(__name__)

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "builtin" / "seeds"
HUB_DEFAULT_CAP = 64
STREAM_SHUFFLE_WINDOW = 1000
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"})
TABLE_SUFFIXES = {".jsonl": "jsonl", ".csv": "csv", ".tsv": "tsv", ".txt": "txt"}

_IMAGE_NAMES = ("image", "img", "pixel_values", "image_path", "file_name", "filename", "path")
_TEXT_NAMES = ("text", "sentence", "document", "article", "content", "prompt", "review", "question", "input")
_LABEL_NAMES = ("label", "labels", "class")
_REFERENCE_NAMES = ("summary", "highlights", "target", "reference", "abstract")
_UNREADABLE_IMAGE = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


@dataclass
class Seed:
    """One unperturbed input, with its label (classifiers) or reference output when known."""

    seed_id: str
    input: object
    label: int | None = None
    label_name: str | None = None
    reference: str | None = None
    context: str = ""


@dataclass
class SeedConfig(SeedOptions):
    """How to read seeds: the ``SeedOptions`` (``seeds``: a Hub dataset id, a local path, or ``builtin:NAME``) and how
    the reader goes about it.

    Images are shrunk as they are read: to ``image_side`` on their shorter side (the model's input size,
    when known) and at most 1024 pixels on their longer side; images decoding to more than ``max_pixels``
    pixels are skipped with a warning.
    """

    dataset_revision: str | None = None
    streaming: bool = True
    shuffle: bool = False
    shuffle_seed: int = 0
    image_side: int | None = None
    max_pixels: int = MAX_DECODED_PIXELS

    def __post_init__(self) -> None:
        if not self.seeds:
            raise BadConfig("no seed source given: pass --seeds DATASET_ID|PATH")


@dataclass
class _Table:
    """Raw rows of a source in their final order, with what is known about its columns."""

    name: str
    columns: list[str]
    rows: Iterable[tuple[str, dict]]
    open_image: Callable[[object], Image.Image]
    image_columns: list[str] = field(default_factory=list)
    label_names: dict[str, list[str]] = field(default_factory=dict)
    context_column: str | None = None


@dataclass
class _Columns:
    """The columns chosen for input, label and reference."""

    input: str
    label: str | None
    reference: str | None
    label_names: list[str] | None


def list_builtin_seeds() -> dict[str, str]:
    """Names of the built-in seed sets, each with a one-line description."""
    return {path.stem: _read_builtin(path)["description"] for path in sorted(BUILTIN_DIR.glob("*.json"))}


def read_seeds(config: SeedConfig, modality: str, token=None) -> tuple[list[Seed], bool]:
    """The seeds a source holds (labels still as the source names them) and whether it declared label names.

    Local sources and built-ins give all their rows unless ``num_seeds`` is set; a Hub dataset
    gives at most ``num_seeds`` rows, 64 when unset. With ``shuffle``, rows are shuffled with
    ``shuffle_seed`` before the cap (a streamed dataset: within its first max(1000, 10 * cap) rows).
    """
    if modality not in MODALITIES:
        raise BadConfig(f"unknown modality {modality!r}; expected one of {', '.join(MODALITIES)}")
    if config.num_seeds is not None and config.num_seeds < 1:
        raise BadConfig(f"--num-seeds must be at least 1, got {config.num_seeds}")
    source = config.seeds
    cap = config.num_seeds
    if source.startswith("builtin:"):
        table = _builtin_table(source.removeprefix("builtin:"), modality, config)
    elif _is_local(source):
        table = _local_table(Path(source).expanduser(), config)
    else:
        if cap is None:
            cap = HUB_DEFAULT_CAP
            logger.info("taking at most %d seeds from %s; pass --num-seeds to change", cap, source)
        table = _hub_table(config, cap, token)
    try:
        return _materialize(table, config, modality, cap)
    except NETWORK_ERRORS as err:
        raise HubUnreachable(f"lost the connection to the Hub while reading {source!r} ({err})") from err


def check_seed_source(config: SeedConfig) -> None:
    """Read a local or built-in source's rows (images undecoded) before any model loads: BadSeeds when the
    source is missing, empty, not UTF-8 or malformed. Hub datasets are checked when they are read."""
    source = config.seeds
    if source.startswith("builtin:"):
        name = source.removeprefix("builtin:")
        if not (BUILTIN_DIR / f"{name}.json").is_file():
            raise BadSeeds(f"unknown built-in seed set {name!r}; known: {', '.join(list_builtin_seeds())}")
    elif _is_local(source):
        table = _local_table(Path(source).expanduser(), config)
        if not table.rows:
            raise _no_rows(table)


def examples_text(names: list[str], limit: int = 5) -> str:
    """A short list of names for an error line."""
    shown = ", ".join(repr(name) for name in names[:limit])
    return f"[{shown}, ...]" if len(names) > limit else f"[{shown}]"


def _materialize(table: _Table, config: SeedConfig, modality: str, cap: int | None) -> tuple[list[Seed], bool]:
    """Turn raw rows into seeds until ``cap``; returns them and whether label names were declared."""
    if isinstance(table.rows, list) and not table.rows:
        raise _no_rows(table)
    columns = _resolve_columns(table, config, modality)
    inputs = get_modality(modality)
    seeds: list[Seed] = []
    seen = 0
    skipped: list[str] = []
    for seed_id, row in table.rows:
        if cap is not None and len(seeds) >= cap:
            break
        seen += 1
        value = row.get(columns.input)
        if value is None:
            continue
        if inputs.image_seeds:
            image = _try_open(table, seed_id, value)
            if image is None:
                skipped.append(seed_id)
                continue
            value = image
        else:
            value = value if isinstance(value, str) else str(value)
            if inputs.templates:
                _check_template(value, seed_id, table.name)
        label_name = _label_name(row.get(columns.label), columns.label_names, table.name) if columns.label else None
        reference = row.get(columns.reference) if columns.reference else None
        context = row.get(table.context_column) if table.context_column else None
        seeds.append(
            Seed(
                seed_id=seed_id,
                input=value,
                label_name=label_name,
                reference=None if reference is None else str(reference),
                context=str(context or label_name or ""),
            )
        )
    if not seeds:
        if skipped:
            raise BadSeeds(f"seed source {table.name} has no readable images (skipped {examples_text(skipped)})")
        if seen:
            raise BadSeeds(f"seed source {table.name} has no rows with a value in column {columns.input!r}")
        raise _no_rows(table)
    return seeds, columns.label_names is not None


def _no_rows(table: _Table) -> BadSeeds:
    """The error for a source without a single row."""
    return BadSeeds(f"seed source {table.name} has no rows; give a source with at least one input")


def _try_open(table: _Table, seed_id: str, value: object) -> Image.Image | None:
    """The seed's image as RGB, or None (with a warning naming it) when it cannot be read or is too large."""
    try:
        return table.open_image(value)
    except NETWORK_ERRORS:
        raise
    except ImageTooLarge as err:
        logger.warning("skipping image %s in %s: %s", seed_id, table.name, err)
        return None
    except _UNREADABLE_IMAGE as err:
        logger.warning("skipping unreadable image %s in %s: %s", seed_id, table.name, err)
        return None


def _label_name(value: object, names: list[str] | None, source: str) -> str | None:
    """A row's label as a name: ClassLabel ints map through ``names``; -1 means unlabelled."""
    if value is None:
        return None
    if isinstance(value, (list, tuple, dict)):
        raise BadSeeds(f"seed source {source} has multi-label or nested labels; pass --label-column with one label")
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and names is not None:
        if value < 0:
            return None
        if value >= len(names):
            raise BadSeeds(f"seed source {source} has label id {value} but only {len(names)} label names")
        return names[value]
    return str(value)


def _check_template(text: str, seed_id: str, source: str) -> None:
    """Reject a prompt template whose braces do not parse as named ``{slot}`` placeholders."""
    try:
        slots = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError as err:
        raise BadSeeds(
            f"prompt {seed_id} of {source} is not a valid template ({err}); write literal braces as {{{{ }}}}"
        ) from err
    bad = [name for name in slots if not name.isidentifier()]
    if bad:
        raise BadSeeds(f"prompt {seed_id} of {source} has placeholders {bad} that are not {{slot}} names")


def _resolve_columns(table: _Table, config: SeedConfig, modality: str) -> _Columns:
    """Choose input, label and reference columns from flags or by type and name."""
    if get_modality(modality).image_seeds:
        input_col = _pick(table, config.image_column, "--image-column", table.image_columns, _IMAGE_NAMES, "image")
    else:
        input_col = _pick(table, config.text_column, "--text-column", [], _TEXT_NAMES, "text")
    label_col = _pick(table, config.label_column, "--label-column", list(table.label_names), _LABEL_NAMES)
    reference_col = _pick(table, config.reference_column, "--reference-column", [], _REFERENCE_NAMES)
    return _Columns(
        input=input_col,
        label=label_col if label_col != input_col else None,
        reference=reference_col if reference_col != input_col else None,
        label_names=table.label_names.get(label_col) if label_col else None,
    )


def _pick(
    table: _Table, explicit: str | None, flag: str, typed: list[str], names: tuple[str, ...], required: str = ""
) -> str | None:
    """The column given by ``flag``, else the first typed one, else the first known name."""
    available = ", ".join(table.columns) or "none"
    if explicit is not None:
        if explicit not in table.columns:
            raise BadSeeds(f"column {explicit!r} given by {flag} is not in {table.name} (columns: {available})")
        return explicit
    if typed:
        return typed[0]
    by_lower = {column.lower(): column for column in table.columns}
    for name in names:
        if name in by_lower:
            return by_lower[name]
    if required:
        raise BadSeeds(f"seed source {table.name} has no {required} column (columns: {available}); pass {flag} NAME")
    return None


def _shuffled(items: list, config: SeedConfig) -> list:
    """``items`` shuffled with ``shuffle_seed`` when ``shuffle`` is set, else as they are."""
    if config.shuffle:
        items = list(items)
        random.Random(config.shuffle_seed).shuffle(items)
    return items


def _is_local(source: str) -> bool:
    """Whether ``source`` names a local path rather than a Hub dataset id."""
    path = Path(source).expanduser()
    if path.exists():
        return True
    if looks_like_path(source) or path.suffix.lower() in TABLE_SUFFIXES:
        raise BadSeeds(f"seed source {source!r} does not exist")
    return False


def _local_opener(base: Path, config: SeedConfig) -> Callable[[object], Image.Image]:
    """An image opener for paths relative to ``base``, shrinking as ``config`` says."""
    return local_opener(base, config.image_side, config.max_pixels)


def _local_table(path: Path, config: SeedConfig) -> _Table:
    """Rows of an image folder, or of a .jsonl / .csv / .tsv / .txt file."""
    if path.is_dir():
        return _folder_table(path, config)
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise BadSeeds(
            f"seed file {str(path)!r} has an unsupported type; use an image folder, "
            f"{', '.join(TABLE_SUFFIXES)}, builtin:NAME or a Hub dataset id"
        )
    text = _read_text(path)
    if kind == "jsonl":
        records = _parse_jsonl(text, path)
    elif kind == "txt":
        records = [{"text": line} for line in text.splitlines() if line.strip()]
    else:
        reader = csv.DictReader(text.splitlines(), delimiter="\t" if kind == "tsv" else ",")
        records = list(reader)
    columns = list(dict.fromkeys(key for record in records for key in record))
    rows = [(f"{path.name}/{i:05d}", record) for i, record in enumerate(records)]
    return _Table(name=str(path), columns=columns, rows=_shuffled(rows, config), open_image=_local_opener(path.parent, config))


def _read_text(path: Path) -> str:
    """A seed file's text; BadSeeds naming the line of the first byte that is not UTF-8."""
    try:
        return read_utf8(path)
    except NotUtf8 as err:
        raise BadSeeds(f"seed file {str(path)!r} is {err}") from None


def _parse_jsonl(text: str, path: Path) -> list[dict]:
    """The JSON objects of a .jsonl file, one a line; blank lines are skipped."""
    records = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise BadSeeds(f"{path}:{lineno} is not valid JSON ({err.msg})") from err
        if not isinstance(record, dict):
            raise BadSeeds(f"{path}:{lineno} is not a JSON object; write one object per line")
        records.append(record)
    return records


def _folder_table(folder: Path, config: SeedConfig) -> _Table:
    """Images under ``folder`` in sorted order; the first subfolder name is the label."""
    relative = sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )
    rows = [(rel, {"image": rel, "label": rel.split("/", 1)[0] if "/" in rel else None}) for rel in relative]
    return _Table(
        name=str(folder),
        columns=["image", "label"],
        rows=_shuffled(rows, config),
        open_image=_local_opener(folder, config),
        image_columns=["image"],
    )


def _read_builtin(path: Path) -> dict:
    """A built-in seed set file: description, modality and rows."""
    return json.loads(path.read_text(encoding="utf-8"))


def _builtin_table(name: str, modality: str, config: SeedConfig) -> _Table:
    """Rows of a seed set shipped in ``fade_hub/builtin/seeds``."""
    path = BUILTIN_DIR / f"{name}.json"
    if not path.is_file():
        raise BadSeeds(f"unknown built-in seed set {name!r}; known: {', '.join(list_builtin_seeds())}")
    data = _read_builtin(path)
    if get_modality(modality).image_seeds:
        raise BadSeeds(f"builtin:{name} holds {data['modality']} seeds; image models need an image folder or dataset")
    records = data["rows"]
    rows = [(f"{name}/{i:02d}", record) for i, record in enumerate(records)]
    columns = list(dict.fromkeys(key for record in records for key in record))
    return _Table(
        name=f"builtin:{name}",
        columns=columns,
        rows=_shuffled(rows, config),
        open_image=_local_opener(BUILTIN_DIR, config),
        context_column="context" if "context" in columns else None,
    )


def _hub_table(config: SeedConfig, cap: int, token) -> _Table:
    """Rows of a Hub dataset split, streamed unless ``streaming`` is off; images stay undecoded."""
    import datasets
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub.errors import RepositoryNotFoundError

    source = config.seeds
    try:
        dataset = datasets.load_dataset(
            source,
            config.dataset_config,
            split=config.split,
            streaming=config.streaming,
            revision=config.dataset_revision,
            token=token,
        )
    except (DatasetNotFoundError, RepositoryNotFoundError, FileNotFoundError) as err:
        where = f" at revision {config.dataset_revision!r}" if config.dataset_revision else ""
        raise BadSeeds(
            f"dataset {source!r}{where} was not found on the Hub (or is private: log in or pass a token)"
        ) from err
    except NETWORK_ERRORS as err:
        raise HubUnreachable(f"could not reach the Hub to load dataset {source!r} ({err})") from err
    except ValueError as err:
        raise BadSeeds(f"cannot load dataset {source!r}: {err}") from err
    features = dataset.features
    if features is None:
        first = next(iter(dataset.take(1)), {})
        columns = list(first)
        image_columns: list[str] = []
        label_names: dict[str, list[str]] = {}
    else:
        columns = list(features)
        image_columns = [name for name, feature in features.items() if isinstance(feature, datasets.Image)]
        label_names = {
            name: list(feature.names) for name, feature in features.items() if isinstance(feature, datasets.ClassLabel)
        }
    if image_columns and isinstance(dataset, datasets.IterableDataset):
        # not a cast: a streamed dataset decodes in threads through pending asyncio tasks, which a capped read
        # would leave behind ("Task was destroyed but it is pending!"); fade-hub decodes images itself
        dataset = dataset.decode(False)
    else:
        for name in image_columns:
            dataset = dataset.cast_column(name, datasets.Image(decode=False))
    return _Table(
        name=source,
        columns=columns,
        rows=_hub_rows(dataset, config, cap),
        open_image=hub_opener(token, config.image_side, config.max_pixels),
        image_columns=image_columns,
        label_names=label_names,
    )


def _hub_rows(dataset, config: SeedConfig, cap: int) -> Iterator[tuple[str, dict]]:
    """(seed id, row) pairs in order; ids keep each row's index in the split."""
    split = config.split
    if not config.streaming:
        order = _shuffled(list(range(len(dataset))), config)
        return ((f"{split}/{i:05d}", dataset[i]) for i in order)
    indexed = ((f"{split}/{i:05d}", row) for i, row in enumerate(dataset))
    if not config.shuffle:
        return indexed
    return iter(_shuffled(list(islice(indexed, max(STREAM_SHUFFLE_WINDOW, 10 * cap))), config))
