"""The review flow of the feedback app, its record schema (withdrawals, exclusions), who may review, the plain
words it shows, and the rule that the Space's code imports no model libraries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import free_port, unique_repo
from space_runs import app_client, served_app, start_app, stop_app, submit, top_cell, wait_for_app, withdraw


def _app(run_dir, folder, **options):
    from fade_hub.feedback.app import AppConfig, FeedbackApp

    return FeedbackApp(AppConfig(failures=str(run_dir), feedback_dir=str(folder), find_adapters=False, **options))


# records ------------------------------------------------------------------------------------------


def test_withdrawals_and_exclusions_are_records_and_resolve(tmp_path):
    from fade_hub import feedback
    from fade_hub.feedback import (
        FeedbackWriter,
        InvalidFeedback,
        make_exclusion,
        make_record,
        make_withdrawal,
    )

    writer = FeedbackWriter(tmp_path)
    for record in (make_record("r1", "21", "fix", "", "", "alice"), make_record("r1", "21", "acceptable", "", "", "bob"),
                   make_record("r1", "q5", "fix", "circle", "", "bob"), make_record("r1", "7", "fix", "", "", "alice"),
                   make_withdrawal("r1", " 07 ", "alice"), make_exclusion("Bob", "operator", "spam")):
        writer.append(record)
    loaded = feedback.load(tmp_path)
    assert len(loaded) == 6  # nothing deleted
    assert [(r.user, r.item, r.verdict) for r in loaded.resolved()] == [("alice", "21", "fix")]
    assert set(loaded.exclusions()) == {"Bob"} and loaded.exclusions()["Bob"].user == "operator"
    exclusion = loaded.records[-1]
    assert (exclusion.run_id, exclusion.item_type, exclusion.verdict, exclusion.note) == ("", "user", "exclude", "spam")
    writer.append(make_exclusion("bob", "operator", include=True))
    writer.append(make_record("r1", "7", "not_a_failure", "", "", "alice"))  # a later verdict counts again
    resolved = feedback.load(tmp_path).resolved()
    assert [(r.user, r.item, r.verdict) for r in resolved] == [
        ("alice", "21", "fix"), ("bob", "21", "acceptable"), ("alice", "7", "not_a_failure"), ("bob", "q5", "fix")]
    assert list(feedback.load(tmp_path).to_frame().columns) == list(feedback.RECORD_FIELDS)
    with pytest.raises(InvalidFeedback, match="choose a verdict first"):
        make_record("r1", "21", "", "", "", "alice")
    with pytest.raises(InvalidFeedback, match="not a user name"):
        make_exclusion("two words", "operator")


def test_old_records_with_unpadded_targets_are_read_and_merged(tmp_path):
    """Records written before targets were canonical ("021") still load, and resolve with "21"."""
    from fade_hub import feedback

    old = {"feedback_id": "a" * 32, "run_id": "r1", "target": "021", "target_type": "mode", "verdict": "fix",
           "correction": "", "note": "", "user": "alice", "timestamp": "2025-01-01T00:00:00.000000Z"}
    new = dict(old, feedback_id="b" * 32, target="21", verdict="acceptable", timestamp="2025-01-02T00:00:00.000000Z")
    (tmp_path / "feedback-old.jsonl").write_text(json.dumps(old) + "\n" + json.dumps(new) + "\n")
    loaded = feedback.load(tmp_path)
    assert len(loaded) == 2 and [(r.item, r.verdict) for r in loaded.resolved()] == [("21", "acceptable")]


# the review flow ----------------------------------------------------------------------------------


def test_review_flow_advances_resets_and_counts(planted_image_run, tmp_path, caplog):
    from fade_hub import feedback

    run_dir, _ = planted_image_run
    app = _app(run_dir, tmp_path / "fb", reviewer="ada")
    ui, regions = app.ui, app.view.region_ids
    assert len(regions) == 3
    whoami, submitting_as_mine, region, progress, *_ = ui.on_load("unreviewed", None)
    assert submitting_as_mine == "Submitting as **ada**" and region.value == regions[0]
    assert progress == "0 of 3 regions reviewed by you"

    caplog.clear()
    status, *_rest = ui.on_submit(regions[0], None, None, "a note", "unreviewed", regions[0], None)
    assert status == "**Not stored:** Choose a verdict first: press 1, 2 or 3, or click one."
    assert len(app.writer.read()) == 0
    assert [r.getMessage() for r in caplog.records if "refused" in r.getMessage()] == [
        f"refused a verdict by ada on '{regions[0][:40]}': choose a verdict first: fix, acceptable, not_a_failure"]
    assert ui.on_submit(None, "fix", None, "", "unreviewed", None, None)[0] == "**Not stored:** pick a region first."

    status, which, region, verdict, note, target, line, whole, correction, progress, *_ = ui.on_submit(
        regions[0], "fix", None, "must work", "unreviewed", regions[0], None)
    assert status.startswith("Stored **fix** on region 1 — next: region 2 (as **ada**")
    assert region.value == regions[1] and [c[1] for c in region.choices] == regions[1:]  # the next unreviewed one
    assert (which, target, verdict, note) == ({"__type__": "update"}, regions[1], None, "") and correction.value is None
    assert line == "Your verdict on **region 2** (all its cells)" and not whole.visible
    assert progress == "1 of 3 regions reviewed by you"
    shown = ui.on_region(regions[0], "all", None, None)
    assert shown[-2].startswith("You said **fix**") and shown[-4] is None  # another region: the form is reset
    kept = ui.on_region(regions[1], "all", regions[1], None)  # shown again while aimed inside it: kept as it is
    assert kept[-4] == {"__type__": "update"} and kept[-8] == {"__type__": "update"}

    example = app.view.example_ids(regions[1])[0]  # a verdict on one example keeps the region, aims at it again
    target, line, whole, correction = ui._aim(example, regions[1])
    assert whole.visible and correction.interactive and f"example {example}" in line and "inside region 2" in line
    status, which, region, verdict, note, target, *_ = ui.on_submit(
        example, "fix", app.view.labels[0], "", "unreviewed", regions[1], None)
    assert f"example {example}" in status and "(inside region 2)" in status and target == regions[1]
    cell = str(app.view.cells(regions[1])[0])  # a cell of the region: its own verdict
    assert ui._aim(cell, regions[1])[1].startswith("Your verdict on **cell ")
    assert ui.on_submit(cell, "not_a_failure", None, "", "unreviewed", regions[1], None)[0].startswith(
        "Stored **not a failure** on cell ")
    refused = ui.on_submit(regions[1], "fix", app.view.labels[0], "", "unreviewed", regions[1], None)[0]
    assert refused.startswith("**Not stored:** a correction applies to one example")

    ui.on_submit(regions[2], "acceptable", None, "", "all", regions[2], None)
    assert ui.on_filter("unreviewed", regions[2], None)[0].value == regions[1]
    assert [c[1] for c in ui.on_filter("all", regions[2], None)[0].choices] == regions
    assert [c[1] for c in ui.on_filter("confirmed", None, None)[0].choices] == regions  # all three confirmed
    status, which, region, *_ = ui.on_submit(regions[1], "acceptable", None, "", "unreviewed", regions[1], None)
    assert status.endswith("**You have reviewed every region: thank you!**")
    assert which == "all" and region.value == regions[1]  # the last one stays in view
    dropdown, progress, card = ui.on_filter("unreviewed", regions[1], None)
    assert dropdown.value is None and card.startswith("**You have reviewed every region")
    assert progress == "3 of 3 regions reviewed by you: all done, thank you!"
    assert ui.on_region(None, "unreviewed", None, None)[-1].interactive is False  # Submit is off with nothing shown

    records = app.writer.read().records
    assert [(r.item_type, r.verdict) for r in records] == [
        ("region", "fix"), ("example", "fix"), ("mode", "not_a_failure"), ("region", "acceptable"),
        ("region", "acceptable")]
    status, verdict, confirm, undo, progress, mine, edit, table, disagree = ui.on_change(
        regions[0], "not_a_failure", None)
    assert status.startswith("Changed: **not a failure** on region 1")
    rows = {row[0]: row for row in mine.value["data"]}
    assert rows[app.view.describe(regions[0])][1] == "not a failure · note: must work"  # the note is kept
    status, confirm = ui.on_ask_withdraw(regions[2], None)
    assert status.startswith("Withdraw your verdict **acceptable** on region 3") and confirm.visible
    assert len(app.writer.read()) == 6  # asking stores nothing
    status, _, confirm, undo, *_, withdrawn = ui.on_withdraw(regions[2], None)
    assert status.startswith("Withdrawn: your verdict on region 3") and undo.visible and not confirm.visible
    assert ui.on_withdraw(regions[2], None)[0].startswith("**Not withdrawn:** you have no verdict on")
    assert ui.on_ask_withdraw(regions[2], None)[0] == "Pick one of your verdicts first."
    assert ui.on_undo(withdrawn, None)[0].startswith("Restored: **acceptable** on region 3")
    resolved = {(r.item, r.verdict) for r in feedback.load(tmp_path / "fb").resolved()}
    assert resolved == {(regions[0], "not_a_failure"), (example, "fix"), (cell, "not_a_failure"),
                        (regions[1], "acceptable"), (regions[2], "acceptable")}
    assert len(feedback.load(tmp_path / "fb")) == 8  # every verdict, change, withdrawal and undo is kept

    other = _app(run_dir, tmp_path / "fb", reviewer="bob")  # another reviewer of the same folder
    other.submit(regions[0], "fix")
    assert other.reviews.disagreements(other.view.region_ids) == [regions[0]]
    *_, table, disagree = other.ui.shared("bob")
    assert disagree.startswith("Reviewers disagree on region 1: 1 fix · 1 not a failure (disagree)")
    assert "(disagree)" in table.iloc[0]["verdicts"]
    assert "reviewers disagree on this region" in other.view.region_card(regions[0], other.reviews.votes()[regions[0]])


def test_empty_filters_say_what_to_do(hostile_run, tmp_path):
    """A run whose regions were never re-tested: 'confirmed' shows none and says where to look instead."""
    run_dir, _ = hostile_run
    app = _app(run_dir, tmp_path / "fb", reviewer="ada")
    assert app.view.region_ids and not app.view.confirmed_ids
    dropdown, _, card = app.ui.on_filter("confirmed", app.view.region_ids[0], None)
    assert dropdown.value is None and dropdown.choices == []
    assert card == "**No confirmed region yet:** review the screened ones under *all*."
    outputs = app.ui.on_region(None, "confirmed", None, None)
    assert outputs[0] == card and outputs[-1].interactive is False


def test_region_verdicts_through_the_api(planted_image_run, tmp_path):
    """The API takes region ids as targets (stored canonically, as the run spells them); ids of no region, and
    corrections on a region, are refused in one line and store nothing."""
    from gradio_client.exceptions import AppError

    from fade_hub import feedback
    from fade_hub.feedback.config import AppConfig

    run_dir, repo = planted_image_run
    config = AppConfig(failures=repo, feedback_dir=str(tmp_path / "fb"), find_adapters=False, reviewer="ada")
    with served_app(config) as (app, url):
        region = app.view.region_ids[0]
        client = app_client(url)
        stored = submit(client, f"  {region} ", "fix", "", "whole region")
        assert (stored["item"], stored["item_type"]) == (region, "region")
        for target, message in ((f"{region}&class=circle", "is not a region of run"),
                                ("rotation=-30", "is not a region of run")):
            with pytest.raises(AppError, match=message):
                submit(client, target, "fix")
        with pytest.raises(AppError, match="a correction applies to one example"):
            submit(client, region, "fix", "square")
        assert withdraw(client, region)["verdict"] == "withdrawn"
    records = feedback.load(tmp_path / "fb")
    assert [(r.item, r.verdict) for r in records.records] == [(region, "fix"), (region, "withdrawn")]
    assert records.resolved() == []


def test_withdraw_through_the_api(review_run, tmp_path):
    from gradio_client.exceptions import AppError

    from fade_hub import feedback
    from fade_hub.feedback.config import AppConfig

    run_dir, repo = review_run
    mode, _, _ = top_cell(run_dir)
    config = AppConfig(failures=repo, feedback_dir=str(tmp_path / "fb"), find_adapters=False)
    with served_app(config) as (app, url):
        client = app_client(url)
        submit(client, mode, "fix")
        withdrawal = withdraw(client, f" 0{mode}")
        with pytest.raises(AppError, match="you have no verdict on"):
            withdraw(client, mode)
        for call in (lambda target: submit(client, target, "fix"), lambda target: withdraw(client, target)):
            with pytest.raises(AppError, match=r"\(5000 characters\) is a longer number than any action id"):
                call("1" * 5000)  # refused in words, not a ValueError inside the server
    assert (withdrawal["item"], withdrawal["verdict"]) == (mode, "withdrawn")
    assert feedback.load(tmp_path / "fb").resolved() == [] and len(feedback.load(tmp_path / "fb")) == 2


def test_the_operator_excludes_a_user_without_deleting_anything(review_run, tmp_path, capsys):
    from fade_hub import feedback
    from fade_hub.cli import main

    run_dir, _ = review_run
    folder = tmp_path / "fb"
    for user in ("alice", "bob"):
        _app(run_dir, folder, reviewer=user).submit(top_cell(run_dir)[0], "fix")
    assert main(["space", "exclude", "bob", "--feedback-dir", str(folder), "--note", "spam"]) == 0
    assert "bob's feedback is left out of resolved() (kept in the dataset)" in capsys.readouterr().out
    loaded = feedback.load(folder)
    assert len(loaded) == 3 and [r.user for r in loaded.resolved()] == ["alice"]
    assert loaded.exclusions()["bob"].user == "local-user"  # the operator: the token's user
    assert main(["space", "exclude", "bob", "--feedback-dir", str(folder), "--undo", "--reviewer", "ops"]) == 0
    assert [r.user for r in feedback.load(folder).resolved()] == ["alice", "bob"]
    assert main(["space", "exclude", "bob"]) == 2
    assert "say where the feedback is" in capsys.readouterr().err


def test_feedback_repo_exclusion_is_pushed(review_run, tmp_path):
    from fade_hub import feedback
    from fade_hub.feedback import FeedbackWriter, make_record
    from fade_hub.feedback.exclude import ExcludeConfig, exclude_user

    repo = unique_repo("feedback")
    writer = FeedbackWriter(tmp_path / "app", repo, every=60)
    writer.append(make_record("r1", "3", "fix", "", "", "mallory"))
    writer.close()
    done = exclude_user(ExcludeConfig(user="mallory", feedback_repo=repo, feedback_dir=str(tmp_path / "q")))
    assert feedback.load(repo).exclusions()["mallory"].feedback_id == done.record.feedback_id


def test_exclude_says_what_it_did_and_writes_only_what_changes_something(review_run, tmp_path):
    from huggingface_hub import HfApi

    from fade_hub import feedback
    from fade_hub.errors import BadConfig
    from fade_hub.feedback.exclude import ExcludeConfig, exclude_user

    run_dir, _ = review_run
    folder = tmp_path / "fb"
    _app(run_dir, folder, reviewer="bob").submit(top_cell(run_dir)[0], "fix")

    def exclude(user: str, **options):
        return exclude_user(ExcludeConfig(user=user, feedback_dir=str(folder), reviewer="ops", **options))

    def files() -> dict[str, str]:
        return {path.name: path.read_text() for path in folder.glob("*.jsonl")}

    undo_first = exclude("bob", undo=True)
    assert undo_first.record is None and undo_first.message == f"bob's feedback is not excluded in {folder}: nothing " \
                                                                "to undo, nothing written"
    assert exclude("bob").record is not None
    before = files()
    twice = exclude("BOB")
    assert twice.record is None and twice.message.startswith("BOB's feedback is already left out of resolved() (by ops")
    assert files() == before
    with pytest.raises(BadConfig, match=f"{folder} holds no feedback by 'carol' \\(reviewers there: bob\\)"):
        exclude("carol")
    assert files() == before and len(feedback.load(folder).exclusions()) == 1
    typo = unique_repo("feedbakc")
    with pytest.raises(BadConfig, match="neither a local folder nor a feedback dataset repo"):
        exclude_user(ExcludeConfig(user="bob", feedback_repo=typo, reviewer="ops"))
    assert not HfApi().repo_exists(typo, repo_type="dataset")  # exclude never creates a repo


def test_the_app_starts_over_unusable_records_and_counts_only_the_usable_ones(review_run, tmp_path, caplog):
    """Timestamps such as 'yesterday', unknown verdicts, null targets, a non-UTF-8 file and a folder named *.jsonl
    in the feedback folder: the app starts, one warning names them, and only alice's fix counts."""
    from collections import Counter

    from fade_hub import feedback

    run_dir, _ = review_run
    mode = top_cell(run_dir)[0]
    run_id = json.loads((run_dir / "run.json").read_text())["run_id"]
    folder = tmp_path / "fb"
    folder.mkdir()
    good = feedback.make_record(run_id, mode, "fix", "", "", "alice")
    bad = [{**good.to_dict(), "feedback_id": f"{i}" * 32, **change} for i, change in enumerate((
        {"verdict": "banana", "timestamp": "2099-01-01T00:00:00Z"}, {"timestamp": "yesterday"}, {"item": None},
        {"item": "abc"}, {"item_type": "cell"}), 1)]
    (folder / "feedback-old.jsonl").write_text("".join(json.dumps(line) + "\n" for line in [good.to_dict(), *bad]))
    (folder / "feedback-latin1.jsonl").write_bytes(json.dumps(good.to_dict()).replace("alice", "caf\xe9")
                                                   .encode("latin-1") + b"\n")
    (folder / "x.jsonl").mkdir()
    with caplog.at_level("WARNING", logger="fade_hub.feedback.records"):
        app = _app(run_dir, folder, reviewer="ada")
    try:
        assert app.reviews.votes() == {mode: Counter(fix=1)}
        assert app.reviews.my_verdict("alice", mode).verdict == "fix"
    finally:
        app.close()
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1 and warnings[0].startswith("skipped 7 unusable feedback lines"), warnings


