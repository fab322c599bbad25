"""RunStore: a run directory laid out as a Hub dataset repo, append-only and resumable.

Layout::

    RUN_DIR/
      README.md                 dataset card; its YAML ``configs`` make every config loadable
      run.json                  run metadata (model, commit, task, space, judge, algorithm, ...)
      .local_paths.json         the absolute local paths run.json gives relative to the run (never pushed)
      .lock                     held by the process exploring the run, while it runs (never pushed)
      logs/queries.jsonl        every query, one JSON line each, appended as its answer comes (see "Durability")
      data/queries.parquet      the same queries as the ``queries`` config (written by ``summarize``)
      data/failures.parquet     failing queries with their media (written by ``summarize``)
      data/landscape.parquet    one row per cell (written by ``summarize``)
      data/regions.parquet      one row per failure region (written by ``summarize``)
      policy.json               the policy's probability per cell (ppo only)
      media/q000042.png         images of failing queries, saved as they come (embedded into the parquet)
      plots/*.png               pictures for the card

The query log is JSON lines so that a crash loses at most the line being written: on reopening, a
torn last line is cut off and the run resumes from the complete queries. Answers that arrive out of order
are logged in that order; readers see the queries in query-id order. Every config is parquet,
because ``datasets`` reads all configs of a repo with one file format. ``run.json`` is standard JSON (no
NaN), and the local paths it names (model folder, seeds, space file) are relative to the run directory.

Durability of the query log (group commit): ``append`` writes its records and flushes them to the operating system
before it returns, so a process that ends in any way (SIGKILL, Ctrl-C, an exception) loses none of the records
appended. Forcing them onto the disk (fsync) is grouped and happens beside the caller: the first ``append`` at least
``SYNC_INTERVAL_S`` after the last fsync started, and ``sync_soon`` (the querier calls it once a batch is settled),
start one in a background thread and return at once, so that a disk slow to sync (another process writing) never
holds up the explorer choosing its next batch while the endpoint waits for it. ``sync`` (the querier calls it when it
stops on a Ctrl-C or an endpoint failure) and ``close`` (also called by ``release``) fsync before returning. A power
cut or a kernel crash thus loses at most the records appended since the last fsync that completed: those of the
batches still being answered and of the batch settled last.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from .errors import BadConfig, ResumeMismatch, RunDamaged, RunNotFound
from .files import write_atomic
from .folderlock import LOCK_FILE, FolderLock
from .jsonio import to_json
from .options import recorded_options
from .paths import (
    LOCAL_PATHS_FILE, check_folder_target, loadable_fields, local_paths, portable_fields, read_local_paths,
)

QUERIES_LOG = "logs/queries.jsonl"
QUERIES_FILE = "data/queries.parquet"
FAILURES_FILE = "data/failures.parquet"
LANDSCAPE_FILE = "data/landscape.parquet"
REGIONS_FILE = "data/regions.parquet"
POLICY_FILE = "policy.json"
META_FILE = "run.json"
MEDIA_DIR = "media"
PLOTS_DIR = "plots"
DATA_FILES = {"queries": QUERIES_FILE, "failures": FAILURES_FILE, "landscape": LANDSCAPE_FILE, "regions": REGIONS_FILE}
# Fields that must match for --resume to continue a run. The budget is one of them: explorers batch and
# schedule by the budget left, so another budget makes other decisions than the ones replayed from the log.
RESUME_KEYS = ("model_id", "task", "space_fingerprint", "algorithm", "mode", "seed", "seeds", "budget")
# Fields of ``run.json`` that may name a local path: each is recorded relative to the run directory (or by
# its name alone; see ``fade_hub.paths.portable_path``), so that no absolute path reaches a pushed run. The
# settings are recorded as ExploreConfig's tree (``config.inputs.seeds``); runs written before it hold them flat.
PATH_FIELDS = (
    "model_id", "target.model_id", "judge.model_id", "seeds.source",
    "config.model", "config.inputs.seeds", "config.concept_space.space", "config.inputs.label_map",
    "config.judging.judge", "config.judging.clip",
    "config.seeds", "config.space", "config.label_map", "config.judge", "config.clip",
)
# Options of ``run.json``'s ``config`` that may change on --resume; any other change (a judge threshold, the
# generation length, a reward weight, ...) would mix records made under two settings in one run.
RESUME_FREE_OPTIONS = frozenset({
    "push_to_hub", "private", "public", "device", "batch_size", "budget", "force", "concurrency", "max_retries",
    "request_timeout",
})  # fmt: skip
SYNC_INTERVAL_S = 0.5  # an append this long after the query log's last fsync fsyncs it (group commit, see the module doc)


def _reason(err: Exception) -> str:
    """A short reason for a JSON file that does not parse."""
    if isinstance(err, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(err, json.JSONDecodeError):
        return f"invalid JSON: {err.msg} at character {err.pos}"
    return type(err).__name__


class RunStore:
    """Reads and writes one run directory; queries are append-only."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self.folder_lock = FolderLock(self.root)
        self._writing = False  # set with ``status: running``: at creation, or at a resumed run's first new query
        self._log: Any = None  # the query log, open for appending from the first ``append`` to ``close``
        self._unsynced = False  # records written to the log since its last fsync started
        self._synced_at = 0.0  # time.monotonic() when the log's last fsync started
        self._syncer: threading.Thread | None = None  # the background fsync running, if any

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
        try:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RunDamaged(f"{self.meta_path} is damaged ({_reason(err)}); it cannot be rebuilt: start a new run") from None
        if not isinstance(meta, dict):
            raise RunDamaged(f"{self.meta_path} is damaged (not a JSON object); it cannot be rebuilt: start a new run")
        return meta

    def write_meta(self, meta: dict[str, Any]) -> None:
        """Replace ``run.json`` atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self.meta_path, to_json(meta, indent=2, sort_keys=True, default=str) + "\n")

    def update_meta(self, **fields: Any) -> dict[str, Any]:
        """Merge fields into ``run.json`` and return the result."""
        meta = self.read_meta()
        meta.update(fields)
        self.write_meta(meta)
        return meta

    def check_output(self, resume: bool) -> None:
        """BadConfig, before anything is loaded or written, when this folder cannot take the run (or, with
        ``resume``, holds no run to continue); RunDamaged when the run to resume has a damaged file."""
        check_folder_target(self.root, "--output", "for the run")
        if resume:
            if not self.exists():
                raise BadConfig(f"--resume: {self.root} holds no run to resume; drop --resume to start one")
            self.read_meta()
            self.read_queries()
        elif self.exists():
            raise BadConfig(f"{self.root} already holds a run; pass --resume to continue it or choose another --output")
        elif self.root.exists() and any(path.name != LOCK_FILE for path in self.root.iterdir()):
            raise BadConfig(f"{self.root} is not empty and holds no run; choose an empty or new --output folder")

    @property
    def writing(self) -> bool:
        """Whether this process changed the run: created it, or recorded a new query of the run it resumes."""
        return self._writing

    def hold(self, instead: str | None = "--output") -> None:
        """Take the run folder (made if missing) for this process until ``release``: FolderBusy while another process
        has it, naming the flag to pass ``instead``."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.folder_lock.acquire(instead)

    def release(self) -> None:
        """Close the query log (``close``) and let another process take the run folder."""
        self.close()
        self.folder_lock.release()

    def create(self, meta: dict[str, Any], *, resume: bool = False) -> dict[str, Any]:
        """Start a run here, or check that ``meta`` matches the run already here when resuming.

        Every check (the settings, each line of the query log) comes before the first change, so a
        refused resume leaves the run exactly as it was; a resumed run is marked ``running`` again only
        when its first new query is recorded. A process that may share the folder with others holds it
        first (``hold``; ``explore`` does).
        """
        self.check_output(resume)
        original, meta = meta, portable_fields(meta, PATH_FIELDS, self.root)
        if resume:
            self._check_resume(portable_fields(self.read_meta(), PATH_FIELDS, self.root, absolute_only=True), meta)
            self.repair()
            return self.read_meta()
        self.queries_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.root / LOCAL_PATHS_FILE, to_json(local_paths(original, PATH_FIELDS), indent=2) + "\n")
        self.write_meta(dict(meta, status="running"))
        self._writing = True
        self.queries_path.touch()
        return self.read_meta()

    def local_meta(self) -> dict[str, Any]:
        """The run metadata with its local paths as paths that load from here (absolute), for re-running parts."""
        return loadable_fields(self.read_meta(), PATH_FIELDS, self.root, read_local_paths(self.root))

    def _check_resume(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Raise ResumeMismatch naming the first setting in which ``new`` differs from the run here."""
        old_options, new_options = recorded_options(old), recorded_options(new)
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
        """Append query records, handed to the operating system before returning and fsync'ed in groups (see the
        module doc, "Durability"); the run is marked ``running`` first."""
        lines = "".join(to_json(record, ensure_ascii=False, default=str) + "\n" for record in records)
        if not lines:
            return
        if not self._writing:
            self.update_meta(status="running")
            self._writing = True
        with self._lock:
            if self._log is None:
                self._log = self.queries_path.open("a", encoding="utf-8")
            self._log.write(lines)
            self._log.flush()
            self._unsynced = True
            due = time.monotonic() - self._synced_at >= SYNC_INTERVAL_S
        if due:
            self.sync_soon()

    def sync(self) -> None:
        """Force the records appended so far onto the disk (fsync) before returning, if any are not yet (waiting for a
        background fsync that holds some of them)."""
        with self._lock:
            descriptor, running = self._take_unsynced(), self._syncer
        self._fsync(descriptor)
        if running is not None:
            running.join()

    def sync_soon(self) -> None:
        """Force the records appended so far onto the disk in a background thread; return at once."""
        with self._lock:
            if self._syncer is None:  # a running one takes what came meanwhile before it ends
                self._syncer = threading.Thread(target=self._sync_in_background, name="fade-hub-fsync", daemon=True)
                self._syncer.start()

    def close(self) -> None:
        """Sync and close the query log (the next ``append`` opens it again)."""
        self.sync()
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None

    def _sync_in_background(self) -> None:
        """The background fsync of ``sync_soon``: again and again while records came during the last one."""
        while True:
            with self._lock:
                descriptor = self._take_unsynced()
                if descriptor is None:
                    self._syncer = None
                    return
            self._fsync(descriptor)

    def _take_unsynced(self) -> int | None:
        """With the lock held: a duplicate of the log's descriptor to fsync, if records were written since the last
        fsync started (the duplicate keeps the file open for the fsync even if ``close`` closes the log meanwhile);
        None otherwise."""
        if self._log is None or not self._unsynced:
            return None
        self._unsynced, self._synced_at = False, time.monotonic()
        return os.dup(self._log.fileno())

    @staticmethod
    def _fsync(descriptor: int | None) -> None:
        """fsync and close a descriptor from ``_take_unsynced`` (nothing for None)."""
        if descriptor is None:
            return
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def read_queries(self) -> list[dict[str, Any]]:
        """All complete query records, in query-id order; RunDamaged naming a broken line.

        A last line without its newline is a write cut short by a crash: it is skipped here and cut off
        by ``repair`` when the run resumes. A broken line before it is damage that resuming cannot mend.
        """
        if not self.queries_path.exists():
            return []
        records = []
        with self.queries_path.open("rb") as handle:
            for lineno, line in enumerate(handle, start=1):
                if not line.endswith(b"\n"):
                    break
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except (UnicodeDecodeError, json.JSONDecodeError) as err:
                    raise self._damaged_line(lineno, _reason(err)) from None
                if not isinstance(record, dict):
                    raise self._damaged_line(lineno, "not a JSON object")
                if type(record.get("query_id")) is not int:
                    raise self._damaged_line(lineno, "no whole-number query_id")
                records.append(record)
        return sorted(records, key=lambda record: record["query_id"])  # answers are logged in the order they came

    def _damaged_line(self, lineno: int, reason: str) -> RunDamaged:
        """The error for line ``lineno`` of the query log, saying how to continue from the lines before it."""
        return RunDamaged(
            f"{self.queries_path}:{lineno} is not a query record ({reason}); nothing was changed. To continue "
            f"from the {lineno - 1} lines before it, keep only those (head -n {lineno - 1}) and --resume"
        )

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
        write_atomic(self.root / POLICY_FILE, to_json({"cell_probs": probs}) + "\n")

    def read_policy(self) -> list[float] | None:
        """The policy's cell probabilities, if the run has a policy."""
        path = self.root / POLICY_FILE
        if not path.exists():
            return None
        return json.loads(path.read_text(encoding="utf-8"))["cell_probs"]
