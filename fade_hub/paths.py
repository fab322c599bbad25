"""Names at the edges: folders the user names for output, Hub repo ids, and local paths as a run publishes them.

A run records where its model, seeds and concept space came from. A Hub repo id or ``builtin:NAME`` is
kept as it is; a local path is recorded relative to the run directory (or as ``local:NAME`` when the two
share no folder below the top levels), so that no absolute path (a home folder, a user name, a cache
location) reaches ``run.json`` or a pushed card. The absolute paths stay on this machine in a hidden file
next to ``run.json`` (never pushed), so that a run read here loads its model and seeds again
(``loadable_fields``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import BadConfig, BadRepoId

LOCAL_PREFIX = "local:"
LOCAL_PATHS_FILE = ".local_paths.json"  # a folder's absolute local paths of what it names portably; never pushed
# a relative path is only kept when the run and the path share a folder at least this deep (/home/alice,
# /tmp/work); sharing only / or /home, its ``..`` steps would climb through other users' or system folders
_MIN_SHARED_DEPTH = 2
# a Hub user or organisation name, as a repo id's namespace may be: ASCII letters, digits, '-', '_' and '.', at most
# 96, starting and ending with a letter or digit, without '--' or '..'
_HUB_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9])?", re.ASCII)


class NotUtf8(ValueError):
    """A text file that is not UTF-8; the message says where the first bad byte is."""


def read_utf8(path: str | Path) -> str:
    """A UTF-8 text file's content (a byte-order mark is dropped); NotUtf8 naming the line of the first bad byte."""
    data = Path(path).expanduser().read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise NotUtf8(f"not UTF-8 text (byte 0x{data[err.start]:02x} on line {line}); save it as UTF-8") from None


def check_folder_target(path: Path, flag: str, purpose: str) -> None:
    """BadConfig when ``path`` or the nearest existing folder above it is a file, or cannot be written."""
    path = Path(path)
    existing = next(folder for folder in (path, *path.absolute().parents) if folder.exists())
    if not existing.is_dir():
        raise BadConfig(f"{flag} {path}: {existing} is a file, not a folder; pass a folder {purpose}")
    if not os.access(existing, os.W_OK):
        raise BadConfig(f"{flag} {path}: {existing} is not writable; pass a folder you can write to")


def check_file_target(path: str | Path, flag: str) -> None:
    """BadConfig when ``path`` cannot become a file written there: a folder, or in a folder that does not exist or
    cannot be written (no folder is made for it)."""
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise BadConfig(f"{flag} {path} is a folder; pass a file name, e.g. {path / 'report.xml'}")
    if not folder.is_dir():
        raise BadConfig(f"{flag} {path}: folder {folder} does not exist; create it first or write to an existing one")
    if not os.access(folder, os.W_OK):
        raise BadConfig(f"{flag} {path}: folder {folder} is not writable; pass a folder you can write to")


def is_local_path(value: Any) -> bool:
    """Whether ``value`` is text naming an existing local file or folder."""
    return isinstance(value, str) and bool(value) and Path(value).expanduser().exists()


def looks_like_path(text: str) -> bool:
    """Whether ``text`` can only be a local path (``./x``, ``/x``, ``~/x``, ``x/../y``, ``a/b/c``), never a repo id."""
    return text.startswith((".", "/", "~")) or "\\" in text or text.count("/") > 1 or ".." in text.split("/")


def portable_path(value: Any, base: str | Path) -> Any:
    """``value`` as a run may record it: a local path relative to ``base`` (else ``local:NAME``); anything else as is."""
    if not is_local_path(value):
        return value
    path = Path(value).expanduser().resolve()
    base = Path(base).expanduser().resolve()
    shared = Path(os.path.commonpath([path, base]))
    if len(shared.parts) - 1 < _MIN_SHARED_DEPTH:
        return f"{LOCAL_PREFIX}{path.name}"
    return Path(os.path.relpath(path, base)).as_posix()