@pytest.mark.slow
def test_serving_a_local_run_offline_asks_no_host_it_was_not_given(planted_image_run, tmp_path):
    """Offline, the adapter search retried a Hub nobody named for ~25 s before the port opened: a local run with
    local feedback asks the Hub it was given (HF_ENDPOINT) for the token's user only, and nothing else of anyone:
    every other request would go through the proxy the environment names, which sees none (gradio's analytics,
    version checks and fonts included), neither at start nor while the page and a region are served."""
    import urllib.request

    from fade_hub.testing.http_server import HTTPServerThread, Response

    asked: list[str] = []
    proxied: list[str] = []

    async def hub(request):
        asked.append(request.path)
        return Response.json({"name": "ada", "orgs": []} if request.path.startswith("/api/whoami") else [])

    async def proxy(request):
        proxied.append(f"{request.method} {request.path}")
        return Response(502, b"offline")

    run_dir, _ = planted_image_run
    port, log = free_port(), tmp_path / "app.log"
    with HTTPServerThread(hub) as server, HTTPServerThread(proxy) as outside:
        env = {**os.environ, "HF_ENDPOINT": server.url, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        env.update({name: outside.url for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                                                   "all_proxy")})
        env.pop("GRADIO_ANALYTICS_ENABLED", None)  # as a user runs it: the app itself must turn analytics off
        command = [sys.executable, "-m", "fade_hub.cli", "space", "serve", "--failures", str(run_dir),
                   "--feedback-dir", str(tmp_path / "fb"), "--port", str(port)]
        process = start_app(command, log, tmp_path, env=env)
        try:
            wait_for_app(f"http://127.0.0.1:{port}/", process, log)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as page:
                assert page.status == 200
            client = app_client(f"http://127.0.0.1:{port}/")
            assert submit(client, top_cell(run_dir)[0], "fix")["user"] == "ada"
        finally:
            stop_app(process, log)
    assert asked == ["/api/whoami-v2"], asked
    assert proxied == [], proxied


