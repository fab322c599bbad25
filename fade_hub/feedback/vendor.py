"""The fade_hub modules a deployed Space needs: the feedback app's import closure inside the package.

Found by reading import statements (``ast``, lazy imports inside functions included) from ``feedback/app.py``
onwards, with the ``__init__.py`` of every package on the way, so that the Space runs from its own files
without torch or transformers and a new import in the app can never be forgotten.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent
ENTRY = "fade_hub.feedback.app"


def _path(module: str) -> Path | None:
    """The source file of a fade_hub module or package, or None when there is none."""
    parts = module.split(".")[1:]
    if not parts:
        return PACKAGE_DIR / "__init__.py"
    relative = Path(*parts)
    for candidate in (PACKAGE_DIR / relative.with_suffix(".py"), PACKAGE_DIR / relative / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(module: str, path: Path) -> set[str]:
    """The fade_hub modules one source file imports."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package
                for _ in range(node.level - 1):
                    parent = parent.rpartition(".")[0]
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if _path(f"{base}.{alias.name}"))
    return {name for name in found if name.split(".")[0] == "fade_hub" and _path(name)}


def app_modules(entry: str = ENTRY) -> list[Path]:
    """Source files of ``entry``'s import closure in fade_hub, with the ``__init__.py`` of each package."""
    seen: set[str] = set()
    todo = [entry]
    while todo:
        module = todo.pop()
        parts = module.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ first
            name = ".".join(parts[:i])
            if name not in seen and _path(name):
                seen.add(name)
                todo.extend(_imports(name, _path(name)))
    return sorted(_path(name) for name in seen)
