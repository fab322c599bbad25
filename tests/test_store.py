"""RunStore: the run directory's append-only query log, its crash repair and its metadata."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub.utils import filter_repo_objects

from fade_hub.errors import BadConfig, FolderBusy, ResumeMismatch, RunDamaged, RunNotFound
from fade_hub.folderlock import LOCK_FILE
from fade_hub.hub import PUSH_IGNORE
from fade_hub.store import LOCAL_PATHS_FILE, QUERIES_LOG, RESUME_KEYS, RunStore

META = {
    "run_id": "abc123",
    "model_id": "tiny/model",
    "task": "image-classification",
    "space_fingerprint": "f" * 64,
    "algorithm": "random",
    "mode": "single",
    "seed": 3,
    "seeds": {"source": "seeds/", "split": "train"},
    "budget": 10,
    "config": {"judge_threshold": 0.5, "max_new_tokens": 8, "push_to_hub": None, "batch_size": 16},
}


def records(start: int, stop: int) -> list[dict]:
    """Query-like records with ids start..stop-1 (non-ASCII text included)."""
    return [
        {"query_id": i, "phase": "explore", "output": f"süß {i} 東京", "is_failure": i % 2 == 0}
        for i in range(start, stop)
    ]


def test_create_append_read_round_trip(tmp_path):
    store = RunStore(tmp_path / "run")
    assert not store.exists()
    meta = store.create(dict(META))
    assert meta["status"] == "running" and meta["model_id"] == "tiny/model"
    assert store.queries_path == tmp_path / "run" / QUERIES_LOG and store.queries_path.read_text() == ""
    assert store.read_queries() == []
    store.append(records(0, 3))
    store.append([])
    store.append(records(3, 5))
    assert store.read_queries() == records(0, 5)
    lines = store.queries_path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5 and json.loads(lines[4])["output"] == "süß 4 東京"
    assert RunStore(tmp_path / "run").read_queries() == records(0, 5)  # a fresh reader sees the same


def test_repair_cuts_a_torn_last_line(tmp_path):
    store = RunStore(tmp_path)
    store.create(dict(META))
    store.append(records(0, 4))
    whole = store.queries_path.read_bytes()
    torn = json.dumps(records(4, 5)[0]).encode()[:17]  # a crash in the middle of writing query 4
    store.queries_path.write_bytes(whole + torn)
    reopened = RunStore(tmp_path)
    assert reopened.read_queries() == records(0, 4)  # readers skip the torn line
    assert reopened.repair() == len(torn)
    assert reopened.queries_path.read_bytes() == whole
    assert reopened.repair() == 0  # idempotent
    reopened.append(records(4, 6))
    assert [r["query_id"] for r in reopened.read_queries()] == list(range(6))


def test_resume_repairs_and_checks_identity(tmp_path):
    store = RunStore(tmp_path)
    store.create(dict(META))
    store.append(records(0, 2))
    store.queries_path.write_bytes(store.queries_path.read_bytes() + b'{"query_id": 2, "pha')
    RunStore(tmp_path).update_meta(status="finished")
    finished = (tmp_path / "run.json").read_bytes()
    for key in RESUME_KEYS:
        with pytest.raises(ResumeMismatch, match=f"its {key} is"):
            RunStore(tmp_path).create(dict(META, **{key: "something else"}), resume=True)
    # options that change what a query returns or how it is scored must match too; where the run goes need not
    for option, value in (("judge_threshold", 0.3), ("max_new_tokens", 16), ("new_option", 1)):
        with pytest.raises(ResumeMismatch, match=f"its {option} is"):
            RunStore(tmp_path).create(dict(META, config={**META["config"], option: value}), resume=True)
    assert (tmp_path / "run.json").read_bytes() == finished  # a refused resume changes nothing
    relaxed = dict(META, run_id="new", config={**META["config"], "push_to_hub": "me/run", "batch_size": 4})
    resumed = RunStore(tmp_path)
    meta = resumed.create(relaxed, resume=True)
    assert meta["run_id"] == "abc123" and meta["status"] == "finished"  # the run keeps its identity and its status
    assert store.queries_path.read_bytes().endswith(b"\n") and len(store.read_queries()) == 2
    resumed.append(records(2, 3))  # until it records a new query
    assert resumed.read_meta()["status"] == "running"


def test_answers_logged_out_of_order_read_back_in_query_order(tmp_path):
    store = RunStore(tmp_path)
    store.create(dict(META))
    for batch in ([2], [0, 3], [1]):  # the order concurrent requests were answered in
        store.append([records(i, i + 1)[0] for i in batch])
    assert [json.loads(line)["query_id"] for line in store.queries_path.read_text().splitlines()] == [2, 0, 3, 1]
    assert store.read_queries() == records(0, 4)
    store.append([{"query_id": "4", "phase": "explore"}])
    with pytest.raises(RunDamaged, match=r"queries.jsonl:5 is not a query record \(no whole-number query_id\)"):
        store.read_queries()


def test_one_process_at_a_time_holds_a_run_folder(tmp_path):
    store = RunStore(tmp_path / "run")
    store.hold()
    store.create(dict(META))  # the lock file does not make the new folder "not empty"
    with pytest.raises(FolderBusy, match=rf"^{tmp_path / 'run'} is in use by another fade-hub process \(pid "
                                         rf"{os.getpid()}\); wait until it ends, or use another --output$"):
        RunStore(tmp_path / "run").hold()
    store.release()
    assert not (tmp_path / "run" / LOCK_FILE).exists()  # released: no lock file left behind
    other = RunStore(tmp_path / "run")
    other.hold()
    other.release()
    assert not list(filter_repo_objects([LOCK_FILE], ignore_patterns=list(PUSH_IGNORE)))  # never pushed


def test_a_killed_holder_leaves_no_lock_behind(tmp_path):
    """kill -9 of the holder: the next process takes the folder (the stale lock file is only a file)."""
    store = RunStore(tmp_path)
    store.create(dict(META))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from fade_hub.store import RunStore; store = RunStore(sys.argv[1]); "
         "store.hold(); print('held', flush=True); time.sleep(120)", str(tmp_path)], stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderBusy, match=f"pid {holder.pid}"):
            RunStore(tmp_path).hold()
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert (tmp_path / LOCK_FILE).exists()  # left by the killed holder, but not held
    store.hold()
    store.release()
    assert not (tmp_path / LOCK_FILE).exists()


def test_appended_records_survive_a_kill_before_any_fsync(tmp_path):
    """Group commit: fsyncs are grouped, but every record ``append`` returned from is in the log, even when the
    process is killed (SIGKILL) right after, before any ``sync`` or ``close``; the log is then closed and reopened."""
    store = RunStore(tmp_path)
    store.create(dict(META))
    writer = subprocess.run(
        [sys.executable, "-c", "import os, signal, sys; from fade_hub.store import RunStore; "
         "from tests.test_store import records; store = RunStore(sys.argv[1]); "
         "[store.append(records(i, i + 1)) for i in range(50)]; os.kill(os.getpid(), signal.SIGKILL)", str(tmp_path)],
        cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert writer.returncode == -9, writer.stderr
    assert store.read_queries() == records(0, 50)
    store.append(records(50, 52))
    store.close()
    store.append(records(52, 53))  # a closed log opens again
    store.release()
    assert RunStore(tmp_path).read_queries() == records(0, 53)
    assert store.queries_path.read_bytes().endswith(b"\n")


def test_a_disk_slow_to_sync_never_holds_up_appends_and_sync_waits_for_it(tmp_path, monkeypatch):
    """The group commit's fsyncs run beside the caller: while the disk takes its time to sync (here it waits for the
    test's word), ``append`` and ``sync_soon`` return at once, so that the explorer keeps choosing and the endpoint
    keeps answering; ``sync`` and ``close`` return only once every record appended is on the disk."""
    import threading
    import time as clock

    from fade_hub import store as store_module

    disk_ready, synced, real_fsync = threading.Event(), [], os.fsync

    def slow_fsync(descriptor: int) -> None:
        assert disk_ready.wait(60), "the disk never synced"
        real_fsync(descriptor)
        synced.append(os.fstat(descriptor).st_size)

    monkeypatch.setattr(store_module.os, "fsync", slow_fsync)
    monkeypatch.setattr(store_module, "SYNC_INTERVAL_S", 0.0)  # every append starts a sync
    store = RunStore(tmp_path)
    store.create(dict(META))

    def in_thread(call) -> threading.Thread:
        thread = threading.Thread(target=call, daemon=True)
        thread.start()
        return thread

    appends = in_thread(lambda: [store.append(records(i, i + 1)) or store.sync_soon() for i in range(20)])
    appends.join(30)
    assert not appends.is_alive() and synced == []  # 20 appends returned while the first fsync still waits
    syncing = in_thread(store.sync)
    clock.sleep(0.2)
    assert syncing.is_alive()  # sync waits for the disk
    disk_ready.set()
    syncing.join(30)
    assert not syncing.is_alive() and synced and max(synced) == store.queries_path.stat().st_size
    store.release()
    assert RunStore(tmp_path).read_queries() == records(0, 20)


def test_meta_round_trip_and_update(tmp_path):
    store = RunStore(tmp_path / "run")
    with pytest.raises(RunNotFound, match="not a fade-hub run directory"):
        store.read_meta()
    store.create(dict(META))
    assert {k: v for k, v in store.read_meta().items() if k != "status"} == META
    updated = store.update_meta(status="finished", timings={"explore_s": 1.5})
    assert RunStore(tmp_path / "run").read_meta() == updated
    assert updated["timings"] == {"explore_s": 1.5} and updated["status"] == "finished"
    assert not list((tmp_path / "run").glob(".*tmp"))  # atomic writes leave no temporaries


def test_create_refuses_foreign_or_existing_folders(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(BadConfig, match="not empty and holds no run"):
        RunStore(foreign).create(dict(META))
    assert (foreign / "notes.txt").read_text() == "mine" and not (foreign / "run.json").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    RunStore(empty).create(dict(META))  # an empty folder is fine
    RunStore(empty).append(records(0, 2))
    with pytest.raises(BadConfig, match="already holds a run; pass --resume"):
        RunStore(empty).create(dict(META))
    assert len(RunStore(empty).read_queries()) == 2  # refused: nothing was touched


def test_policy_and_media(tmp_path):
    from PIL import Image

    store = RunStore(tmp_path)
    store.create(dict(META))
    assert store.read_policy() is None
    store.write_policy([0.25, 0.75])
    assert store.read_policy() == [0.25, 0.75]
    rel = store.save_image(42, Image.new("RGB", (4, 4), (1, 2, 3)))
    assert rel == "media/q0000042.png"
    with Image.open(tmp_path / rel) as image:
        assert image.getpixel((0, 0)) == (1, 2, 3)


def strict_json(text: str):
    """``json.loads`` as strict readers do it: NaN and Infinity are errors."""
    def refuse(name: str):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_everything_written_is_standard_json(tmp_path):
    import numpy as np

    store = RunStore(tmp_path)
    store.create(dict(META, stats={"failure_rate": float("nan"), "rates": [np.float32(0.5), np.nan], "n": np.int64(3)}))
    meta = strict_json(store.meta_path.read_text())
    assert meta["stats"] == {"failure_rate": None, "rates": [0.5, None], "n": 3}  # a missing number is null
    store.append([{"query_id": 0, "severity": float("nan"), "reward": 1.0}])
    assert strict_json(store.queries_path.read_text())["severity"] is None
    store.append([{"query_id": 1, "score": np.float32(0.5), "n": np.int64(2), "ok": np.bool_(True)}])  # no NaN in it
    assert strict_json(store.queries_path.read_text().splitlines()[1]) == {"query_id": 1, "score": 0.5, "n": 2,
                                                                           "ok": True}
    store.write_policy([0.5, float("nan")])
    assert strict_json((tmp_path / "policy.json").read_text()) == {"cell_probs": [0.5, None]}
    with pytest.raises(ValueError, match=r"value.threshold is inf"):
        store.update_meta(threshold=float("inf"))  # no reader could tell what an infinity meant
    assert strict_json(store.meta_path.read_text())["stats"]["n"] == 3  # the refused write changed nothing


def test_a_broken_line_inside_the_log_is_named_and_nothing_changes(tmp_path):
    store = RunStore(tmp_path)
    store.create(dict(META))
    store.append(records(0, 5))
    store.update_meta(status="finished")
    lines = store.queries_path.read_bytes().splitlines(keepends=True)
    broken = b"".join(lines[:2] + [b'{"query_id": 2, "out\n'] + lines[3:])
    store.queries_path.write_bytes(broken + b'{"query_id": 5')  # and a torn last line, as a crash leaves
    meta_before = store.meta_path.read_bytes()
    with pytest.raises(RunDamaged, match=r"queries.jsonl:3 is not a query record .*head -n 2"):
        RunStore(tmp_path).create(dict(META), resume=True)
    with pytest.raises(RunDamaged, match=r"queries.jsonl:3"):
        RunStore(tmp_path).read_queries()
    assert store.meta_path.read_bytes() == meta_before  # still "finished"
    assert store.queries_path.read_bytes() == broken + b'{"query_id": 5'  # not even the torn tail was cut
    store.queries_path.write_bytes(b"".join(lines[:2]) + b"[1, 2]\n")
    with pytest.raises(RunDamaged, match="not a JSON object"):
        store.read_queries()
    store.meta_path.write_text('{"run_id": ')
    with pytest.raises(RunDamaged, match="run.json is damaged"):
        store.read_meta()


def test_local_paths_are_recorded_relative_to_the_run(tmp_path):
    model, seeds = tmp_path / "models" / "tiny", tmp_path / "data" / "seeds"
    model.mkdir(parents=True)
    seeds.mkdir(parents=True)
    meta = dict(META, model_id=str(model), target={"model_id": str(model)}, seeds={"source": str(seeds)},
                config={**META["config"], "model": str(model), "seeds": "builtin:prompts", "space": None})
    store = RunStore(tmp_path / "runs" / "one")
    written = store.create(meta)
    assert written["model_id"] == written["target"]["model_id"] == written["config"]["model"] == "../../models/tiny"
    assert written["seeds"]["source"] == "../../data/seeds" and written["config"]["seeds"] == "builtin:prompts"
    assert str(tmp_path) not in store.meta_path.read_text()
    assert meta["model_id"] == str(model)  # the caller's dict is left alone
    store.create(meta, resume=True)  # the same absolute paths match the recorded relative ones
    assert store.read_meta()["model_id"] == "../../models/tiny"
    local = store.local_meta()  # read on this machine, the paths load again
    assert local["model_id"] == local["config"]["model"] == str(model.resolve())
    assert local["seeds"]["source"] == str(seeds.resolve()) and local["config"]["seeds"] == "builtin:prompts"
    assert (tmp_path / "runs" / "one" / LOCAL_PATHS_FILE).is_file()  # hidden: pushes leave it out


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs a second top-level folder")
def test_paths_that_share_no_folder_with_the_run_are_named_only(tmp_path):
    import shutil
    import tempfile

    elsewhere = Path(tempfile.mkdtemp(dir="/dev/shm"))  # shares only / with the run under /tmp
    try:
        model = elsewhere / "tiny"
        model.mkdir()
        store = RunStore(tmp_path / "run")
        store.create(dict(META, model_id=str(model)))
        assert store.read_meta()["model_id"] == "local:tiny" and str(elsewhere) not in store.meta_path.read_text()
        assert store.local_meta()["model_id"] == str(model.resolve())
        (store.root / LOCAL_PATHS_FILE).unlink()  # a run copied to another machine: the name is all there is
        assert store.local_meta()["model_id"] == "local:tiny"
    finally:
        shutil.rmtree(elsewhere)
