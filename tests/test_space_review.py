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
from test_space import (  # noqa: F401 - review_run is a fixture
    _client,
    _start,
    _stop,
    _submit,
    _top,
    _wait_for,
    _withdraw,
    review_run,
    served_app,
)


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
    assert [(r.user, r.target, r.verdict) for r in loaded.resolved()] == [("alice", "21", "fix")]
    assert set(loaded.exclusions()) == {"Bob"} and loaded.exclusions()["Bob"].user == "operator"
    exclusion = loaded.records[-1]
    assert (exclusion.run_id, exclusion.target_type, exclusion.verdict, exclusion.note) == ("", "user", "exclude", "spam")
    writer.append(make_exclusion("bob", "operator", include=True))
    writer.append(make_record("r1", "7", "not_a_failure", "", "", "alice"))  # a later verdict counts again
    resolved = feedback.load(tmp_path).resolved()
    assert [(r.user, r.target, r.verdict) for r in resolved] == [
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
    assert len(loaded) == 2 and [(r.target, r.verdict) for r in loaded.resolved()] == [("21", "acceptable")]


# the review flow ----------------------------------------------------------------------------------


def test_review_flow_advances_resets_and_counts(review_run, tmp_path, caplog):
    from fade_hub import feedback

    run_dir, _ = review_run
    app = _app(run_dir, tmp_path / "fb", reviewer="ada")
    ui, modes = app.ui, app.view.mode_ids
    assert len(modes) >= 3
    pair = ui.pair.value
    whoami, submitting_as, submitting_as_mine, mode, progress, *_ = ui.on_load("unreviewed", pair, None)
    assert submitting_as == submitting_as_mine == "Submitting as **ada**" and mode.value == modes[0]
    assert progress == f"0 of {len(modes)} modes reviewed by you"

    caplog.clear()
    status, *_rest = ui.on_submit(modes[0], None, None, "a note", "unreviewed", modes[0], None)
    assert status == "**Not stored:** Choose a verdict first: press 1, 2 or 3, or click one."
    assert len(app.writer.read()) == 0
    assert [r.getMessage() for r in caplog.records if "refused" in r.getMessage()] == [
        f"refused a verdict by ada on '{modes[0]}': choose a verdict first: fix, acceptable, not_a_failure"]

    status, mode, target, verdict, note, correction, progress, *_ = ui.on_submit(
        modes[0], "fix", None, "must work", "unreviewed", modes[0], None)
    assert status.startswith("Stored **fix** on failure mode #1") and "as **ada**" in status
    assert mode.value == modes[1] and [c[1] for c in mode.choices] == modes[1:]  # the next unreviewed one
    assert (target.value, verdict, note) == (modes[1], None, "") and correction.value is None
    assert progress == f"1 of {len(modes)} modes reviewed by you"
    card, *_shown, yours = ui.on_mode(modes[0], pair, None)
    assert yours.startswith("Your verdict on this mode: **fix**")

    example = ui._target_choices(modes[1])[1][1]  # a verdict on one example keeps the mode and resets the form
    labels = app.view.labels
    status, mode, target, verdict, note, *_ = ui.on_submit(example, "fix", labels[0], "", "unreviewed", modes[1], None)
    assert f"example {example}" in status and mode.value == modes[1] and target.value == modes[1]

    ui.on_submit(modes[2], "acceptable", None, "", "all", modes[2], None)
    assert ui.on_filter("unreviewed", modes[2], None)[0].value == modes[1]
    assert [c[1] for c in ui.on_filter("all", modes[2], None)[0].choices] == modes
    confirmed = [m for m, yes in zip(modes, app.view.modes["confirmed"]) if yes]
    assert [c[1] for c in ui.on_filter("confirmed", None, None)[0].choices] == confirmed

    _, _, _, mine, edit, table, disagree = ui.on_change(modes[0], "not_a_failure", None)
    rows = {row[0]: row for row in mine.value["data"]}
    assert rows[modes[0]][2] == "not a failure" and rows[modes[0]][4] == "must work"  # the note is kept
    assert ui.on_withdraw(modes[2], None)[0].startswith("Withdrawn: your verdict on failure mode #3")
    assert ui.on_withdraw(modes[2], None)[0].startswith("**Not withdrawn:** you have no verdict on")
    resolved = {(r.target, r.verdict) for r in feedback.load(tmp_path / "fb").resolved()}
    assert resolved == {(modes[0], "not_a_failure"), (example, "fix")}
    assert len(feedback.load(tmp_path / "fb")) == 5  # fix, example, acceptable, change, withdrawal: all kept

    other = _app(run_dir, tmp_path / "fb", reviewer="bob")  # another reviewer of the same folder
    other.submit(modes[0], "fix")
    assert other.reviews.disagreements() == [modes[0]]
    *_, table, disagree = other.ui._shared("bob")
    assert disagree.startswith("Reviewers disagree on \\#1 ") and "1 fix · 1 not a failure (disagree)" in disagree and "(disagree)" in table.iloc[0]["verdicts"]
    assert "reviewers disagree on this mode" in other.view.mode_card(modes[0], other.reviews.votes()[modes[0]])


def test_withdraw_through_the_api(review_run, tmp_path):
    from gradio_client.exceptions import AppError

    from fade_hub import feedback
    from fade_hub.feedback.config import AppConfig

    run_dir, repo = review_run
    mode, _, _ = _top(run_dir)
    config = AppConfig(failures=repo, feedback_dir=str(tmp_path / "fb"), find_adapters=False)
    with served_app(config) as (app, url):
        client = _client(url)
        _submit(client, mode, "fix")
        withdrawal = _withdraw(client, f" 0{mode}")
        with pytest.raises(AppError, match="you have no verdict on"):
            _withdraw(client, mode)
        for call in (lambda target: _submit(client, target, "fix"), lambda target: _withdraw(client, target)):
            with pytest.raises(AppError, match=r"\(5000 characters\) is a longer number than any action id"):
                call("1" * 5000)  # refused in words, not a ValueError inside the server
    assert (withdrawal["target"], withdrawal["verdict"]) == (mode, "withdrawn")
    assert feedback.load(tmp_path / "fb").resolved() == [] and len(feedback.load(tmp_path / "fb")) == 2


def test_the_operator_excludes_a_user_without_deleting_anything(review_run, tmp_path, capsys):
    from fade_hub import feedback
    from fade_hub.cli import main

    run_dir, _ = review_run
    folder = tmp_path / "fb"
    for user in ("alice", "bob"):
        _app(run_dir, folder, reviewer=user).submit(_top(run_dir)[0], "fix")
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
    _app(run_dir, folder, reviewer="bob").submit(_top(run_dir)[0], "fix")

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
    mode = _top(run_dir)[0]
    run_id = json.loads((run_dir / "run.json").read_text())["run_id"]
    folder = tmp_path / "fb"
    folder.mkdir()
    good = feedback.make_record(run_id, mode, "fix", "", "", "alice")
    bad = [{**good.to_dict(), "feedback_id": f"{i}" * 32, **change} for i, change in enumerate((
        {"verdict": "banana", "timestamp": "2099-01-01T00:00:00Z"}, {"timestamp": "yesterday"}, {"target": None},
        {"target": "abc"}, {"target_type": "cell"}), 1)]
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
def test_serving_a_local_run_asks_no_hub_for_adapters(review_run, tmp_path):
    """Offline, the adapter search retried a Hub nobody named for ~25 s before the port opened: a local run with
    local feedback asks the Hub for nothing but the token's user."""
    from fade_hub.testing.http_server import HTTPServerThread, Response

    asked: list[str] = []

    async def hub(request):
        asked.append(request.path)
        return Response.json({"name": "ada", "orgs": []} if request.path.startswith("/api/whoami") else [])

    run_dir, _ = review_run
    port, log = free_port(), tmp_path / "app.log"
    with HTTPServerThread(hub) as server:
        command = [sys.executable, "-m", "fade_hub.cli", "space", "serve", "--failures", str(run_dir),
                   "--feedback-dir", str(tmp_path / "fb"), "--port", str(port)]
        process = _start(command, log, tmp_path, env={**os.environ, "HF_ENDPOINT": server.url})
        try:
            _wait_for(f"http://127.0.0.1:{port}/", process, log)
        finally:
            _stop(process, log)
    assert asked == ["/api/whoami-v2"], asked


@pytest.mark.slow
def test_a_reviewer_outside_the_list_is_refused_in_one_line(review_run, tmp_path):
    """`space serve --reviewers alice` run by bob: the submission is refused with one clear line, nothing stored."""
    from gradio_client.exceptions import AppError

    run_dir, _ = review_run
    port, staging, log = free_port(), tmp_path / "fb", tmp_path / "app.log"
    command = [sys.executable, "-m", "fade_hub.cli", "space", "serve", "--failures", str(run_dir), "--feedback-dir",
               str(staging), "--port", str(port), "--reviewers", "alice", "--reviewer", "bob", "--no-find-adapters"]
    process = _start(command, log, tmp_path)
    try:
        _wait_for(f"http://127.0.0.1:{port}/", process, log)
        with pytest.raises(AppError) as refused:
            _submit(_client(f"http://127.0.0.1:{port}/"), _top(run_dir)[0], "fix")
    finally:
        _stop(process, log)
    message = "bob may not review here: this app takes feedback from alice only"
    assert message in str(refused.value)
    lines = log.read_text().splitlines()
    assert "WARNING fade_hub.feedback.app: bob is not among the reviewers (alice): submissions from here will be " \
           "refused" in lines  # said once at start
    assert [line for line in lines if "refused a" in line] == [
        f"WARNING fade_hub.feedback.app: refused a verdict by bob on '{_top(run_dir)[0]}': {message}"]
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


def test_plain_words(review_run):
    from fade_hub.feedback.words import (
        clean_words,
        perturbation_words,
        plain,
        rate_words,
        severity_words,
    )
    from fade_hub.perturb import load_space

    assert rate_words(11, 14, 0.524, 0.924) == ("failed on 11 of 14 seeds (79%); the true rate is between 52% and 92% "
                                                 "(95% interval)")
    assert clean_words({"queries": 0}).startswith("This run measured no clean failure rate")
    assert "about 88% confident" in severity_words("label", 20.0)
    assert severity_words("rouge", 0.3).startswith("0.30 — how far the output fell below")
    text = load_space("text-default")
    assert perturbation_words(text, text.level_strings(text.action_from_id(63))) == (
        "typos in 0.2 of the characters, toggle case, negated, punctuation removed")
    assert perturbation_words(text, text.level_strings(text.action_from_id(0))) == "unchanged"
    assert plain("<img src=x> [a](javascript:x) **b**") == "&lt;img src=x&gt; \\[a\\](javascript:x) \\*\\*b\\*\\*"
    assert plain("# 1. x") == "\\# 1. x" and plain("12. x") == "12\\. x"


def test_examples_show_the_clean_seed_beside_the_perturbed_input(review_run, tmp_path):
    """From the seed folder of a local run, or from a ``clean_image`` column; a pushed run without one says so."""
    import shutil

    import pandas as pd

    from fade_hub.feedback.view import RunView

    run_dir, repo = review_run
    local = RunView.open(str(run_dir))
    mode = local.mode_ids[0]
    pairs = local.example_pairs(mode)
    assert pairs and all("clean seed not stored" not in caption for _, _, caption in pairs)
    pushed = RunView.open(repo).example_pairs(mode)
    assert all(caption.endswith("(clean seed not stored)") for _, _, caption in pushed)
    assert pairs[0][1].width > pushed[0][1].width  # two pictures side by side, not one
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    failures = pd.read_parquet(copy / "data" / "failures.parquet")
    failures["clean_image"] = failures["image"]  # as a run that stores its clean seeds would
    failures.to_parquet(copy / "data" / "failures.parquet", index=False)
    (copy / "run.json").write_text((copy / "run.json").read_text().replace(str(local.meta["seeds"]["source"]), "/gone"))
    stored = RunView.open(str(copy)).example_pairs(mode)
    assert [caption for _, _, caption in stored] == [caption for _, _, caption in pairs]


def test_heatmap_outlines_the_selected_mode(review_run):
    import numpy as np

    from fade_hub.feedback.heatmap import HIGHLIGHT, heatmap_image, pooled_pair
    from fade_hub.run import Run

    run = Run.open(review_run[0])
    failures, queries = pooled_pair(run.landscape, run.space, ("rotation", "brightness"))
    assert failures.sum() == run.landscape["failures"].sum() and queries.shape == (4, 4)
    blue = tuple(int(HIGHLIGHT[i:i + 2], 16) for i in (1, 3, 5))

    def outline(mode_row) -> tuple[float, float]:
        image = np.asarray(heatmap_image(run.landscape, run.space, ("rotation", "brightness"),
                                         {"rotation": str(mode_row["rotation"]), "brightness": str(mode_row["brightness"])}))
        ys, xs = np.nonzero(np.all(np.abs(image.astype(int) - blue) < 30, axis=-1))
        return float(xs.mean()), float(ys.mean())

    first, last = outline(run.modes.iloc[0]), outline(run.modes.iloc[-1])
    assert first != last  # the outline moves with the selected mode
    assert heatmap_image(run.landscape, run.space, ("rotation", "rotation")).size[0] > 300  # one factor: one row


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
    app.ui.on_mode(app.view.mode_ids[0], app.ui.pair.value, None)
    print("modes", len(app.view.mode_ids), "variants", len(app.variants))
    """
)


def test_the_app_runs_without_model_libraries(review_run, tmp_path):
    """What the Space vendors imports no torch, transformers, datasets, ... even lazily while serving a run."""
    from test_space_variants import write_variant

    from fade_hub.feedback.vendor import app_modules

    run_dir, repo = review_run
    variant = write_variant(tmp_path / "variant", run_dir, repo)
    done = subprocess.run([sys.executable, "-c", BLOCK_MODEL_LIBRARIES, str(run_dir), str(tmp_path / "fb"), str(variant)],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "variants 1" in done.stdout
    names = {path.name for path in app_modules()}
    assert {"ui.py", "ui_variants.py", "variants.py", "identity.py", "review.py", "words.py", "heatmap.py"} <= names
