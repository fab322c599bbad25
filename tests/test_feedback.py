"""Feedback records: schema checks, the crash-safe writer (local and through LocalHub), and resolution."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from fade_hub import feedback
from fade_hub.feedback import FeedbackRecord, FeedbackWriter, InvalidFeedback, make_record


def _record(**fields) -> FeedbackRecord:
    base = dict(
        feedback_id=uuid.uuid4().hex, run_id="run1", target="7", target_type="mode", verdict="fix",
        correction="", note="", user="alice", timestamp="2026-01-01T00:00:00.000000Z",
    )
    base.update(fields)
    return FeedbackRecord(**base)


def test_make_record_fills_the_schema():
    record = make_record("run1", " q12 ", "not_a_failure", " circle ", "judge is wrong", "bob")
    data = record.to_dict()
    assert list(data) == list(feedback.RECORD_FIELDS)
    assert data["target"] == "q12" and data["target_type"] == "example" and data["correction"] == "circle"
    assert len(data["feedback_id"]) == 32 and int(data["feedback_id"], 16) >= 0
    stamp = datetime.fromisoformat(data["timestamp"].replace("Z", "+00:00"))
    assert stamp.utcoffset().total_seconds() == 0
    assert make_record("run1", "42", "fix", "", "", "bob").target_type == "mode"


@pytest.mark.parametrize(
    ("target", "verdict", "note", "message"),
    [
        ("42", "fixed", "", "unknown verdict 'fixed'"),
        ("42", "", "", "choose a verdict first"),
        ("mode-3", "fix", "", "neither a failure mode's action id"),
        ("q1x", "fix", "", "neither a failure mode's action id"),
        ("42", "fix", "x" * (feedback.MAX_TEXT + 1), "keep it under"),
    ],
)
def test_make_record_rejects_bad_submissions(target, verdict, note, message):
    with pytest.raises(InvalidFeedback, match=message):
        make_record("run1", target, verdict, "", note, "bob")


def test_local_writer_appends_durable_lines_one_file_per_process(tmp_path):
    first, second = FeedbackWriter(tmp_path), FeedbackWriter(tmp_path)
    assert first.path != second.path and first.path.name.startswith("feedback-")
    records = [make_record("run1", "3", "fix", "", f"n{i}", "alice") for i in range(3)]
    for record in records:
        first.append(record)
    second.append(make_record("run1", "4", "acceptable", "", "", "bob"))
    lines = first.path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [r.to_dict() for r in records]
    loaded = feedback.load(tmp_path)
    assert len(loaded) == 4 and loaded.skipped_lines == 0


def test_writer_is_thread_safe(tmp_path):
    writer = FeedbackWriter(tmp_path)

    def client(i: int) -> None:
        for j in range(10):
            writer.append(make_record("run1", f"q{i}", "fix", "", f"{i}-{j} " + "x" * 500, f"user{i}"))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    loaded = feedback.load(tmp_path)
    assert len(loaded) == 160 and loaded.skipped_lines == 0
    assert len({r.feedback_id for r in loaded.records}) == 160


def test_torn_last_line_is_skipped(tmp_path):
    writer = FeedbackWriter(tmp_path)
    writer.append(make_record("run1", "3", "fix", "", "", "alice"))
    with writer.path.open("a", encoding="utf-8") as handle:
        handle.write('{"feedback_id": "abc", "run_id": "ru')  # a crash mid-write
    loaded = feedback.load(tmp_path)
    assert len(loaded) == 1 and loaded.skipped_lines == 1


def test_resolution_keeps_the_latest_verdict_per_run_user_and_target(tmp_path):
    rows = [
        _record(target="7", verdict="fix", timestamp="2026-01-01T10:00:00.000000Z"),
        _record(target="7", verdict="not_a_failure", timestamp="2026-01-01T12:00:00.000000Z"),
        _record(target="7", verdict="acceptable", timestamp="2026-01-01T11:00:00.000000Z"),  # older, written later
        _record(target="7", verdict="fix", user="bob", timestamp="2026-01-01T09:00:00.000000Z"),
        _record(target="7", verdict="acceptable", run_id="run2", timestamp="2026-01-01T09:00:00.000000Z"),
        _record(target="q5", target_type="example", verdict="fix", correction="cat", timestamp="2026-01-02T00:00:00Z"),
        _record(target="q5", target_type="example", verdict="fix", correction="dog", timestamp="2026-01-02T00:00:00Z"),
    ]
    path = tmp_path / "feedback-a.jsonl"
    path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in rows), encoding="utf-8")
    loaded = feedback.load(tmp_path)
    latest = {(r.run_id, r.user, r.target): r for r in loaded.resolved()}
    assert len(latest) == 4
    assert latest[("run1", "alice", "7")].verdict == "not_a_failure"
    assert latest[("run1", "bob", "7")].verdict == "fix"
    assert latest[("run2", "alice", "7")].verdict == "acceptable"
    assert latest[("run1", "alice", "q5")].correction == "dog"  # same timestamp: the later line wins
    frame = loaded.to_frame()
    assert list(frame.columns) == list(feedback.RECORD_FIELDS) and len(frame) == 4
    assert len(loaded.to_frame(resolved=False)) == len(rows)


def test_writer_pushes_to_localhub_and_a_restart_pushes_what_a_crash_left(hub, tmp_path):
    from huggingface_hub import HfApi

    repo = f"tester/feedback-{uuid.uuid4().hex[:8]}"
    staging = tmp_path / "staging"
    writer = FeedbackWriter(staging, repo, every=60)
    first = make_record("run1", "3", "fix", "", "", "alice")
    writer.append(first)
    writer.flush()
    api = HfApi()
    files = api.list_repo_files(repo, repo_type="dataset")
    assert "README.md" in files and f"data/{writer.path.name}" in files
    # a record written after the last push, then the process dies without pushing
    lost_on_crash = make_record("run1", "3", "acceptable", "", "", "alice")
    writer.append(lost_on_crash)
    writer._scheduler.stop()  # the crashed process never pushes again
    assert len(feedback.load(repo)) == 1
    restarted = FeedbackWriter(staging, repo, every=60)
    restarted.append(make_record("run1", "4", "fix", "", "", "bob"))
    restarted.close()
    loaded = feedback.load(repo)
    assert len(loaded) == 3 and len({r.feedback_id for r in loaded.records}) == 3
    assert {r.verdict for r in loaded.resolved() if r.target == "3"} == {"acceptable"}
    pushed = sorted(Path(f).name for f in api.list_repo_files(repo, repo_type="dataset") if f.startswith("data/"))
    assert pushed == sorted([writer.path.name, restarted.path.name])


def test_load_unknown_repo_is_a_clear_error(hub):
    from fade_hub.errors import BadConfig

    with pytest.raises(BadConfig, match="neither a local folder nor a feedback dataset repo"):
        feedback.load("tester/no-such-feedback")


def test_load_of_a_repo_nobody_submitted_to_is_empty_and_quiet(hub, caplog):
    from huggingface_hub import HfApi

    repo = f"tester/fresh-feedback-{uuid.uuid4().hex[:8]}"
    HfApi().create_repo(repo, repo_type="dataset")
    with caplog.at_level("WARNING"):
        loaded = feedback.load(repo)
    assert loaded.records == () and loaded.resolved() == [] and not caplog.records
