"""Feedback records: schema checks, the crash-safe writer (local and through LocalHub), and resolution."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from fade_hub import feedback
from fade_hub.feedback import FeedbackRecord, FeedbackWriter, InvalidFeedback, make_record


def _record(**fields) -> FeedbackRecord:
    base = dict(
        feedback_id=uuid.uuid4().hex, run_id="run1", item="7", item_type="mode", verdict="fix",
        correction="", note="", user="alice", timestamp="2026-01-01T00:00:00.000000Z",
    )
    base.update(fields)
    return FeedbackRecord(**base)


def test_make_record_fills_the_schema():
    record = make_record("run1", " q12 ", "not_a_failure", " circle ", "judge is wrong", "bob")
    data = record.to_dict()
    assert list(data) == list(feedback.RECORD_FIELDS)
    assert data["item"] == "q12" and data["item_type"] == "example" and data["correction"] == "circle"
    assert len(data["feedback_id"]) == 32 and int(data["feedback_id"], 16) >= 0
    stamp = datetime.fromisoformat(data["timestamp"].replace("Z", "+00:00"))
    assert stamp.utcoffset().total_seconds() == 0
    assert make_record("run1", "42", "fix", "", "", "bob").item_type == "mode"


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
        _record(item="7", verdict="fix", timestamp="2026-01-01T10:00:00.000000Z"),
        _record(item="7", verdict="not_a_failure", timestamp="2026-01-01T12:00:00.000000Z"),
        _record(item="7", verdict="acceptable", timestamp="2026-01-01T11:00:00.000000Z"),  # older, written later
        _record(item="7", verdict="fix", user="bob", timestamp="2026-01-01T09:00:00.000000Z"),
        _record(item="7", verdict="acceptable", run_id="run2", timestamp="2026-01-01T09:00:00.000000Z"),
        _record(item="q5", item_type="example", verdict="fix", correction="cat", timestamp="2026-01-02T00:00:00Z"),
        _record(item="q5", item_type="example", verdict="fix", correction="dog", timestamp="2026-01-02T00:00:00Z"),
    ]
    path = tmp_path / "feedback-a.jsonl"
    path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in rows), encoding="utf-8")
    loaded = feedback.load(tmp_path)
    latest = {(r.run_id, r.user, r.item): r for r in loaded.resolved()}
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
    assert {r.verdict for r in loaded.resolved() if r.item == "3"} == {"acceptable"}
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


def _line(**fields) -> str:
    return json.dumps({**_record().to_dict(), "feedback_id": uuid.uuid4().hex, **fields}, ensure_ascii=False)


def test_unusable_lines_are_skipped_with_one_warning_naming_file_and_line(tmp_path, caplog):
    """Unknown verdicts or target types, malformed targets and times, non-UTF-8 lines and a folder named *.jsonl:
    none counts (a later 'banana' does not override alice's fix), and one warning says where each one is."""
    fix = _record(timestamp="2026-01-01T00:00:00.000000Z")
    lines = [
        json.dumps(fix.to_dict()),
        _line(verdict="banana", timestamp="2026-01-02T00:00:00.000000Z"),  # line 2
        _line(item="abc"),
        _line(item=None),
        _line(timestamp="yesterday"),
        _line(item_type="region"),
        _line(item="q5"),  # an example id where the record says mode
        _line(item="1" * 5000),
        _line(user=""),
        _line(item_type="user", item="mallory", verdict="fix"),  # an exclusion with a review verdict
        '["a", "list"]',
        '{"feedback_id": "torn", "run_',
    ]
    path = tmp_path / "feedback-a.jsonl"
    path.write_bytes(("\n".join(lines) + "\n").encode() + _line(note="caf\udce9").encode("utf-8", "surrogateescape"))
    (tmp_path / "x.jsonl").mkdir()
    with caplog.at_level("WARNING", logger="fade_hub.feedback.records"):
        loaded = feedback.load(tmp_path)
    assert loaded.records == (fix,) and loaded.resolved() == [fix]
    assert loaded.skipped_lines == 13
    [warning] = caplog.records
    message = warning.getMessage()
    assert message.startswith("skipped 13 unusable feedback lines") and "\n" not in message
    assert f"{path}:2: unknown verdict 'banana'" in message and f"{path}:3: item 'abc' is neither" in message
    assert message.endswith("and 10 more")


def test_every_unusable_line_is_named_with_its_reason(tmp_path, caplog, monkeypatch):
    from fade_hub.feedback import records

    monkeypatch.setattr(records, "MAX_PROBLEMS_SHOWN", 20)
    path = tmp_path / "feedback-a.jsonl"
    path.write_bytes(b"\n".join([_line(item=None).encode(), _line(timestamp="yesterday").encode(),
                                 _line(item="1" * 5000).encode(), _line(note="caf\xe9").encode("latin-1")]) + b"\n")
    (tmp_path / "x.jsonl").mkdir()
    with caplog.at_level("WARNING", logger="fade_hub.feedback.records"):
        assert len(feedback.load(tmp_path)) == 0
    message = caplog.records[0].getMessage()
    for reason in (f"{path}:1: item is None, not text", f"{path}:2: timestamp 'yesterday' is not an ISO 8601 time",
                   f"{path}:3: item '1111", "longer number than any action id", f"{path}:4: not UTF-8",
                   f"{tmp_path / 'x.jsonl'}: a folder, not a file"):
        assert reason in message


def test_records_written_by_older_versions_still_read(tmp_path):
    """Targets spelled " 021 " or as a JSON number, a null note, a time without microseconds: read as today's."""
    old = {"feedback_id": "a" * 32, "run_id": "r1", "target": 21, "target_type": "mode", "verdict": "fix",
           "correction": "", "note": None, "user": "alice", "timestamp": "2025-01-01T00:00:00Z"}
    lines = [old, {**old, "feedback_id": "b" * 32, "target": " q007 ", "target_type": "example"}]
    (tmp_path / "feedback-old.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    loaded = feedback.load(tmp_path)
    assert loaded.skipped_lines == 0
    assert [(r.item, r.note) for r in loaded.resolved()] == [("21", ""), ("q7", "")]


def test_a_file_mixing_target_and_item_lines_resolves_as_the_all_item_file(tmp_path):
    """Lines naming the subject target/target_type (fade-hub 0.1) and item/item_type read alike; where a line has
    both, item wins; a new file holds item/item_type only."""
    writer = FeedbackWriter(tmp_path / "new")
    for i, (item, verdict, user) in enumerate([("7", "fix", "alice"), ("q5", "acceptable", "bob"),
                                                ("7", "not_a_failure", "bob"), ("7", "acceptable", "alice")]):
        writer.append(replace(make_record("run1", item, verdict, "", "", user),
                              timestamp=f"2026-01-0{i + 1}T00:00:00.000000Z"))
    new_lines = [json.loads(line) for line in writer.path.read_text(encoding="utf-8").splitlines()]
    assert all("item" in line and "item_type" in line and "target" not in line and "target_type" not in line
               for line in new_lines)
    old = [{("target" if key == "item" else "target_type" if key == "item_type" else key): value
            for key, value in line.items()} for line in new_lines]
    both = {**new_lines[3], "target": "8", "target_type": "mode"}  # item wins over target
    mixed = [old[0], new_lines[1], old[2], both]
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "feedback-mixed.jsonl").write_text("".join(json.dumps(line) + "\n" for line in mixed))
    read_new, read_mixed = feedback.load(tmp_path / "new"), feedback.load(tmp_path / "mixed")
    assert read_mixed.skipped_lines == 0 and list(read_mixed.records) == list(read_new.records)
    assert read_mixed.to_frame().equals(read_new.to_frame())
    assert [(r.item, r.user, r.verdict) for r in read_mixed.resolved()] == [
        ("7", "alice", "acceptable"), ("7", "bob", "not_a_failure"), ("q5", "bob", "acceptable")]


def test_unusable_records_on_the_hub_are_skipped_and_do_not_decide_what_mitigate_fades(hub, tmp_path):
    from huggingface_hub import HfApi

    from fade_hub.mitigate.selection import from_feedback

    repo = f"tester/feedback-{uuid.uuid4().hex[:8]}"
    lines = [json.dumps(_record(item="7", verdict="fix").to_dict()),
             _line(item="7", verdict="banana", timestamp="2026-01-02T00:00:00.000000Z"),
             _line(item="8", verdict="fix", timestamp="yesterday"), _line(item="abc")]
    (tmp_path / "feedback-x.jsonl").write_text("\n".join(lines) + "\n")
    HfApi().create_repo(repo, repo_type="dataset")
    HfApi().upload_file(path_or_fileobj=tmp_path / "feedback-x.jsonl", path_in_repo="data/feedback-x.jsonl",
                        repo_id=repo, repo_type="dataset")
    loaded = feedback.load(repo)
    assert [(r.item, r.verdict) for r in loaded.resolved()] == [("7", "fix")] and loaded.skipped_lines == 3
    selection = from_feedback(loaded.resolved(), ["run1"])
    assert selection.targeted == [7] and selection.verdicts == {"fix": 1}


def test_load_of_a_file_or_an_unreachable_hub_is_one_line(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from fade_hub.errors import BadConfig, HubUnreachable

    afile = tmp_path / "feedback.jsonl"
    afile.write_text("")
    with pytest.raises(BadConfig, match="is a file; pass the folder"):
        feedback.load(afile)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(HubUnreachable, match="could not reach the Hub at http://127.0.0.1:9 to read the feedback repo"):
        feedback.load("tester/feedback")


def test_an_item_longer_than_any_id_is_refused_in_words():
    with pytest.raises(InvalidFeedback, match=r"'1111.*\(5000 characters\) is a longer number than any action id"):
        make_record("run1", "1" * 5000, "fix", "", "", "bob")
    assert make_record("run1", "0" * 5000 + "7", "fix", "", "", "bob").item == "7"  # leading zeros are no digits
