"""The feedback app against LocalHub: gradio_client submissions, concurrency, crash safety, deploy to a Space.

The failures come from real explorations of the demo's shapes classifier pushed to the session LocalHub (a 2x2
space with one failure mode, a 4x4 space with several), and from a hand-made text-generation run whose model
output is an HTML injection (tests/space_runs.py builds them; the fixtures are in conftest.py).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import free_port, unique_repo
from space_runs import app_client, BOOTSTRAP, CHECKOUT, run_id_of, served_app, start_app, stop_app, submit, top_cell, wait_for_app, XSS

# gradio_client against the in-process app -----------------------------------------------------------


@pytest.mark.slow  # end to end (a served app, a subprocess or timed requests): the slow tier
def test_submissions_land_in_the_feedback_repo_with_the_schema(image_run, tmp_path):
    from gradio_client.exceptions import AppError
    from huggingface_hub import HfApi, hf_hub_download

    from fade_hub import feedback
    from fade_hub.feedback.app import AppConfig

    run_dir, repo = image_run
    mode, example, labels = top_cell(run_dir)
    feedback_repo = unique_repo("feedback")
    config = AppConfig(failures=repo, feedback_repo=feedback_repo, feedback_dir=str(tmp_path / "fb"), push_every=60)
    with served_app(config) as (app, url):
        client = app_client(url)
        first = submit(client, mode, "fix", "", "dark + rotated must work")
        second = submit(client, example, "fix", labels[0], "")
        refused = [
            (mode, "fixed", "", "unknown verdict 'fixed'"),
            ("99999", "fix", "", "cell 99999 is in no region of run"),
            ("rotation=40&brightness=1.0", "fix", "", "is not a region of run"),
            ("q99999", "fix", "", "is not a failing example of run"),
            ("banana", "fix", "", "neither a failure mode's action id"),
            (example, "fix", "not-a-label", "is not one of the model's labels"),
            (mode, "fix", labels[0], "a correction applies to one example"),
        ]
        for target, verdict, correction, message in refused:
            with pytest.raises(AppError, match=message):
                submit(client, target, verdict, correction)
        app.writer.flush()
        stored = [json.loads(line) for line in app.writer.path.read_text().splitlines()]
        name = app.writer.path.name
    assert stored == [first, second]  # nothing refused was stored
    files = HfApi().list_repo_files(feedback_repo, repo_type="dataset")
    assert f"data/{name}" in files and "README.md" in files
    pushed_file = Path(hf_hub_download(feedback_repo, f"data/{name}", repo_type="dataset"))
    pushed = [json.loads(line) for line in pushed_file.read_text().splitlines()]
    assert pushed == [first, second]
    for record in pushed:
        assert list(record) == list(feedback.RECORD_FIELDS)
        assert record["run_id"] == run_id_of(run_dir) and record["user"] == "local-user"
        assert all(isinstance(value, str) for value in record.values())
    assert (first["item"], first["item_type"], first["verdict"]) == (mode, "mode", "fix")
    assert first["note"] == "dark + rotated must work"
    assert (second["item"], second["item_type"], second["correction"]) == (example, "example", labels[0])


def test_targets_are_stored_canonically_and_non_ascii_digits_refused(review_run, tmp_path):
    from gradio_client.exceptions import AppError

    from fade_hub import feedback
    from fade_hub.feedback.config import AppConfig

    run_dir, repo = review_run
    mode, example, _ = top_cell(run_dir)
    config = AppConfig(failures=repo, feedback_dir=str(tmp_path / "fb"), find_adapters=False)
    with served_app(config) as (app, url):
        client = app_client(url)
        padded = [submit(client, f"0{mode}", "fix"), submit(client, f" {mode} ", "acceptable"),
                  submit(client, f" q0{example[1:]}", "fix")]
        wide = "".join(chr(ord(c) + 0xFEE0) for c in mode)  # the same digits, full width
        for target in (wide, f"q{wide}", "٢١"):
            with pytest.raises(AppError, match="ASCII digits"):
                submit(client, target, "fix")
    assert [r["item"] for r in padded] == [mode, mode, example]
    stored = feedback.load(tmp_path / "fb")
    assert len(stored) == 3 and {r.item for r in stored.records} == {mode, example}
    assert [(r.item, r.verdict) for r in stored.resolved() if r.item_type == "mode"] == [(mode, "acceptable")]


def test_load_resolves_repeated_verdicts(image_run, tmp_path):
    from fade_hub import feedback
    from fade_hub.feedback.app import AppConfig

    run_dir, repo = image_run
    mode, example, labels = top_cell(run_dir)
    feedback_repo = unique_repo("feedback")
    config = AppConfig(failures=repo, feedback_repo=feedback_repo, feedback_dir=str(tmp_path / "fb"), push_every=60)
    with served_app(config) as (app, url):
        client = app_client(url)
        for verdict in ("fix", "acceptable", "not_a_failure"):
            submit(client, mode, verdict)
        submit(client, example, "fix", labels[0])
        submit(client, example, "fix", labels[-1])
        app.writer.flush()
    loaded = feedback.load(feedback_repo)
    assert len(loaded) == 5
    latest = {r.item: r for r in loaded.resolved()}
    assert set(latest) == {mode, example}
    assert latest[mode].verdict == "not_a_failure"
    assert (latest[example].verdict, latest[example].correction) == ("fix", labels[-1])
    frame = loaded.to_frame()
    assert len(frame) == 2 and set(frame["user"]) == {"local-user"}


def test_who_may_submit(image_run, tmp_path, monkeypatch, caplog):
    import gradio as gr

    from fade_hub.errors import BadConfig
    from fade_hub.feedback.app import AppConfig, FeedbackApp

    run_dir, _ = image_run
    mode, _, _ = top_cell(run_dir)
    config = {"failures": str(run_dir), "find_adapters": False}
    on_space = FeedbackApp(AppConfig(**config, feedback_dir=str(tmp_path / "a"), on_space=True,
                                     reviewers=["ada", "org:acme"]))
    assert any(isinstance(block, gr.LoginButton) for block in on_space.demo.blocks.values())
    assert "Not signed in" in on_space.whoami_line(None)
    with pytest.raises(gr.Error, match="sign in with your Hugging Face account"):
        on_space.submit(mode, "fix")

    def profile(name: str, orgs: tuple[str, ...] = ()) -> gr.OAuthProfile:
        return gr.OAuthProfile({"name": name, "preferred_username": name, "profile": "", "picture": "",
                                "orgs": [{"preferred_username": org} for org in orgs]})

    assert on_space.whoami_line(profile("Ada")) == "Submitting as **Ada**"
    assert on_space.submit(mode, "fix", profile=profile("Ada"))["user"] == "Ada"  # names compare case-insensitively
    assert on_space.submit(mode, "fix", profile=profile("carol", ("ACME",)))["user"] == "carol"
    caplog.clear()
    with pytest.raises(gr.Error) as refused:
        on_space.submit(mode, "fix", profile=profile("bob", ("other",)))
    assert refused.value.message == "bob may not review here: this app takes feedback from ada and members of acme only"
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1 and "\n" not in refusals[0].getMessage() and refusals[0].exc_info is None
    assert len(on_space.writer.read()) == 2  # bob's submission stored nothing

    anonymous = FeedbackApp(AppConfig(**config, feedback_dir=str(tmp_path / "b"), on_space=True, allow_anonymous=True))
    assert anonymous.submit(mode, "acceptable")["user"] == "anonymous"
    local = FeedbackApp(AppConfig(**config, feedback_dir=str(tmp_path / "c")))
    assert not any(isinstance(block, gr.LoginButton) for block in local.demo.blocks.values())
    assert local.submit(mode, "fix")["user"] == "local-user"  # the token's user on LocalHub
    assert local.whoami_line(None) == "Submitting as **local-user**"
    named = FeedbackApp(AppConfig(**config, feedback_dir=str(tmp_path / "d"), reviewer="ada"))
    assert named.submit(mode, "fix")["user"] == "ada"

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{free_port()}")  # a Hub that is not there
    with pytest.raises(BadConfig, match=r"cannot tell who is reviewing: the Hub token could not be verified "
                                        r"\(http://127\.0\.0\.1:\d+ could not be reached: \w+\); pass --reviewer NAME"):
        FeedbackApp(AppConfig(**config, feedback_dir=str(tmp_path / "e")))
    offline = FeedbackApp(AppConfig(**config, feedback_dir=str(tmp_path / "f"), reviewer="ada"))
    assert "⚠ the Hub token could not be verified" in offline.whoami_line(None)
    assert "recorded as ada (--reviewer)" in offline.whoami_line(None)
    assert offline.submit(mode, "fix")["user"] == "ada"
    nobody = FeedbackApp(AppConfig(**config, feedback_dir=str(tmp_path / "g"), allow_anonymous=True))
    assert nobody.submit(mode, "fix")["user"] == "anonymous"
    with pytest.raises(BadConfig, match="--allow-anonymous and --reviewers contradict"):
        FeedbackApp(AppConfig(**config, feedback_dir=str(tmp_path / "h"), allow_anonymous=True, reviewers=["ada"]))


def test_run_text_reaches_only_text_components(hostile_run, tmp_path):
    import gradio as gr

    from fade_hub.feedback.app import AppConfig, FeedbackApp

    run_dir, repo = hostile_run
    app = FeedbackApp(AppConfig(failures=repo, feedback_dir=str(tmp_path / "fb"), find_adapters=False))
    ui = app.ui
    region = app.view.region_ids[0]
    card, details, region_id, picture, table, *_ = ui.on_region(region, "all", None, None)
    assert any(XSS in answer for answer in table["answer"]) and "<" not in card and "<" not in details
    assert any(reason == f"not a greeting {XSS}" for reason in table["the judge's reason"])  # shown as text
    assert app.view.caption(app.view.example(app.view.example_ids(region)[0])).endswith(f" · the judge: not a "
                                                                                       f"greeting {XSS}")
    example = app.view.example_ids(region)[0]
    target, line, *_ = ui._aim(example, region)
    assert target == example and "<" not in line
    assert "javascript:" in app.view.example(example)["input"]
    app.submit(example, "fix", "", f"{XSS} **note**")
    status, *_rest = ui.on_submit(region, "fix", "", XSS, "all", region, None)
    texts = [status, *_rest[-1:], *ui.on_load("all", None)[:2]]
    assert all("<" not in str(text) for text in texts)  # the disagreement line, whoami and the status escape run text
    progress, mine, *_ = ui.shared("local-user")
    assert any(XSS in cell for row in mine.value["data"] for cell in row)  # the note, in a table cell
    for block in app.demo.blocks.values():
        if isinstance(block, (gr.HTML, gr.Markdown)):
            assert "<" not in str(block.value)  # the model id only escaped (the headline's plain())
        if isinstance(block, gr.Dataframe):
            assert block.datatype == "str"


def test_config_from_env(tmp_path):
    from fade_hub.errors import BadConfig
    from fade_hub.feedback.app import AppConfig

    config = AppConfig.from_env({"FADE_FAILURES": "u/f", "FADE_FEEDBACK_REPO": "u/fb", "SPACE_ID": "u/s",
                                 "FADE_ALLOW_ANONYMOUS": "1", "FADE_FEEDBACK_EVERY": "2.5", "HF_TOKEN": "t",
                                 "FADE_REVIEWERS": "alice, org:acme", "FADE_ADAPTERS": "u/a,u/b"})
    assert (config.failures, config.feedback_repo) == ("u/f", "u/fb")
    assert config.on_space and config.allow_anonymous and config.space_id == "u/s"
    assert config.push_every == 2.5 and config.token == "t" and config.staging_dir().name == "u--fb"
    assert config.reviewers == ["alice", "org:acme"] and config.adapters == ["u/a", "u/b"]
    assert config.reviewer_list.allows("Alice") and config.reviewer_list.allows("bob", ["acme"])
    assert not config.reviewer_list.allows("bob", ["other"])
    assert AppConfig.from_env({"FADE_FAILURES": str(tmp_path)}).staging_dir() == Path("fade-feedback")
    with pytest.raises(BadConfig, match="FADE_FAILURES is not set"):
        AppConfig.from_env({})
    with pytest.raises(BadConfig, match="FADE_FEEDBACK_EVERY='soon' is not a number"):
        AppConfig.from_env({"FADE_FAILURES": "u/f", "FADE_FEEDBACK_EVERY": "soon"})
    for bad, message in ((dict(push_every=0.0), "--push-every must be in \\(0, 10080\\]"), (dict(port=70000), "--port must be in"),
                         (dict(failures=""), "pass --failures")):
        with pytest.raises(BadConfig, match=message):
            AppConfig(**{"failures": "u/f", **bad}).validate()


# subprocesses: kill -9, deploy ----------------------------------------------------------------------


@pytest.mark.slow
def test_fifty_records_from_eight_clients_survive_a_kill_9(review_run, tmp_path):
    """8 concurrent API clients, 50 records in all; the app is killed (-9) halfway, before any push, and restarted."""
    from concurrent.futures import ThreadPoolExecutor

    from fade_hub import feedback

    run_dir, repo = review_run
    modes = [str(int(m)) for m in pd.read_parquet(run_dir / "data" / "landscape.parquet").query("significant")["action_id"]]
    feedback_repo = unique_repo("feedback")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    staging, log = tmp_path / "staging", tmp_path / "app.log"
    command = [sys.executable, "-m", "fade_hub.cli", "space", "serve", "--failures", repo, "--feedback-repo",
               feedback_repo, "--feedback-dir", str(staging), "--port", str(port), "--push-every", "60",
               "--no-find-adapters"]

    def session(first: int, count: int) -> list[dict]:
        """``count`` records from 8 concurrent clients (notes first .. first+count-1)."""
        shares = [list(range(first + i, first + count, 8)) for i in range(8)]

        def client_work(notes: list[int]) -> list[dict]:
            client = app_client(url)
            return [submit(client, modes[n % len(modes)], ("fix", "acceptable", "not_a_failure")[n % 3], "",
                            f"note {n}") for n in notes]

        with ThreadPoolExecutor(8) as pool:
            return [record for records in pool.map(client_work, shares) for record in records]

    first = start_app(command, log, tmp_path)
    try:
        wait_for_app(url, first, log)
        before = session(0, 25)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    assert len(feedback.load(feedback_repo)) == 0  # killed before any scheduled push
    left = [json.loads(line) for line in next(staging.glob("*.jsonl")).read_text().splitlines()]
    assert sorted(r["feedback_id"] for r in left) == sorted(r["feedback_id"] for r in before)

    second = start_app(command, log, tmp_path)
    try:
        wait_for_app(url, second, log)
        after = session(25, 25)
    finally:
        stop_app(second, log)  # the restarted writer pushed the leftovers; a graceful stop pushes the rest
    loaded = feedback.load(feedback_repo)
    acknowledged = {r["feedback_id"]: r for r in before + after}
    assert len(acknowledged) == 50 and len(loaded) == 50 and loaded.skipped_lines == 0
    assert {r.feedback_id: r.to_dict() for r in loaded.records} == acknowledged
    assert sorted(r.note for r in loaded.records) == sorted(f"note {n}" for n in range(50))
    assert len(list(staging.glob("*.jsonl"))) == 2


@pytest.mark.slow
def test_deploy_then_run_the_space_from_its_own_files(image_run, tmp_path, capsys):
    from huggingface_hub import HfApi, snapshot_download

    from fade_hub import feedback
    from fade_hub.cli import main

    _, repo = image_run
    space_id, feedback_repo = unique_repo("space"), unique_repo("feedback")
    deploy = ["space", "deploy", "--failures", repo, "--feedback-repo", feedback_repo, "--space-id", space_id]
    assert main([*deploy, "--reviewers", "alice,org:acme", "--adapters", "u/a", "u/b,u/c"]) == 0
    api = HfApi()
    variables = {key: value.value for key, value in api.get_space_variables(space_id).items()}
    assert variables == {"FADE_FAILURES": repo, "FADE_FEEDBACK_REPO": feedback_repo,
                         "FADE_REVIEWERS": "alice,org:acme", "FADE_ADAPTERS": "u/a,u/b,u/c"}
    capsys.readouterr()
    assert main(deploy) == 0  # deployed again without them: the Space variables go too
    printed = capsys.readouterr().out
    assert f"/spaces/{space_id}" in printed and "HF_TOKEN" in printed and "add_space_secret" in printed
    assert api.space_info(space_id).sdk == "gradio"
    variables = {key: value.value for key, value in api.get_space_variables(space_id).items()}
    assert variables == {"FADE_FAILURES": repo, "FADE_FEEDBACK_REPO": feedback_repo}
    assert "README.md" in api.list_repo_files(feedback_repo, repo_type="dataset")

    folder = tmp_path / "space"
    folder.mkdir()
    snapshot_download(space_id, repo_type="space", local_dir=folder)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                   if p.is_file() and ".cache" not in p.parts)
    assert {"app.py", "README.md", "requirements.txt", "fade_hub/__init__.py", "fade_hub/feedback/app.py"} <= set(files)
    assert not any(os.environ["HF_TOKEN"] in (folder / f).read_text(errors="ignore") for f in files)
    assert "hf_oauth: true" in (folder / "README.md").read_text()

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(variables, FADE_FEEDBACK_DIR=str(tmp_path / "staging"), GRADIO_SERVER_PORT=str(port),
               GRADIO_SERVER_NAME="127.0.0.1", PYTHONNOUSERSITE="1")
    log = tmp_path / "space.log"
    process = start_app([sys.executable, "-c", BOOTSTRAP, str(CHECKOUT)], log, folder, env)
    try:
        wait_for_app(f"http://127.0.0.1:{port}/", process, log)
        record = submit(app_client(f"http://127.0.0.1:{port}/"), top_cell(image_run[0])[0], "fix", "", "from the Space")
    finally:
        stop_app(process, log)
    assert f"loaded from {folder.resolve() / 'fade_hub'}" in log.read_text()
    assert [r.to_dict() for r in feedback.load(feedback_repo).records] == [record]


@pytest.mark.slow
def test_a_run_without_failures_still_opens(session_dir, tmp_path):
    from fade_hub.perturb import load_space
    from fade_hub.feedback.app import AppConfig, FeedbackApp
    from fade_hub.store import RunStore
    from fade_hub.summarize import summarize

    space = load_space("text-default")
    store = RunStore(tmp_path / "run")
    store.create({"run_id": "clean01", "model_id": "tester/perfect", "task": "text-classification",
                  "space": space.to_dict(), "space_name": space.name, "algorithm": "random", "budget": 3, "seed": 0})
    store.append([
        {"run_id": "clean01", "query_id": i, "phase": "explore", "episode": i, "step": 0, "seed_id": f"s/{i}",
         "context": "POSITIVE", **space.level_strings(space.action_from_id(i)), "action_id": i, "input": "fine",
         "clean_input": "", "output": "POSITIVE", "expected": "POSITIVE", "is_failure": False, "severity": 0.0,
         "reward": 0.0, "trajectory": "", "media": ""}
        for i in range(3)
    ])
    store.update_meta(status="finished")
    summarize(store)
    app = FeedbackApp(AppConfig(failures=str(store.root), feedback_dir=str(tmp_path / "fb"), find_adapters=False))
    card, details, region_id, picture, table, *_, submit = app.ui.on_region(None, "unreviewed", None, None)
    assert app.view.region_choices() == [] and table is None and card.startswith("**This run found no failure region")
    assert not submit.interactive  # nothing to submit on
    assert app.ui.on_load("unreviewed", None)[3] == "0 of 0 regions reviewed by you"
    import gradio as gr

    with pytest.raises(gr.Error, match="cell 0 is in no region of run clean01"):
        app.submit("0", "fix")
    with pytest.raises(gr.Error, match="'typos=0.2' is not a region of run clean01"):
        app.submit("typos=0.2", "fix")