@pytest.mark.slow
def test_a_reviewer_outside_the_list_is_refused_in_one_line(review_run, tmp_path):
    """`space serve --reviewers alice` run by bob: the submission is refused with one clear line, nothing stored."""
    from gradio_client.exceptions import AppError

    run_dir, _ = review_run
    port, staging, log = free_port(), tmp_path / "fb", tmp_path / "app.log"
    command = [sys.executable, "-m", "fade_hub.cli", "space", "serve", "--failures", str(run_dir), "--feedback-dir",
               str(staging), "--port", str(port), "--reviewers", "alice", "--reviewer", "bob", "--no-find-adapters"]
    process = start_app(command, log, tmp_path)
    try:
        wait_for_app(f"http://127.0.0.1:{port}/", process, log)
        with pytest.raises(AppError) as refused:
            submit(app_client(f"http://127.0.0.1:{port}/"), top_cell(run_dir)[0], "fix")
    finally:
        stop_app(process, log)
    message = "bob may not review here: this app takes feedback from alice only"
    assert message in str(refused.value)
    lines = log.read_text().splitlines()
    assert "WARNING fade_hub.feedback.app: bob is not among the reviewers (alice): submissions from here will be " \
           "refused" in lines  # said once at start
    assert [line for line in lines if "refused a" in line] == [
        f"WARNING fade_hub.feedback.app: refused a verdict by bob on '{top_cell(run_dir)[0]}': {message}"]
    assert "Traceback" not in log.read_text()
    assert not any(path.read_text() for path in staging.glob("*.jsonl"))


