"""User code: perturbation ops and judges named as ``package.module:attribute``, imported only on opt-in.

Importing a module runs its code, so fade-hub imports a user's module only when the user passes
``--allow-user-code`` (or ``--trust-remote-code``). A run records every piece of user code it used, by
reference and by the sha256 of the module's source, so that it can be told apart from later edits.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from pathlib import Path
from typing import Any

from .errors import BadConfig

_REF = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def is_user_ref(text: Any) -> bool:
    """Whether ``text`` names user code as ``package.module:attribute``."""
    return isinstance(text, str) and _REF.fullmatch(text) is not None


def import_user_object(ref: str, *, allowed: bool, what: str) -> Any:
    """The attribute ``ref`` names; BadConfig when user code is not allowed or the import fails."""
    if not allowed:
        raise BadConfig(
            f"{what} {ref} is your own Python code; pass --allow-user-code (or --trust-remote-code) to import it"
        )
    module_name, _, attribute = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise BadConfig(f"{what} {ref}: cannot import {module_name} ({err}); is it on PYTHONPATH?") from None
    if not hasattr(module, attribute):
        raise BadConfig(f"{what} {ref}: module {module_name} has no attribute {attribute!r}")
    return getattr(module, attribute)


def user_code_record(ref: str) -> dict[str, str]:
    """What a run records of one piece of user code: its reference and the sha256 of its module's source."""
    module = importlib.import_module(ref.partition(":")[0])
    source = Path(getattr(module, "__file__", "") or "")
    digest = hashlib.sha256(source.read_bytes()).hexdigest() if source.is_file() else ""
    return {"ref": ref, "module_file": source.name, "sha256": digest}
