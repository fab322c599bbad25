"""Read a finished run: from its local directory or the dataset repo it was pushed to.

``Run.open(spec)`` gives the run's metadata, concept space, landscape, failures and queries, and
resolves feedback items (what a verdict is about) by one rule (``canonical_item``): a region by its ``region_id``, a failure mode by its cell's
``action_id`` (``"42"``), a failing example by its query id (``"q123"``). Surrounding whitespace and
leading zeros are accepted and dropped (``" 021 "`` -> ``"21"``, ``"q007"`` -> ``"q7"``); anything but
ASCII digits is refused, full-width digits included. The feedback app, ``report`` and ``mitigate`` all
read runs through this module; it imports no UI and no model code.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from .characterize import Characterization, characterize_run
from .errors import NETWORK_ERRORS, HubUnreachable, RunDamaged, RunNotFound
from .landscape import cell_label, failure_modes
from .paths import looks_like_path
from .perturb.concepts import ConceptSpace
from .store import FAILURES_FILE, LANDSCAPE_FILE, META_FILE, QUERIES_FILE, REGIONS_FILE, RunStore

_MODE_ITEM = re.compile(r"[0-9]+", re.ASCII)
_EXAMPLE_ITEM = re.compile(r"q([0-9]+)", re.ASCII)
# a region id (fade_hub.regions): factor=level[,level...] joined by &, or "all"; no whitespace around the parts
_REGION_ITEM = re.compile(r"all|[^&=,\s][^&=]*=[^&=]+(&[^&=,\s][^&=]*=[^&=]+)*")
_COMMIT = re.compile(r"[0-9a-f]{40}", re.ASCII)
MAX_ITEM_DIGITS = 18  # ids are 64-bit integers; longer digit strings are no id (and int() refuses > 4300 digits)
MAX_REGION_ID = 2000  # characters of a region id
ITEM_TYPES = ("mode", "example", "region")


class BadItem(ValueError):
    """A feedback item that names neither a failure mode, nor an example, nor a region."""


def canonical_item(item: Any) -> str:
    """The canonical spelling of a feedback item (``" 021 "`` -> ``"21"``, ``"q007"`` -> ``"q7"``; a region id as
    the run's ``regions`` table spells it, surrounding whitespace dropped)."""
    text = str(item).strip()
    shown = repr(text) if len(text) <= 40 else f"{text[:40]!r}... ({len(text)} characters)"
    match = _MODE_ITEM.fullmatch(text) or _EXAMPLE_ITEM.fullmatch(text)
    if match is None and len(text) <= MAX_REGION_ID and _REGION_ITEM.fullmatch(text):
        return text
    if match is None:
        raise BadItem(f"item {shown} is neither a failure mode's action id (ASCII digits, e.g. '42'), nor an "
                      "example id (e.g. 'q123'), nor a region id (e.g. 'rotation=-30,30&brightness=0.2')")
    number = match.group(match.re.groups).lstrip("0") or "0"
    if len(number) > MAX_ITEM_DIGITS:
        raise BadItem(f"item {shown} is a longer number than any action id or query id can be "
                      f"(at most {MAX_ITEM_DIGITS} digits)")
    return f"{'q' if match.re is _EXAMPLE_ITEM else ''}{number}"


def item_type(item: str) -> str:
    """``mode`` for a cell id such as ``"42"``, ``example`` for a query id such as ``"q123"``, ``region`` for a
    region id such as ``"brightness=0.2"``."""
    text = canonical_item(item)
    if _MODE_ITEM.fullmatch(text):
        return "mode"
    return "example" if _EXAMPLE_ITEM.fullmatch(text) else "region"


def run_file(spec: str | Path, name: str, *, token: str | None = None) -> Path:
    """Path of one file of a run: in a local run directory, or downloaded from a pushed dataset repo."""
    path = Path(spec)
    if path.is_dir():
        if not (path / name).exists():
            status = RunStore(path).read_meta().get("status")
            raise RunNotFound(f"{path} has no {name} yet (status {status!r}); finish the run with --resume")
        return path / name
    if path.exists() or looks_like_path(str(spec)):
        raise RunNotFound(f"{spec!s} is not a run directory (no such folder); pass the folder `fade-hub explore` wrote")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HFValidationError, RepositoryNotFoundError

    try:
        return Path(hf_hub_download(str(spec), name, repo_type="dataset", token=token))
    except (RepositoryNotFoundError, HFValidationError):
        raise RunNotFound(f"{spec!s} is neither a local run directory nor a dataset repo on the Hub") from None
    except EntryNotFoundError:
        raise RunNotFound(f"dataset {spec!s} is not a fade-hub run (no {name})") from None
    except NETWORK_ERRORS as err:
        raise HubUnreachable(f"could not reach the Hub to read {spec!s} ({type(err).__name__}); check HF_ENDPOINT") from None


def read_table(path: Path, spec: str) -> pd.DataFrame:
    """A run's parquet file as a DataFrame; RunDamaged naming the file when it is truncated or not parquet."""
    import pyarrow as pa

    try:
        return pd.read_parquet(path)
    except (pa.ArrowException, OSError) as err:
        raise RunDamaged(
            f"{spec}: {path.name} is damaged (not a readable parquet file: {type(err).__name__}); rebuild it by "
            "rerunning the run's explore command with --resume"
        ) from None


@dataclass(frozen=True)
class Cell:
    """A failure mode: one cell of the concept space, with its landscape row."""

    action_id: int
    levels: dict[str, str]
    row: pd.Series

    @property
    def item(self) -> str:
        """The cell's feedback item."""
        return str(self.action_id)


@dataclass(frozen=True)
class Example:
    """One failing query: its seed, cell, the perturbed input, what the model said and what was expected."""

    query_id: int
    seed_id: str
    action_id: int
    levels: dict[str, str]
    input: str
    clean_input: str
    output: str
    expected: str
    image: bytes | None = None

    @property
    def item(self) -> str:
        """The example's feedback item."""
        return f"q{self.query_id}"


class Run:
    """One run, read lazily: ``meta`` and ``space`` at once, the tables when first asked for."""

    def __init__(self, spec: str | Path, meta: dict[str, Any], *, token: str | None = None,
                 revision: str | None = None) -> None:
        self.spec = str(spec)
        self.meta = meta
        self.token = token
        self.path = Path(spec) if Path(spec).is_dir() else None
        self.space = ConceptSpace.from_dict(meta["space"])
        self.revision = revision  # a pushed run: the commit of its dataset repo that was read

    @classmethod
    def open(cls, spec: str | Path, *, token: str | None = None) -> Run:
        """Open a local run directory or a pushed run dataset; RunNotFound when it is neither."""
        path = run_file(spec, META_FILE, token=token)
        store = RunStore(path.parent)
        meta = store.local_meta() if Path(spec).is_dir() else store.read_meta()  # a local run loads its paths again
        # the Hub's cache keeps a file of commit C in .../snapshots/C/
        commit = path.parent.name if not Path(spec).is_dir() and _COMMIT.fullmatch(path.parent.name) else None
        return cls(spec, meta, token=token, revision=commit)

    def file(self, name: str) -> Path:
        """A local path of one of the run's files (downloaded once for a pushed run)."""
        return run_file(self.spec, name, token=self.token)

    @property
    def run_id(self) -> str:
        """The run's id."""
        return str(self.meta.get("run_id", ""))

    @property
    def model_text(self) -> str:
        """The model under test as a report shows it: a repo id, or a local folder as a path from the current folder
        (absolute when it is not below it); a recorded path that is no longer there says so."""
        model = str(self.meta.get("model_id", ""))
        path = Path(model)
        if self.path is None:
            return model
        if path.is_absolute() and path.exists():
            shown = os.path.relpath(path)
            return model if shown.startswith("..") else shown
        if path.is_absolute():
            return f"{model} (not found)"
        if looks_like_path(model):  # as recorded, relative to the run: the model was moved or deleted
            return f"{model} (not found from the run folder)"
        return model

    @property
    def task(self) -> str:
        """The task of the model under test."""
        return str(self.meta.get("task", ""))

    @property
    def factor_names(self) -> list[str]:
        """The concept space's factor names, in order."""
        return [factor.name for factor in self.space.factors]

    @cached_property
    def landscape(self) -> pd.DataFrame:
        """One row per cell (see ``fade_hub.landscape``); for a run recorded before regions existed, recomputed from
        its queries (``regions_computed``)."""
        if self.regions_computed:
            return self._characterized.landscape
        return read_table(self.file(LANDSCAPE_FILE), self.spec)

    @cached_property
    def regions(self) -> pd.DataFrame:
        """One row per failure region, ranked (see ``fade_hub.characterize``): the ``regions`` config, or computed
        from the queries of a run recorded before regions existed (``regions_computed``)."""
        if self.regions_computed:
            return self._characterized.regions
        return read_table(self.file(REGIONS_FILE), self.spec)

    @cached_property
    def regions_computed(self) -> bool:
        """Whether the run has no ``regions`` config (recorded before regions existed): regions come from its queries."""
        try:
            self.file(REGIONS_FILE)
        except RunNotFound:
            return True
        return False

    @cached_property
    def _characterized(self) -> Characterization:
        return characterize_run(self.meta, self.queries)

    @cached_property
    def failures(self) -> pd.DataFrame:
        """The failing queries with inputs, outputs, expected answers and (images) media bytes."""
        return read_table(self.file(FAILURES_FILE), self.spec)

    @cached_property
    def queries(self) -> pd.DataFrame:
        """Every query of the run."""
        return read_table(self.file(QUERIES_FILE), self.spec)

    @cached_property
    def modes(self) -> pd.DataFrame:
        """The ranked failure modes."""
        return failure_modes(self.landscape)

    def cell_text(self, row: pd.Series | dict) -> str:
        """``rotation=5, brightness=0.4`` for a landscape or query row."""
        return cell_label(row, self.factor_names, sep=", ")

    def cell(self, action_id: int) -> Cell:
        """The landscape row of one cell; RunNotFound when the space has no such cell."""
        rows = self.landscape[self.landscape["action_id"] == int(action_id)]
        if not len(rows):
            raise RunNotFound(f"run {self.run_id} has no cell {action_id} (its space has {len(self.landscape)})")
        row = rows.iloc[0]
        return Cell(int(action_id), {name: str(row[name]) for name in self.factor_names}, row)

    def example(self, query_id: int) -> Example | None:
        """The failing query ``query_id``, or None when it did not fail (or does not exist)."""
        rows = self.failures[self.failures["query_id"] == int(query_id)]
        if not len(rows):
            return None
        row = rows.iloc[0]
        image = row.get("image")
        return Example(
            query_id=int(row["query_id"]),
            seed_id=str(row["seed_id"]),
            action_id=int(row["action_id"]),
            levels={name: str(row[name]) for name in self.factor_names},
            input=str(row.get("input", "")),
            clean_input=str(row.get("clean_input", "")),
            output=str(row["output"]),
            expected=str(row["expected"]),
            image=image.get("bytes") if isinstance(image, dict) else None,
        )

    def region(self, region_id: str) -> pd.Series | None:
        """The ``regions`` row of a region id, or None when the run has no such region."""
        rows = self.regions[self.regions["region_id"] == str(region_id).strip()]
        return rows.iloc[0] if len(rows) else None

    def resolve(self, item: Any) -> Cell | Example | pd.Series | None:
        """The failure mode, failing example or region (its ``regions`` row) a feedback item names, or None when
        the run has no such one."""
        kind = item_type(item)
        item = canonical_item(item)
        if kind == "region":
            return self.region(item)
        if kind == "example":
            return self.example(int(item[1:]))
        action_id = int(item)
        if action_id not in set(self.modes["action_id"].astype(int)):
            return None
        return self.cell(action_id)
