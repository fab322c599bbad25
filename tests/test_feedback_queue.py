"""The local feedback queue: one folder per Hub endpoint and repo, sidecars naming each file's Hub, the old layout.

The two-Hub tests follow issue 17 with real ``fade-hub space serve`` processes, two LocalHubs at two
endpoints holding the same repo id, gradio_client submissions and a kill -9.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import uuid
from pathlib import Path

import pytest
from conftest import free_port, unique_repo
from space_runs import app_client, build_hostile_text_run, start_app, stop_app, submit, wait_for_app

from fade_hub import feedback
from fade_hub.feedback import FeedbackWriter, make_record
from fade_hub.feedback.queue import endpoint_key, meta_path, queue_dir


def _write(path: Path, notes: list[str]) -> list[str]:
    """Append one record per note to ``path``; their feedback ids."""
    records = [make_record("run1", "3", "fix", "", note, "alice") for note in notes]
    with path.open("a", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r.to_dict()) + "\n" for r in records)
    return [r.feedback_id for r in records]


def _sidecar(path: Path, endpoint: str, repo: str, pushed_bytes: int = 0) -> None:
    meta = {"endpoint": endpoint, "repo_id": repo, "pushed_bytes": pushed_bytes}
    meta_path(path).write_text(json.dumps(meta), encoding="utf-8")


def _on_hub(repo: str, endpoint: str | None = None) -> dict[str, list[str]]:
    """Feedback ids per pushed file name of ``repo`` on the Hub at ``endpoint``; checks that only records go up."""
    from huggingface_hub import HfApi, hf_hub_download

    api = HfApi(endpoint=endpoint)
    files = api.list_repo_files(repo, repo_type="dataset")
    assert all(name in ("README.md", ".gitattributes") or (name.startswith("data/") and name.endswith(".jsonl")) for name in files), files
    ids = {}
    for name in files:
        if name.startswith("data/"):
            local = hf_hub_download(repo, name, repo_type="dataset", endpoint=endpoint,
                                    cache_dir=Path(os.environ["HF_HOME"]) / "reads" / uuid.uuid4().hex)
            ids[Path(name).name] = [json.loads(line)["feedback_id"] for line in Path(local).read_text().splitlines()]
    return ids


def _all_ids(repo: str, endpoint: str | None = None) -> list[str]:
    return sorted(i for ids in _on_hub(repo, endpoint).values() for i in ids)


def _queue_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("fade_hub") and r.levelno >= logging.WARNING]


# the folder and its sidecars -------------------------------------------------------------------------


def test_default_folder_is_keyed_by_endpoint_and_repo_under_the_cache_root(monkeypatch, tmp_path):
    assert endpoint_key("https://huggingface.co") == endpoint_key("https://huggingface.co/")
    assert endpoint_key("https://huggingface.co").startswith("huggingface.co-")
    assert endpoint_key("http://127.0.0.1:5000").startswith("127.0.0.1_5000-")
    assert endpoint_key("http://127.0.0.1:5000") != endpoint_key("http://127.0.0.1:5001")
    first = feedback.default_staging_dir("org/fb", "http://127.0.0.1:5000")
    assert first == Path(os.environ["FADE_HUB_CACHE"]) / "feedback" / endpoint_key("http://127.0.0.1:5000") / "org--fb"
    assert first != feedback.default_staging_dir("org/fb", "http://127.0.0.1:5001")
    assert first != feedback.default_staging_dir("org/other", "http://127.0.0.1:5000")
    assert feedback.default_staging_dir("org/fb") == queue_dir("org/fb", os.environ["HF_ENDPOINT"])
    monkeypatch.delenv("FADE_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert feedback.default_staging_dir("org/fb", "https://huggingface.co").parents[2] == tmp_path / "hf" / "fade-hub"


def test_writer_pushes_only_files_written_for_its_hub_and_repo(hub, tmp_path, caplog):
    repo = unique_repo("fb")
    folder = tmp_path / "queue"
    folder.mkdir()
    elsewhere = folder / "feedback-elsewhere.jsonl"  # written for another Hub that has the same repo id
    _write(elsewhere, ["other hub 1", "other hub 2"])
    _sidecar(elsewhere, "http://127.0.0.1:9", repo)
    other_repo = folder / "feedback-other-repo.jsonl"
    _write(other_repo, ["other repo"])
    _sidecar(other_repo, hub.endpoint, "tester/another")
    pushed_before = folder / "feedback-pushed.jsonl"  # a crash after a push and one more record
    first_ids = _write(pushed_before, ["pushed"])
    _sidecar(pushed_before, hub.endpoint, repo, pushed_bytes=pushed_before.stat().st_size)
    first_ids += _write(pushed_before, ["written after the push"])
    unclaimed = folder / "feedback-local.jsonl"  # kept local, no Hub recorded: claimed by the first repo served
    first_ids += _write(unclaimed, ["local only"])
    with caplog.at_level(logging.WARNING):
        writer = FeedbackWriter(folder, repo, every=60)
    writer.append(new := make_record("run1", "4", "fix", "", "new", "bob"))
    writer.close()
    on_hub = _on_hub(repo)
    assert set(on_hub) == {pushed_before.name, unclaimed.name, writer.path.name}
    assert sorted(i for ids in on_hub.values() for i in ids) == sorted([*first_ids, new.feedback_id])
    lines = _queue_lines(caplog)
    assert len(lines) == 1, lines
    assert f"2 records in 1 file for {repo} on http://127.0.0.1:9" in lines[0]
    assert f"1 record in 1 file for tester/another on {hub.endpoint}" in lines[0]
    for path in (pushed_before, unclaimed, writer.path):  # sidecars say what the Hub holds now
        meta = json.loads(meta_path(path).read_text())
        assert meta == {"endpoint": hub.endpoint, "repo_id": repo, "pushed_bytes": path.stat().st_size}
    assert json.loads(meta_path(elsewhere).read_text())["pushed_bytes"] == 0
    assert len(feedback.load(folder)) == 7  # sidecars are never read as records


def test_a_restart_with_nothing_waiting_pushes_nothing(hub, tmp_path, caplog):
    from huggingface_hub import HfApi

    repo = unique_repo("fb")
    writer = FeedbackWriter(tmp_path, repo, every=60)
    writer.append(make_record("run1", "4", "fix", "", "", "bob"))
    writer.close()
    commits = len(HfApi().list_repo_commits(repo, repo_type="dataset"))
    with caplog.at_level(logging.WARNING):
        FeedbackWriter(tmp_path, repo, every=60).close()
    assert len(HfApi().list_repo_commits(repo, repo_type="dataset")) == commits
    assert _queue_lines(caplog) == []


def test_the_old_layout_is_read_once_and_never_written(hub, tmp_path, monkeypatch, caplog):
    from huggingface_hub import HfApi

    home, cache = tmp_path / "home", tmp_path / "cache"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("FADE_HUB_CACHE", str(cache))
    repo = unique_repo("fb")
    old = home / ".cache" / "fade_hub" / "feedback" / repo.replace("/", "--")
    old.mkdir(parents=True)
    (home / ".cache" / "fade-hub" / "demo-hub").mkdir(parents=True)  # the demo's old cache
    feedback.ensure_feedback_repo(repo)
    partly = old / "feedback-partly.jsonl"  # pushed here once, then two more records before a crash
    partly_ids = _write(partly, ["on the hub"])
    HfApi().upload_file(path_or_fileobj=partly, path_in_repo=f"data/{partly.name}", repo_id=repo, repo_type="dataset")
    partly_ids += _write(partly, ["crash 1", "crash 2"])
    whole = old / "feedback-whole.jsonl"  # fully pushed here
    whole_ids = _write(whole, ["all on the hub"])
    HfApi().upload_file(path_or_fileobj=whole, path_in_repo=f"data/{whole.name}", repo_id=repo, repo_type="dataset")
    never = old / "feedback-never.jsonl"  # never reached this Hub: maybe written for another one
    _write(never, ["unknown hub"])
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in home.rglob("*") if p.is_file()}

    with caplog.at_level(logging.WARNING):
        writer = FeedbackWriter(feedback.default_staging_dir(repo), repo, every=60)
        writer.close()
    lines = _queue_lines(caplog)
    assert len(lines) == 2, lines
    assert str(cache) in lines[0] and "~" not in lines[0] and str(home / ".cache" / "fade-hub") in lines[0]
    assert f"1 file holding records that {hub.endpoint} lacks, copied" in lines[1] and "1 file already on" in lines[1]
    assert "1 file never pushed" in lines[1] and "--feedback-dir" in lines[1]
    assert _all_ids(repo) == sorted(partly_ids + whole_ids)
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in home.rglob("*") if p.is_file()} == before

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        FeedbackWriter(feedback.default_staging_dir(repo), repo, every=60).close()
    assert _queue_lines(caplog) == []  # read once: no second note, nothing copied again
    assert _all_ids(repo) == sorted(partly_ids + whole_ids)


# two Hubs, one repo id: issue 17 end to end -------------------------------------------------------------


class TwoHubs:
    """Two LocalHubs with the same repo id, and `fade-hub space serve` processes sharing one cache root."""

    def __init__(self, root: Path, run_dir: Path) -> None:
        from fade_hub.localhub import LocalHub

        self.root, self.run_dir = root, run_dir
        self.repo = unique_repo("fb", namespace="org")
        self.hubs = [LocalHub(root / f"hub{i}", port=free_port()).start() for i in (1, 2)]
        self.starts = 0

    def endpoint(self, hub: int) -> str:
        return self.hubs[hub - 1].endpoint

    def serve(self, hub: int):
        """Start the app against Hub ``hub`` (1 or 2), wait until it serves; (process, url, log)."""
        self.starts += 1
        port, log = free_port(), self.root / f"app-{self.starts}-hub{hub}.log"
        env = {**os.environ, "HF_ENDPOINT": self.endpoint(hub), "FADE_HUB_CACHE": str(self.root / "cache")}
        command = [sys.executable, "-m", "fade_hub.cli", "space", "serve", "--failures", str(self.run_dir),
                   "--feedback-repo", self.repo, "--port", str(port), "--push-every", "60"]
        process = start_app(command, log, self.root, env)
        url = f"http://127.0.0.1:{port}/"
        wait_for_app(url, process, log)
        return process, url, log

    def submit(self, url: str, count: int = 40) -> list[str]:
        client = app_client(url)
        return sorted(submit(client, "5", "fix", "", f"note {i}")["feedback_id"] for i in range(count))

    def session(self, hub: int) -> tuple[list[str], Path]:
        """Serve against Hub ``hub``, submit 40 records, stop gracefully; (their feedback ids, the app's log)."""
        app, url, log = self.serve(hub)
        try:
            return self.submit(url), log
        finally:
            stop_app(app, log)

    def ids(self, hub: int) -> list[str]:
        return _all_ids(self.repo, self.endpoint(hub))

    def close(self) -> None:
        for hub in self.hubs:
            hub.stop()


@pytest.fixture
def two_hubs(hub, session_dir, tmp_path):
    run_dir, _ = build_hostile_text_run(session_dir)
    hubs = TwoHubs(tmp_path, run_dir)
    yield hubs
    hubs.close()


def _waiting_lines(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if "waiting for other Hubs" in line]


@pytest.mark.slow
def test_each_hub_gets_only_its_own_40_records_even_after_a_kill_9(two_hubs):
    first, log = two_hubs.session(1)  # stopped gracefully: everything of it pushed to Hub 1
    assert two_hubs.ids(1) == first
    app, url, log = two_hubs.serve(1)
    try:
        crashed = two_hubs.submit(url)
        app.send_signal(signal.SIGKILL)
        app.wait(timeout=10)
    finally:
        if app.poll() is None:
            app.kill()
    assert two_hubs.ids(1) == first  # killed before any push
    second, log = two_hubs.session(2)  # a fresh org/fb on another Hub
    assert two_hubs.ids(2) == second  # exactly its 40, none of Hub 1's (pushed or waiting)
    assert two_hubs.ids(1) == first
    waiting = _waiting_lines(log)  # only what the crash left waits for Hub 1
    assert len(waiting) == 1, log.read_text()[-3000:]
    assert f"40 records in 1 file for {two_hubs.repo} on {two_hubs.endpoint(1)}" in waiting[0]

    app, url, log = two_hubs.serve(1)  # the restart pushes what the crash left, at once
    try:
        _wait_until(lambda: two_hubs.ids(1) == sorted(first + crashed), log)
    finally:
        stop_app(app, log)
    assert two_hubs.ids(1) == sorted(first + crashed)
    assert two_hubs.ids(2) == second


def _wait_until(condition, log: Path, timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
