"""Built-in concept spaces (``fade_hub/builtin/concepts/*.yaml``) and ``load_space`` for any spec."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import BadSpace
from .concepts import ConceptSpace


def _builtin_dir():
    return resources.files("fade_hub").joinpath("builtin", "concepts")


def _builtin_files() -> dict[str, Any]:
    return {
        entry.name.rsplit(".", 1)[0]: entry
        for entry in _builtin_dir().iterdir()
        if entry.name.endswith((".yaml", ".yml"))
    }


def list_builtin_spaces() -> dict[str, str]:
    """Built-in space name -> one-line description."""
    spaces = {}
    for name, entry in sorted(_builtin_files().items()):
        description = (yaml.safe_load(entry.read_text(encoding="utf-8")) or {}).get("description") or ""
        spaces[name] = " ".join(str(description).split())
    return spaces


def _load_builtin(name: str) -> ConceptSpace:
    files = _builtin_files()
    if name not in files:
        raise BadSpace(f"unknown built-in space {name!r} (known: {', '.join(sorted(files))})")
    space = ConceptSpace._from_text(files[name].read_text(encoding="utf-8"), f"builtin:{name}")
    if space.name is None:
        space.name = name
    return space


def load_space(spec: str | Path | ConceptSpace, *, allow_user_code: bool = False) -> ConceptSpace:
    """A space from ``builtin:NAME``, a bare built-in NAME, a YAML path, or an existing space.

    User ops (``op: package.module:function``) are imported here, and only when ``allow_user_code``.
    """
    space = _read_space(spec)
    space.import_user_ops(allowed=allow_user_code)
    return space


def _read_space(spec: str | Path | ConceptSpace) -> ConceptSpace:
    if isinstance(spec, ConceptSpace):
        return spec
    if isinstance(spec, str) and spec.startswith("builtin:"):
        return _load_builtin(spec[len("builtin:"):])
    path = Path(spec)
    if isinstance(spec, Path) or path.is_file() or path.suffix in (".yaml", ".yml"):
        return ConceptSpace.from_yaml(path)
    names = _builtin_files()
    if spec in names:
        return _load_builtin(spec)
    raise BadSpace(f"{spec}: not a YAML file and not a built-in space (known: {', '.join(sorted(names))})")
