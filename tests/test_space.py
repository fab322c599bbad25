"""The feedback app against LocalHub: gradio_client submissions, concurrency, crash safety, deploy to a Space.

The failures come from a real exploration of the tiny image classifier pushed to the session LocalHub,
and from a hand-made text-generation run whose model output is an HTML injection.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from conftest import free_port, unique_repo

XSS = "<img src=x onerror=alert(1)>"
CHECKOUT = Path(__file__).resolve().parents[1]


# runs ---------------------------------------------------------------------------------------------


def build_image_run(session_dir: Path, shapes_model: Path, block_space: Path) -> tuple[Path, str]:
    """A real random exploration of the tiny image classifier, pushed once per session; (run dir, repo id)."""
    run_dir = session_dir / "space-runs" / "image"
    marker = run_dir.parent / "image-repo.txt"
    if marker.exists():
        return run_dir, marker.read_text()
    from fade_hub.explore.config import ExploreConfig
    from fade_hub.explore.runner import explore
    from fade_hub.hub import push_run
    from fade_hub.demo.shapes import write_seed_folder

    seeds = write_seed_folder(session_dir / "space-runs" / "seeds", per_class=6, seed=0)
    explore(ExploreConfig(model=str(shapes_model), seeds=str(seeds), space=str(block_space), algorithm="grid",
                          output=str(run_dir), show_progress=False))
    repo = unique_repo("failures-image")
    push_run(run_dir, repo)
    marker.write_text(repo)
    return run_dir, repo


def build_hostile_text_run(session_dir: Path) -> tuple[Path, str]:
    """A text-generation run whose outputs and inputs carry HTML / Markdown, pushed once; (run dir, repo id)."""
    run_dir = session_dir / "space-runs" / "hostile"
    marker = run_dir.parent / "hostile-repo.txt"
    if marker.exists():
        return run_dir, marker.read_text()
    from fade_hub.hub import push_run
    from fade_hub.perturb import load_space
    from fade_hub.store import RunStore
    from fade_hub.summarize import summarize

    space = load_space("text-default")
    store = RunStore(run_dir)
    store.create({"run_id": "hostile01", "model_id": "tester/echo-model", "task": "text-generation",
                  "space": space.to_dict(), "space_name": space.name, "algorithm": "random", "mode": "single",
                  "budget": 12, "seed": 0})
    records = []
    for query_id in range(12):
        cell = (5, 9, 21)[query_id % 3]
        failing = query_id % 3 != 2 or query_id == 2
        output = XSS if cell == 5 else f"**bold** reply {query_id} <script>alert(2)</script>"
        records.append({
            "run_id": "hostile01", "query_id": query_id, "phase": "explore", "episode": query_id, "step": 0,
            "seed_id": f"prompts/{query_id:02d}", "context": "", **space.level_strings(space.action_from_id(cell)),
            "action_id": cell, "input": f"Say [hi](javascript:alert(3)) #{query_id}",
            "clean_input": f"Say hi #{query_id}", "output": output if failing else "hi",
            "expected": "a friendly greeting", "is_failure": failing, "severity": 2.0 if cell == 5 else 1.0,
            "reward": float(failing), "trajectory": "", "media": "",
        })
    clean = {name: "" for name in space.level_strings(space.action_from_id(0))}
    records += [{
        "run_id": "hostile01", "query_id": 12 + i, "phase": "clean", "episode": -1, "step": 0,
        "seed_id": f"prompts/{i:02d}", "context": "", **clean, "action_id": -1, "input": f"Say hi #{i}",
        "clean_input": "", "output": "hi", "expected": "a friendly greeting", "is_failure": False, "severity": 0.0,
        "reward": 0.0, "trajectory": "", "media": "",
    } for i in range(8)]  # the model greets on clean prompts, so the failing cells are failure modes
    store.append(records)
    store.update_meta(status="finished")
    summarize(store)
    repo = unique_repo("failures-hostile")
    push_run(run_dir, repo)
    marker.write_text(repo)
    return run_dir, repo


@pytest.fixture(scope="module")
def image_run(hub, session_dir, shapes_model, block_space):
    """(run dir, repo id) of the pushed image run."""
    return build_image_run(session_dir, shapes_model, block_space)


@pytest.fixture(scope="module")
def hostile_run(hub, session_dir):
    """(run dir, repo id) of the pushed hostile text run."""
    return build_hostile_text_run(session_dir)


@contextlib.contextmanager
def served(config):
    """A FeedbackApp launched in this process on a free port; yields (app, url)."""
    from fade_hub.feedback.app import FeedbackApp

    app = FeedbackApp(config)
    try:
        _, url, _ = app.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True)
        yield app, url
    finally:
        app.close()


def _client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False)


def _submit(client, target, verdict, correction="", note=""):
    return client.predict(target, verdict, correction, note, api_name="/submit_feedback")


def _top(run_dir: Path) -> tuple[str, str, list[str]]:
    """(top failure mode's action id, one of its failing examples, the labels seen) read from the run's files."""
    landscape = pd.read_parquet(run_dir / "data" / "landscape.parquet")
    failures = pd.read_parquet(run_dir / "data" / "failures.parquet")
    top = int(landscape.sort_values("rank").iloc[0]["action_id"])
    example = int(failures[failures["action_id"] == top]["query_id"].iloc[0])
    labels = sorted(set(failures["expected"]) | set(failures["output"]))
    return str(top), f"q{example}", labels


def _run_id(run_dir: Path) -> str:
    return json.loads((run_dir / "run.json").read_text())["run_id"]


# gradio_client against the in-process app -----------------------------------------------------------


def test_submissions_land_in_the_feedback_repo_with_the_schema(image_run, tmp_path):
    from gradio_client.exceptions import AppError
    from huggingface_hub import HfApi, hf_hub_download

    from fade_hub import feedback
    from fade_hub.feedback.app import AppConfig

    run_dir, repo = image_run
    mode, example, labels = _top(run_dir)
    feedback_repo = unique_repo("feedback")
    config = AppConfig(failures=repo, feedback_repo=feedback_repo, feedback_dir=str(tmp_path / "fb"), push_every=60)
    with served(config) as (app, url):
        client = _client(url)
        first = _submit(client, mode, "fix", "", "dark + rotated must work")
        second = _submit(client, example, "fix", labels[0], "")
        refused = [
            (mode, "fixed", "", "unknown verdict 'fixed'"),
            ("99999", "fix", "", "is not a failure mode of run"),
            ("q99999", "fix", "", "is not a failing example of run"),
            ("banana", "fix", "", "neither a failure mode's action id"),
            (example, "fix", "not-a-label", "is not one of the model's labels"),
            (mode, "fix", labels[0], "a correction applies to one example"),
        ]
        for target, verdict, correction, message in refused:
            with pytest.raises(AppError, match=message):
                _submit(client, target, verdict, correction)
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
        assert record["run_id"] == _run_id(run_dir) and record["user"] == "local-user"
        assert all(isinstance(value, str) for value in record.values())
    assert (first["target"], first["target_type"], first["verdict"]) == (mode, "mode", "fix")
    assert first["note"] == "dark + rotated must work"
    assert (second["target"], second["target_type"], second["correction"]) == (example, "example", labels[0])


def test_sixteen_concurrent_clients_give_exactly_160_records(image_run, tmp_path):
    from fade_hub import feedback
    from fade_hub.feedback.app import AppConfig

    run_dir, repo = image_run
    mode, example, _ = _top(run_dir)
    feedback_repo = unique_repo("feedback")
    config = AppConfig(failures=repo, feedback_repo=feedback_repo, feedback_dir=str(tmp_path / "fb"), push_every=60)
    errors: list[BaseException] = []
    with served(config) as (app, url):

        def one_client(i: int) -> None:
            try:
                client = _client(url)
                for j in range(10):
                    verdict = ("fix", "acceptable", "not_a_failure")[j % 3]
                    _submit(client, mode if j % 2 else example, verdict, "", f"{i}/{j}")
            except BaseException as err:  # noqa: BLE001 - reported below
                errors.append(err)

        threads = [threading.Thread(target=one_client, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        app.writer.flush()
    assert not errors, errors[:3]
    loaded = feedback.load(feedback_repo)
    assert len(loaded) == 160 and loaded.skipped_lines == 0
    assert len({r.feedback_id for r in loaded.records}) == 160
    assert sorted(r.note for r in loaded.records) == sorted(f"{i}/{j}" for i in range(16) for j in range(10))


def test_load_resolves_repeated_verdicts(image_run, tmp_path):
    from fade_hub import feedback
    from fade_hub.feedback.app import AppConfig

    run_dir, repo = image_run
    mode, example, labels = _top(run_dir)
    feedback_repo = unique_repo("feedback")
    config = AppConfig(failures=repo, feedback_repo=feedback_repo, feedback_dir=str(tmp_path / "fb"), push_every=60)
    with served(config) as (app, url):
        client = _client(url)
        for verdict in ("fix", "acceptable", "not_a_failure"):
            _submit(client, mode, verdict)
        _submit(client, example, "fix", labels[0])
        _submit(client, example, "fix", labels[-1])
        app.writer.flush()
    loaded = feedback.load(feedback_repo)
    assert len(loaded) == 5
    latest = {r.target: r for r in loaded.resolved()}
    assert set(latest) == {mode, example}
    assert latest[mode].verdict == "not_a_failure"
    assert (latest[example].verdict, latest[example].correction) == ("fix", labels[-1])
    frame = loaded.to_frame()
    assert len(frame) == 2 and set(frame["user"]) == {"local-user"}


def test_who_may_submit(image_run, tmp_path):
    import gradio as gr

    from fade_hub.feedback.app import AppConfig, FeedbackApp

    run_dir, _ = image_run
    mode, _, _ = _top(run_dir)
    on_space = FeedbackApp(AppConfig(failures=str(run_dir), feedback_dir=str(tmp_path / "a"), on_space=True))
    assert any(isinstance(block, gr.LoginButton) for block in on_space.demo.blocks.values())
    with pytest.raises(gr.Error, match="sign in with your Hugging Face account"):
        on_space.submit(mode, "fix")
    assert not on_space.writer.path.exists()
    profile = gr.OAuthProfile({"name": "Ada", "preferred_username": "ada", "profile": "", "picture": ""})
    assert on_space.submit(mode, "fix", profile=profile)["user"] == "ada"
    anonymous = FeedbackApp(AppConfig(failures=str(run_dir), feedback_dir=str(tmp_path / "b"), on_space=True,
                                      allow_anonymous=True))
    assert anonymous.submit(mode, "acceptable")["user"] == "anonymous"
    local = FeedbackApp(AppConfig(failures=str(run_dir), feedback_dir=str(tmp_path / "c")))
    assert not any(isinstance(block, gr.LoginButton) for block in local.demo.blocks.values())
    assert local.submit(mode, "fix")["user"] == "local-user"  # the token's user on LocalHub


def test_run_text_reaches_only_text_components(hostile_run, tmp_path):
    import gradio as gr

    from fade_hub.feedback.app import AppConfig, FeedbackApp

    run_dir, repo = hostile_run
    app = FeedbackApp(AppConfig(failures=repo, feedback_dir=str(tmp_path / "fb")))
    mode = app.view.mode_choices()[0][1]
    table, target = app._on_mode(mode)
    assert XSS in set(table["output"])
    example = table["id"].iloc[0]
    clean, perturbed, output, expected, _ = app._on_target(example)
    assert output == XSS and "javascript:" in perturbed
    for block in app.demo.blocks.values():
        if isinstance(block, (gr.HTML, gr.Markdown)):
            assert "<" not in str(block.value) and "tester/echo-model" not in str(block.value)
        if isinstance(block, gr.Dataframe):
            assert block.datatype == "str"


def test_config_from_env(tmp_path):
    from fade_hub.errors import BadConfig
    from fade_hub.feedback.app import AppConfig

    config = AppConfig.from_env({"FADE_FAILURES": "u/f", "FADE_FEEDBACK_REPO": "u/fb", "SPACE_ID": "u/s",
                                 "FADE_ALLOW_ANONYMOUS": "1", "FADE_FEEDBACK_EVERY": "2.5", "HF_TOKEN": "t"})
    assert (config.failures, config.feedback_repo) == ("u/f", "u/fb")
    assert config.on_space and config.allow_anonymous
    assert config.push_every == 2.5 and config.token == "t" and config.staging_dir().name == "u--fb"
    assert AppConfig.from_env({"FADE_FAILURES": str(tmp_path)}).staging_dir() == Path("fade-feedback")
    with pytest.raises(BadConfig, match="FADE_FAILURES is not set"):
        AppConfig.from_env({})


# subprocesses: kill -9, deploy ----------------------------------------------------------------------


def _wait_for(url: str, process: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the app exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"the app did not serve {url} within {timeout} s:\n{log.read_text()[-3000:]}")


def _start(args: list[str], log: Path, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    handle = log.open("ab")
    return subprocess.Popen(args, cwd=cwd, env=env or dict(os.environ), stdout=handle, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen, log: Path) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        assert process.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.slow
def test_kill_9_between_submit_and_push_loses_nothing(image_run, tmp_path):
    from fade_hub import feedback

    run_dir, repo = image_run
    mode, example, _ = _top(run_dir)
    feedback_repo = unique_repo("feedback")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    staging, log = tmp_path / "staging", tmp_path / "app.log"
    command = [sys.executable, "-m", "fade_hub.cli", "space", "serve", "--failures", repo, "--feedback-repo",
               feedback_repo, "--feedback-dir", str(staging), "--port", str(port), "--push-every", "60"]
    first = _start(command, log, tmp_path)
    try:
        _wait_for(url, first, log)
        before_crash = _submit(_client(url), mode, "fix", "", "before the crash")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    assert len(feedback.load(feedback_repo)) == 0  # killed before any scheduled push
    assert [json.loads(line) for line in next(staging.glob("*.jsonl")).read_text().splitlines()] == [before_crash]

    second = _start(command, log, tmp_path)
    try:
        _wait_for(url, second, log)
        deadline = time.monotonic() + 30  # the restarted scheduler pushes the leftovers right away
        while len(feedback.load(feedback_repo)) == 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert [r.to_dict() for r in feedback.load(feedback_repo).records] == [before_crash]
        after_restart = _submit(_client(url), example, "acceptable", "", "after the restart")
    finally:
        _stop(second, log)  # a graceful stop pushes the last record
    loaded = feedback.load(feedback_repo)
    expected_ids = sorted([before_crash["feedback_id"], after_restart["feedback_id"]])
    assert sorted(r.feedback_id for r in loaded.records) == expected_ids
    assert [r.to_dict() for r in loaded.records if r.feedback_id == before_crash["feedback_id"]] == [before_crash]
    assert len(list(staging.glob("*.jsonl"))) == 2


BOOTSTRAP = textwrap.dedent(
    """
    import importlib.util, runpy, sys
    checkout = sys.argv[1]
    # drop the checkout (but not a virtualenv that lives inside it, as CI's does) and the editable finder
    in_checkout = lambda p: p.startswith(checkout) and "site-packages" not in p
    sys.path[:] = [p for p in sys.path if p and not in_checkout(p) and "__editable__" not in p]
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path_hooks[:] = [h for h in sys.path_hooks if "editable" not in repr(h).lower()]
    sys.path_importer_cache.clear()
    assert importlib.util.find_spec("fade_hub") is None, "the checkout is still importable"
    sys.path.insert(0, ".")
    runpy.run_path("app.py", run_name="__main__")
    """
)


@pytest.mark.slow
def test_deploy_then_run_the_space_from_its_own_files(image_run, tmp_path, capsys):
    from huggingface_hub import HfApi, snapshot_download

    from fade_hub import feedback
    from fade_hub.cli import main

    _, repo = image_run
    space_id, feedback_repo = unique_repo("space"), unique_repo("feedback")
    assert main(["space", "deploy", "--failures", repo, "--feedback-repo", feedback_repo, "--space-id", space_id]) == 0
    printed = capsys.readouterr().out
    assert f"/spaces/{space_id}" in printed and "HF_TOKEN" in printed and "add_space_secret" in printed
    api = HfApi()
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
    process = _start([sys.executable, "-c", BOOTSTRAP, str(CHECKOUT)], log, folder, env)
    try:
        _wait_for(f"http://127.0.0.1:{port}/", process, log)
        record = _submit(_client(f"http://127.0.0.1:{port}/"), _top(image_run[0])[0], "fix", "", "from the Space")
    finally:
        _stop(process, log)
    assert f"loaded from {folder.resolve() / 'fade_hub'}" in log.read_text()
    assert [r.to_dict() for r in feedback.load(feedback_repo).records] == [record]


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
    app = FeedbackApp(AppConfig(failures=str(store.root), feedback_dir=str(tmp_path / "fb")))
    assert app.view.mode_choices() == [] and len(app._on_mode(None)[0]) == 0
    import gradio as gr

    with pytest.raises(gr.Error, match="is not a failure mode of run clean01"):
        app.submit("0", "fix")