def public_name(value: str) -> str:
    """How a published card names a source: a Hub repo id, ``builtin:NAME`` or words as they are, a local path (as
    recorded, relative or absolute) as ``local:NAME``, so that no local path is published."""
    text = str(value)
    if text.startswith((LOCAL_PREFIX, "builtin:")):
        return text
    if looks_like_path(text) or Path(text).is_absolute() or is_local_path(text):
        return f"{LOCAL_PREFIX}{Path(text).name}"
    return text


def check_repo_id(repo_id: str, flag: str) -> None:
    """BadRepoId when ``repo_id`` cannot name a Hub repo (checked before anything is built or sent)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        reason = str(err).split(":")[0].split(". Use")[0].rstrip(".")
        raise BadRepoId(f"{flag} {repo_id!r} is not a valid repo id ({reason}); use NAMESPACE/NAME") from None


def is_hub_name(name: str) -> bool:
    """Whether ``name`` can be a Hub user or organisation name (what a repo id's namespace may be)."""
    return bool(_HUB_NAME.fullmatch(name)) and "--" not in name and ".." not in name


def map_fields(record: dict, fields: tuple[str, ...], change: Callable[[str, str], Any]) -> dict:
    """A copy of ``record`` with each dotted field (``"config.seeds"``) that holds text replaced by
    ``change(field, text)``; the nested dicts on the way are copied, so ``record`` is left as it was."""
    result = dict(record)
    for field in fields:
        *parents, name = field.split(".")
        holder: dict | None = result
        for key in parents:
            if not isinstance(holder.get(key), dict):
                holder = None
                break
            holder[key] = dict(holder[key])
            holder = holder[key]
        if holder is not None and isinstance(holder.get(name), str):
            holder[name] = change(field, holder[name])
    return result


def portable_fields(record: dict, fields: tuple[str, ...], base: str | Path, *, absolute_only: bool = False) -> dict:
    """``record`` with each of ``fields`` made a ``portable_path`` relative to ``base``.

    ``absolute_only`` leaves relative values alone: in a record read back, they are already relative to ``base``.
    """
    def change(field: str, value: str) -> Any:
        return value if absolute_only and not Path(value).is_absolute() else portable_path(value, base)

    return map_fields(record, fields, change)


def local_paths(record: dict, fields: tuple[str, ...]) -> dict[str, str]:
    """The absolute path of each of ``fields`` that names a local file or folder."""
    found: dict[str, str] = {}

    def note(field: str, value: str) -> str:
        if is_local_path(value):
            found[field] = str(Path(value).expanduser().resolve())
        return value

    map_fields(record, fields, note)
    return found


def loadable_fields(record: dict, fields: tuple[str, ...], base: str | Path, known: dict[str, str]) -> dict:
    """``record`` with each path field as a path that loads from here: the absolute path in ``known`` when it is
    the one recorded (it still exists and records as the same value), else the recorded path joined to ``base``
    when that exists, else as recorded."""
    def change(field: str, value: str) -> str:
        path = known.get(field)
        if path and Path(path).exists() and portable_path(path, base) == value:
            return path
        joined = Path(base) / value
        return str(joined.resolve()) if not value.startswith(LOCAL_PREFIX) and joined.exists() else value

    return map_fields(record, fields, change)


def read_local_paths(folder: str | Path) -> dict[str, str]:
    """The absolute paths ``folder/.local_paths.json`` keeps (empty when it is missing or damaged)."""
    path = Path(folder) / LOCAL_PATHS_FILE
    try:
        known = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        known = {}
    return known if isinstance(known, dict) else {}


def resolve_from(spec: str, folder: str | Path) -> str:
    """A path recorded relative to ``folder``, as a path that loads from here; a repo id (or a missing path) as is."""
    joined = Path(folder) / spec
    return str(joined.resolve()) if looks_like_path(spec) and joined.exists() else spec
