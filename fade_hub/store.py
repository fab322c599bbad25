"""RunStore: a run directory laid out as a Hub dataset repo, append-only and resumable.

Layout::

    RUN_DIR/
      README.md                 dataset card; its YAML ``configs`` make every config loadable
      run.json                  run metadata (model, commit, task, space, judge, algorithm, ...)
      logs/queries.jsonl        every query, one JSON line each, appended and fsync'ed as it comes
      data/queries.parquet      the same queries as the ``queries`` config (written by ``summarize``)
      data/failures.parquet     failing queries with their media (written by ``summarize``)
      data/landscape.parquet    one row per cell (written by ``summarize``)
      policy.json               the policy's probability per cell (ppo only)
      media/q000042.png         images of failing queries, saved as they come (embedded into the parquet)
      plots/*.png               pictures for the card

The query log is JSON lines so that a crash loses at most the line being written: on reopening, a
torn last line is cut off and the run resumes from the last complete query. Every config is parquet,
because ``datasets`` reads all configs of a repo with one file format.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Iterable

from .errors import BadConfig, ResumeMismatch, RunNotFound

QUERIES_LOG = "logs/queries.jsonl"
QUERIES_FILE = "data/queries.parquet"
FAILURES_FILE = "data/failures.parquet"
LANDSCAPE_FILE = "data/landscape.parquet"
POLICY_FILE = "policy.json"
META_FILE = "run.json"
MEDIA_DIR = "media"
PLOTS_DIR = "plots"
DATA_FILES = {"queries": QUERIES_FILE, "failures": FAILURES_FILE, "landscape": LANDSCAPE_FILE}
# Fields that must match for --resume to continue a run. The budget is one of them: explorers batch and
# schedule by the budget left, so another budget makes other decisions than the ones replayed from the log.
RESUME_KEYS = ("model_id", "task", "space_fingerprint", "algorithm", "mode", "seed", "seeds", "budget")
# Options of ``run.json``'s ``config`` that may change on --resume; any other change (a judge threshold, the
# generation length, a reward weight, ...) would mix records made under two settings in one run.
RESUME_FREE_OPTIONS = frozenset({
    "push_to_hub", "private", "device", "batch_size", "budget", "force", "concurrency", "max_retries", "request_timeout",
})  # fmt: skip


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class RunStore:
    """Reads and writes one run directory; queries are append-only."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()

    # metadata -----------------------------------------------------------------------------------

    @property
    def meta_path(self) -> Path:
        """Path of ``run.json``."""
        return self.root / META_FILE

    def exists(self) -> bool:
        """Whether the folder already holds a run."""
        return self.meta_path.is_file()

    def read_meta(self) -> dict[str, Any]:
        """The run metadata; RunNotFound if the folder is not a run."""
        if not self.exists():
            raise RunNotFound(f"{self.root} is not a fade-hub run directory (no {META_FILE}); check the path")
        return json.loads(self.meta_path.read_text(encoding="utf-8"))

    def write_meta(self, meta: dict[str, Any]) -> None:
        """Replace ``run.json`` atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.meta_path, json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")

    def update_meta(self, **fields: Any) -> dict[str, Any]:
        """Merge fields into ``run.json`` and return the result."""
        meta = self.read_meta()
        meta.update(fields)
        self.write_meta(meta)
        return meta

    def create(self, meta: dict[str, Any], *, resume: bool = False) -> dict[str, Any]:
        """Start a run here, or check that ``meta`` matches the run already here when resuming."""
        if self.exists():
            if resume:
                self._check_resume(self.read_meta(), meta)
                self.repair()
                return self.update_meta(status="running")
            raise BadConfig(f"{self.root} already holds a run; pass --resume to continue it or choose another --output")
        if self.root.exists() and any(self.root.iterdir()):
            raise BadConfig(f"{self.root} is not empty and holds no run; choose an empty or new --output folder")
        self.queries_path.parent.mkdir(parents=True, exist_ok=True)
        self.write_meta(dict(meta, status="running"))
        self.queries_path.touch()
        return self.read_meta()

    def _check_resume(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Raise ResumeMismatch naming the first setting in which ``new`` differs from the run here."""
        old_options, new_options = old.get("config") or {}, new.get("config") or {}
        options = sorted((set(old_options) | set(new_options)) - RESUME_FREE_OPTIONS)
        pairs = [(key, old.get(key), new.get(key)) for key in RESUME_KEYS]
        pairs += [(key, old_options.get(key), new_options.get(key)) for key in options]
        for key, was, now in pairs:
            if was != now:
                raise ResumeMismatch(
                    f"cannot resume {self.root}: its {key} is {was!r} but this run has {now!r}; resume with the "
                    f"run's own settings (see its {META_FILE}) or use another --output"
                )

    # queries ------------------------------------------------------------------------------------

    @property
    def queries_path(self) -> Path:
        """Path of the append-only query log."""
        return self.root / QUERIES_LOG

    def repair(self) -> int:
        """Cut a torn last line (a crash mid-write) off the query log; return how many bytes were cut."""
        path = self.queries_path
        if not path.exists():
            return 0
        data = path.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep == len(data):
            return 0
        with path.open("r+b") as handle:
            handle.truncate(keep)
        return len(data) - keep

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Append query records and make them durable before returning."""
        lines = "".join(json.dumps(record, ensure_ascii=False, default=str) + "\n" for record in records)
        if not lines:
            return
        with self._lock, self.queries_path.open("a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())

    def read_queries(self) -> list[dict[str, Any]]:
        """All complete query records, in the order they were written."""
        if not self.queries_path.exists():
            return []
        records = []
        with self.queries_path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.endswith("\n") and line.strip():
                    records.append(json.loads(line))
        return records

    # media and derived files --------------------------------------------------------------------

    def media_path(self, query_id: int) -> Path:
        """Where the image of query ``query_id`` is kept."""
        return self.root / MEDIA_DIR / f"q{query_id:07d}.png"

    def save_image(self, query_id: int, image) -> str:
        """Save a PIL image for a query; return its path relative to the run directory."""
        path = self.media_path(query_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        image.save(tmp, format="PNG")
        os.replace(tmp, path)
        return path.relative_to(self.root).as_posix()

    def write_policy(self, probs: list[float]) -> None:
        """Store the policy's probability of every cell."""
        _write_atomic(self.root / POLICY_FILE, json.dumps({"cell_probs": probs}) + "\n")

    def read_policy(self) -> list[float] | None:
        """The policy's cell probabilities, if the run has a policy."""
        path = self.root / POLICY_FILE
        if not path.exists():
            return None
        return json.loads(path.read_text(encoding="utf-8"))["cell_probs"]