def test_serve_refuses_to_run_as_nobody(review_run, tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    from fade_hub.cli import main

    run_dir, _ = review_run
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{free_port()}")
    assert main(["space", "serve", "--failures", str(run_dir), "--feedback-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: cannot tell who is reviewing: the Hub token could not be verified")
    assert error.endswith("pass --reviewer NAME to record feedback under your name, or --allow-anonymous to record "
                          "it as 'anonymous'") and "\n" not in error


# words and pictures ---------------------------------------------------------------------------------


def test_plain_words(planted_image_run):
    from fade_hub.feedback.words import (
        cell_words,
        clean_words,
        interval,
        plain,
        points,
        region_facts,
        short_percent,
    )
    from fade_hub.run import Run

    assert (short_percent(0.015), short_percent(0.35), short_percent(0.0), short_percent(None)) == (
        "1.5%", "35%", "0%", "n/a")
    assert (interval(0.28, 0.43), interval(0.004, 0.025)) == ("[28, 43]", "[0.4, 2.5]")
    assert points(0.12, 0.08, 0.16) == "+12 points [+8, +16]" and points(0.002, -0.004, 0.009).startswith("+0.2 points")
    assert cell_words(["rotation", "brightness"], {"rotation": "30", "brightness": "0.2"}) == "rotation 30, brightness 0.2"
    assert clean_words({"queries": 0}).startswith("prompts have no unchanged form")
    assert clean_words({"queries": 36, "failures": 0, "ci_low": 0.0, "ci_high": 0.096}) == "here 0% [0.0, 9.6] of 36 seeds"
    assert plain("<img src=x> [a](javascript:x) **b**") == "&lt;img src=x&gt; \\[a\\](javascript:x) \\*\\*b\\*\\*"
    assert plain("# 1. x") == "\\# 1. x" and plain("12. x") == "12\\. x"
    row = next(Run.open(planted_image_run[0]).regions.itertuples())
    fails, confirmed, by_class = region_facts(row)
    assert fails.startswith(f"**Fails** {short_percent(row.failure_rate)} of seeds [") and "against 0% of clean" in fails
    assert confirmed.startswith(f"**Confirmed** on {int(row.confirm_seeds)} seeds it never saw: ")
    assert by_class.startswith("**By seed class** (in its cells): square ") and "circle" in by_class
    untested = row._replace(confirm_test="", confirmed=False)
    assert region_facts(untested)[1] == "**Not confirmed:** no seeds were held out to re-test it, so treat it as a lead."


def test_examples_span_the_region_each_seed_once_with_its_clean_seed(planted_image_run, tmp_path):
    """A region's examples come from several of its cells and classes, a seed again only once every failing seed
    was shown; each shows the clean seed beside the perturbed input, from the pushed run as from the local one."""
    from fade_hub.feedback.view import MAX_EXAMPLES, RunView

    run_dir, repo = planted_image_run
    local, pushed = RunView.open(str(run_dir)), RunView.open(repo)
    for region in local.region_ids:
        examples = local.examples(region)
        inside = local._inside(region)
        assert len(examples) == min(MAX_EXAMPLES, len(inside.drop_duplicates(["seed_id", "action_id"])))
        assert not examples.duplicated(["seed_id", "action_id"]).any()
        fresh = examples["seed_id"].head(inside["seed_id"].nunique())
        assert fresh.is_unique  # every failing seed once before any seed again
        assert examples["action_id"].nunique() >= min(3, inside["action_id"].nunique())
        classes = set(local.region_row(region).classes) or set(inside["context"])
        assert set(examples["context"]) == classes & set(inside["context"])
        assert [caption for _, _, caption in local.example_pairs(region)] == \
               [caption for _, _, caption in pushed.example_pairs(region)]
    pairs = pushed.example_pairs(local.region_ids[0])
    assert pairs and all("clean seed not stored" not in caption for _, _, caption in pairs)
    assert all(image.width > 1.8 * image.height for _, image, _ in pairs)  # two pictures side by side


def test_failures_config_carries_the_clean_seeds(review_run, tmp_path, caplog):
    """``summarize`` stores each failing image's clean seed (``clean_image``, at the perturbed size); ``load_dataset``
    reads the config from the folder and from the Hub; a run written before (no column, no regions config) still
    shows its regions and examples, saying that the clean seed is not stored; a seed folder that is gone leaves the
    column empty, with a warning."""
    import shutil

    import datasets
    import pandas as pd

    from fade_hub.feedback.view import RunView
    from fade_hub.store import RunStore
    from fade_hub.summarize import summarize

    run_dir, repo = review_run
    for source in (str(run_dir), repo):
        rows = datasets.load_dataset(source, "failures", split="train")
        assert "clean_image" in rows.features and isinstance(rows.features["clean_image"], datasets.Image)
        first = rows[0]
        assert first["clean_image"].size == first["image"].size  # a PIL image, as large as the perturbed one
    failures = pd.read_parquet(run_dir / "data" / "failures.parquet")
    assert failures["clean_image"].notna().all()
    old = tmp_path / "old-run"  # as written before: no column, and the seed folder is gone
    shutil.copytree(run_dir, old)
    failures.drop(columns="clean_image").to_parquet(old / "data" / "failures.parquet", index=False)
    meta = (old / "run.json").read_text()
    (old / "run.json").write_text(meta.replace(str(RunView.open(str(run_dir)).meta["seeds"]["source"]), "/gone"))
    (old / ".local_paths.json").unlink(missing_ok=True)
    (old / "data" / "regions.parquet").unlink()  # and made before regions: they come from its queries
    view = RunView.open(str(old))
    region = view.region_ids[0]
    assert view.run.regions_computed and view.region_picture(region) is None and view.region_card(region)
    assert all(caption.endswith("(clean seed not stored)") for _, _, caption in view.example_pairs(region))
    caplog.clear()
    summarize(RunStore(old))
    assert "the clean seeds of this run could not be read again from" in caplog.text
    assert pd.read_parquet(old / "data" / "failures.parquet")["clean_image"].isna().all()


def test_clean_seeds_are_read_again_from_a_seed_file(shapes_model, block_space, tmp_path):
    """Seeds listed in a .jsonl file (not an image folder) are read again through the seed reader for the
    ``clean_image`` column, each at the size of its perturbed image."""
    import pandas as pd

    from fade_hub.demo.shapes import write_seed_folder
    from fade_hub.explore.config import ExploreConfig
    from fade_hub.explore.runner import explore

    folder = write_seed_folder(tmp_path / "seeds", per_class=4, seed=5)
    listing = tmp_path / "seeds" / "seeds.jsonl"
    listing.write_text("".join(json.dumps({"image": path.relative_to(folder).as_posix(), "label": path.parent.name})
                               + "\n" for path in sorted(folder.rglob("*.png"))))
    run = explore(ExploreConfig(model=str(shapes_model), seeds=str(listing), space=str(block_space), algorithm="grid",
                                output=str(tmp_path / "run"), show_progress=False))
    failures = pd.read_parquet(run.path / "data" / "failures.parquet")
    assert len(failures) and failures["seed_id"].str.startswith("seeds.jsonl/").all()
    from fade_hub.feedback.pictures import decode_image

    for _, row in failures.iterrows():
        clean, perturbed = decode_image(row["clean_image"]), decode_image(row["image"])
        assert clean is not None and clean.size == perturbed.size


def test_heatmap_outlines_the_region(planted_image_run):
    import numpy as np

    from fade_hub.feedback.heatmap import HIGHLIGHT, heatmap_image, pooled_pair
    from fade_hub.feedback.view import RunView

    view = RunView.open(str(planted_image_run[0]))
    failures, queries = pooled_pair(view.landscape, view.space, ("rotation", "brightness"))
    assert failures.sum() == round(view.landscape["failures"].sum()) and queries.shape == (5, 5)
    blue = tuple(int(HIGHLIGHT[i:i + 2], 16) for i in (1, 3, 5))

    def outline(region: str) -> tuple[float, float]:
        image = np.asarray(heatmap_image(view.landscape, view.space, ("rotation", "brightness"),
                                         view.region_levels(region)))
        ys, xs = np.nonzero(np.all(np.abs(image.astype(int) - blue) < 30, axis=-1))
        return float(xs.mean()), float(ys.mean())

    first, last = outline(view.region_ids[0]), outline(view.region_ids[-1])
    assert first != last  # the outline moves with the region
    assert view.region_pair(view.region_ids[1]) == ("brightness", "saturation")  # the factors it constrains
    assert heatmap_image(view.landscape, view.space, ("rotation", "rotation")).size[0] > 300  # one factor: one row


def test_many_valued_flags():
    import argparse

    from fade_hub.feedback.config import AppConfig
    from fade_hub.options import add_options, build_config

    parser = argparse.ArgumentParser()
    add_options(parser, AppConfig)
    args = parser.parse_args(["--failures", "r", "--adapters", "a", "b,c", "--adapters", "d", "--reviewers", "x,org:y"])
    config = build_config(AppConfig, args)
    assert config.adapters == ["a", "b", "c", "d"] and config.reviewers == ["x", "org:y"]
    assert build_config(AppConfig, parser.parse_args(["--failures", "r"])).adapters == []


BLOCK_MODEL_LIBRARIES = textwrap.dedent(
    """
    import sys
    BLOCKED = ("torch", "transformers", "datasets", "peft", "trl", "diffusers", "accelerate", "gymnasium")

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"the Space has no {name}")
            return None

    sys.meta_path.insert(0, Blocker())
    from fade_hub.feedback.app import AppConfig, FeedbackApp
    app = FeedbackApp(AppConfig(failures=sys.argv[1], feedback_dir=sys.argv[2], adapters=sys.argv[3:],
                                find_adapters=False))
    app.ui.on_region(app.view.region_ids[0], "all", None, None)
    print("regions", len(app.view.region_ids), "variants", len(app.variants))
    """
)


@pytest.mark.slow
def test_the_app_runs_without_model_libraries(review_run, tmp_path):
    """What the Space vendors imports no torch, transformers, datasets, ... even lazily while serving a run."""
    from variants import write_variant

    from fade_hub.feedback.vendor import app_modules

    run_dir, repo = review_run
    variant = write_variant(tmp_path / "variant", run_dir, repo)
    done = subprocess.run([sys.executable, "-c", BLOCK_MODEL_LIBRARIES, str(run_dir), str(tmp_path / "fb"), str(variant)],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "variants 1" in done.stdout
    names = {path.name for path in app_modules()}
    assert {"ui.py", "ui_variants.py", "variants.py", "identity.py", "review.py", "words.py", "heatmap.py"} <= names
