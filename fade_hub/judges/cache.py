"""The LLM judge's verdict cache: a verdict is asked for once per (rubric, judge model and revision, case).

The judge decodes greedily (temperature 0), so the same conversation gets the same verdict: keeping it makes
``--resume``, a second ``rejudge`` and a repeated answer free. The key is the SHA-256 of the rubric's hash, the
judge's identity (model id, or the endpoint when the server names none) and revision, and the case the judge
reads (the input, the expected behaviour, a reference, the answer). Only readable verdicts are kept: an
``unjudged`` answer is asked again next time. The cache is one SQLite file under fade-hub's cache root
(``$FADE_HUB_CACHE``), safe for several processes; it holds verdicts and reasons, never a credential.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..cache import cache_root
from .reply import Reply

CACHE_FILE = Path("judge") / "verdicts.sqlite"
_TIMEOUT_S = 30.0


def verdict_key(rubric_sha256: str, judge: str, revision: str | None, case: Iterable[str]) -> str:
    """The cache key of one case under one rubric and judge."""
    document = json.dumps([rubric_sha256, judge, revision or "", *case], ensure_ascii=False)
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


class VerdictCache:
    """Verdicts by key in a SQLite file (default: under fade-hub's cache root)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else cache_root() / CACHE_FILE

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=_TIMEOUT_S)
        connection.execute("CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, failed INTEGER, reason TEXT)")
        return connection

    def get_many(self, keys: Iterable[str]) -> dict[str, Reply]:
        """The cached verdicts among ``keys``."""
        wanted = sorted(set(keys))
        if not wanted or not self.path.exists():
            return {}
        found: dict[str, Reply] = {}
        with self._connect() as connection:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                rows = connection.execute(
                    f"SELECT key, failed, reason FROM verdicts WHERE key IN ({','.join('?' * len(chunk))})", chunk)
                found.update({key: Reply(bool(failed), reason) for key, failed, reason in rows})
        connection.close()
        return found

    def put_many(self, verdicts: Mapping[str, Reply]) -> None:
        """Keep these verdicts."""
        if not verdicts:
            return
        with self._connect() as connection:
            connection.executemany("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?)",
                                   [(key, int(reply.failed), reply.reason) for key, reply in verdicts.items()])
        connection.close()
