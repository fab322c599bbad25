"""The feedback app against LocalHub: gradio_client submissions, concurrency, crash safety, deploy to a Space.

The failures come from real explorations of the demo's shapes classifier pushed to the session LocalHub (a 2x2
space with one failure mode, a 4x4 space with several), and from a hand-made text-generation run whose model
output is an HTML injection. Other test files import the helpers defined here.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from conftest import free_port, unique_repo

XSS = "<img src=x onerror=alert(1)>"
CHECKOUT = Path(__file__).resolve().parents[1]


# runs ---------------------------------------------------------------------------------------------


def _grid_run(session_dir: Path, name: str, shapes_model: Path, space: Path) -> tuple[Path, str]:
    """A grid exploration of the shapes classifier over ``space``, pushed once per session; (run dir, repo id)."""
    run_dir = session_dir / "space-runs" / name
    marker = run_dir.parent / f"{name}-repo.txt"
    if marker.exists():
        return run_dir, marker.read_text()
    from fade_hub.demo.shapes import write_seed_folder
    from fade_hub.explore.config import ExploreConfig
    from fade_hub.explore.runner import explore
    from fade_hub.hub import push_run

    seeds = write_seed_folder(session_dir / "space-runs" / "seeds", per_class=6, seed=0)
    explore(ExploreConfig(model=str(shapes_model), seeds=str(seeds), space=str(space), algorithm="grid",
                          output=str(run_dir), show_progress=False))
    repo = unique_repo(f"failures-{name}")
    push_run(run_dir, repo)
    marker.write_text(repo)
    return run_dir, repo


def build_image_run(session_dir: Path, shapes_model: Path, block_space: Path) -> tuple[Path, str]:
    """The 2x2 block space (one failure mode), pushed once per session; (run dir, repo id)."""
    return _grid_run(session_dir, "image", shapes_model, block_space)


# Rotations past the classifier's training and darker lighting: several significant failure modes.
REVIEW_4X4 = {
    "modality": "image",
    "factors": [
        {"name": "rotation", "op": "rotate", "levels": [0, 30, 45, 60]},
        {"name": "brightness", "op": "brightness", "levels": [1.0, 0.5, 0.3, 0.15]},
    ],
}


def build_review_run(session_dir: Path, shapes_model: Path) -> tuple[Path, str]:
    """``REVIEW_4X4`` (several failure modes), pushed once per session; (run dir, repo id)."""
    from fade_hub.perturb import ConceptSpace

    space = session_dir / "space-runs" / "review-4x4.yaml"
    if not space.exists():
        space.parent.mkdir(parents=True, exist_ok=True)
        ConceptSpace.from_dict(REVIEW_4X4).to_yaml(space)
    return _grid_run(session_dir, "review", shapes_model, space)


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


# Planted runs: three failure regions each, answers written by hand (a model that fails there), inputs perturbed with
# the space's real ops, the summary and the pushed dataset made by the real code. (region, classes, failure rate)
PLANTED = {
    "image": {
        "space": "demo-shapes", "task": "image-classification", "labels": ["circle", "square", "triangle"],
        "regions": [({"rotation": {"-30", "30"}, "brightness": {"0.2"}}, {"square", "triangle"}, 0.9),
                    ({"brightness": {"0.4"}, "saturation": {"0.0"}}, set(), 0.7),
                    ({"rotation": {"-15"}, "brightness": {"1.0"}}, {"circle"}, 0.85)],
    },
    "text": {
        "space": "text-default", "task": "text-classification", "labels": ["NEGATIVE", "POSITIVE"],
        "regions": [({"case": {"upper"}, "punctuation": {"true"}}, set(), 0.85),
                    ({"typos": {"0.2"}}, {"POSITIVE"}, 0.8),
                    ({"negate": {"true"}, "typos": {"0.1"}}, set(), 0.75)],
    },
}
SENTENCES = {
    "POSITIVE": ["the {n} was wonderful and we loved it", "what a lovely {n}, truly great", "our {n} was excellent",
                 "a brilliant {n} that made us happy", "the {n} worked perfectly all week"],
    "NEGATIVE": ["the {n} was awful and we hated it", "what a dreadful {n}, truly bad", "our {n} was terrible",
                 "a boring {n} that made us angry", "the {n} broke after one day"],
}
NOUNS = ["film", "hotel", "phone", "book", "meal", "show"]


def _planted_fails(spec: dict, levels: dict, label: str, seed_id: str, phase: str) -> bool:
    import random

    for factors, classes, rate in spec["regions"]:
        if all(str(levels[name]) in allowed for name, allowed in factors.items()) and (not classes or label in classes):
            return random.Random(f"{phase}|{seed_id}|{sorted(levels.items())}").random() < rate
    return random.Random(f"{phase}|{seed_id}|{sorted(levels.items())}|bg").random() < 0.02


def build_planted_run(session_dir: Path, kind: str) -> tuple[Path, str]:
    """A run with the three ``PLANTED[kind]`` regions (confirmed on held-out seeds), summarized and pushed once per
    session; (run dir, repo id). Image runs keep their seeds in a local folder, as ``--seeds FOLDER`` does."""
    import random

    run_dir = session_dir / "space-runs" / f"planted-{kind}"
    marker = run_dir.parent / f"planted-{kind}-repo.txt"
    if marker.exists():
        return run_dir, marker.read_text()
    from fade_hub.characterize import characterize
    from fade_hub.hub import push_run
    from fade_hub.perturb import load_space
    from fade_hub.store import RunStore
    from fade_hub.summarize import summarize

    spec = PLANTED[kind]
    space = load_space(spec["space"])
    rng = random.Random(7)
    if kind == "image":
        from fade_hub.demo.shapes import write_seed_folder
        from PIL import Image

        folder = write_seed_folder(run_dir.parent / "planted-seeds", per_class=12, seed=3)
        seeds = [(path.relative_to(folder).as_posix(), path.parent.name, Image.open(path).convert("RGB"))
                 for path in sorted(folder.rglob("*.png"))]
        source = str(folder)
    else:
        seeds = [(f"reviews.jsonl/{i:05d}", label, SENTENCES[label][i % 5].format(n=NOUNS[i % 6]))
                 for i, label in enumerate(["POSITIVE", "NEGATIVE"] * 15)]
        source = "reviews.jsonl"
    held_out = {seed_id for seed_id, _, _ in seeds[2::3]}
    store = RunStore(run_dir)
    store.create({"run_id": f"planted{kind}", "model_id": f"tester/{kind}-model", "task": spec["task"],
                  "space": space.to_dict(), "space_name": space.name, "algorithm": "random", "mode": "single",
                  "budget": 0, "seed": 0, "target": {"labels": spec["labels"], "task": spec["task"]},
                  "judge": {"name": "label", "reference": "the seed's label"},
                  "seeds": {"source": source, "split": "train", "num_seeds": None, "holdout": 0.33,
                            "explore": len(seeds) - len(held_out), "held_out": len(held_out)}})
    query_id = 0

    def record(phase: str, seed: tuple, action: tuple | None) -> dict:
        nonlocal query_id
        seed_id, label, item = seed
        levels = space.level_strings(action) if action is not None else {f.name: "" for f in space.factors}
        fails = action is not None and _planted_fails(spec, levels, label, seed_id, phase)
        perturbed = space.apply(item, action, seed=query_id) if action is not None else item
        wrong = spec["labels"][(spec["labels"].index(label) + 1) % len(spec["labels"])]
        expected = wrong if kind == "text" and levels.get("negate") == "true" else label
        out = {"run_id": f"planted{kind}", "query_id": query_id, "phase": phase, "episode": query_id, "step": 0,
               "seed_id": seed_id, "context": label, **levels,
               "action_id": space.action_id(action) if action is not None else -1,
               "input": perturbed if kind == "text" else "", "clean_input": item if kind == "text" and fails else "",
               "output": (label if expected != label else wrong) if fails else expected, "expected": expected,
               "expected_source": "the seed's label", "judged": True, "is_failure": fails,
               "severity": 12.0 if fails else 0.0, "reward": float(fails), "trajectory": "", "media": ""}
        if fails and kind == "image":
            out["media"] = store.save_image(query_id, perturbed)
        query_id += 1
        return out

    cells = [space.action_from_id(i) for i in range(space.num_cells)]
    explore = [seed for seed in seeds if seed[0] not in held_out]
    records = [record("clean", seed, None) for seed in seeds]
    records += [record("explore", seed, action) for seed in explore for action in rng.sample(cells, min(48, len(cells)))]
    found = characterize(records, space)
    regions = list(found.regions["region_id"][:3])
    for seed in (seed for seed in seeds if seed[0] in held_out):
        for region_id in regions:
            region_cells = found.grid.parse(region_id).cells(space.shape)
            records.append(record("confirm", seed, space.action_from_id(rng.choice(region_cells))))
    store.append(records)
    store.update_meta(status="finished", confirmation={"test": "pooled", "regions": regions,
                                                       "held_out": sorted(held_out), "clean_rate": 0.0})
    summarize(store)
    repo = unique_repo(f"failures-planted-{kind}")
    push_run(run_dir, repo)
    marker.write_text(repo)
    return run_dir, repo


@pytest.fixture(scope="module")
def image_run(hub, session_dir, shapes_model, block_space):
    """(run dir, repo id) of the pushed image run."""
    return build_image_run(session_dir, shapes_model, block_space)


@pytest.fixture(scope="module")
def review_run(hub, session_dir, shapes_model):
    """(run dir, repo id) of the pushed 4x4 run with several failure modes."""
    return build_review_run(session_dir, shapes_model)


@pytest.fixture(scope="module")
def planted_image_run(hub, session_dir):
    """(run dir, repo id) of the pushed image run with three planted regions."""
    return build_planted_run(session_dir, "image")


@pytest.fixture(scope="module")
def planted_text_run(hub, session_dir):
    """(run dir, repo id) of the pushed text-classification run with three planted regions."""
    return build_planted_run(session_dir, "text")


@pytest.fixture(scope="module")
def hostile_run(hub, session_dir):
    """(run dir, repo id) of the pushed hostile text run."""
    return build_hostile_text_run(session_dir)


@contextlib.contextmanager
def served_app(config):
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


def _withdraw(client, target):
    return client.predict(target, api_name="/withdraw_feedback")


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
    with served_app(config) as (app, url):
        client = _client(url)
        first = _submit(client, mode, "fix", "", "dark + rotated must work")
        second = _submit(client, example, "fix", labels[0], "")
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


def test_targets_are_stored_canonically_and_non_ascii_digits_refused(review_run, tmp_path):
    from gradio_client.exceptions import AppError

    from fade_hub import feedback
    from fade_hub.feedback.config import AppConfig

    run_dir, repo = review_run
    mode, example, _ = _top(run_dir)
    config = AppConfig(failures=repo, feedback_dir=str(tmp_path / "fb"), find_adapters=False)
    with served_app(config) as (app, url):
        client = _client(url)
        padded = [_submit(client, f"0{mode}", "fix"), _submit(client, f" {mode} ", "acceptable"),
                  _submit(client, f" q0{example[1:]}", "fix")]
        wide = "".join(chr(ord(c) + 0xFEE0) for c in mode)  # the same digits, full width
        for target in (wide, f"q{wide}", "٢١"):
            with pytest.raises(AppError, match="ASCII digits"):
                _submit(client, target, "fix")
    assert [r["target"] for r in padded] == [mode, mode, example]
    stored = feedback.load(tmp_path / "fb")
    assert len(stored) == 3 and {r.target for r in stored.records} == {mode, example}
    assert [(r.target, r.verdict) for r in stored.resolved() if r.target_type == "mode"] == [(mode, "acceptable")]


def test_load_resolves_repeated_verdicts(image_run, tmp_path):
    from fade_hub import feedback
    from fade_hub.feedback.app import AppConfig

    run_dir, repo = image_run
    mode, example, labels = _top(run_dir)
    feedback_repo = unique_repo("feedback")
    config = AppConfig(failures=repo, feedback_repo=feedback_repo, feedback_dir=str(tmp_path / "fb"), push_every=60)
    with served_app(config) as (app, url):
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


def test_who_may_submit(image_run, tmp_path, monkeypatch, caplog):
    import gradio as gr

    from fade_hub.errors import BadConfig
    from fade_hub.feedback.app import AppConfig, FeedbackApp

    run_dir, _ = image_run
    mode, _, _ = _top(run_dir)
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
    example = app.view.example_ids(region)[0]
    target, line, *_ = ui._aim(example, region)
    assert target == example and "<" not in line
    assert "javascript:" in app.view.example(example)["input"]
    app.submit(example, "fix", "", f"{XSS} **note**")
    status, *_rest = ui.on_submit(region, "fix", "", XSS, "all", region, None)
    texts = [status, *_rest[-1:], *ui.on_load("all", None)[:2]]
    assert all("<" not in str(text) for text in texts)  # the disagreement line, whoami and the status escape run text
    progress, mine, *_ = ui._shared("local-user")
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
            client = _client(url)
            return [_submit(client, modes[n % len(modes)], ("fix", "acceptable", "not_a_failure")[n % 3], "",
                            f"note {n}") for n in notes]

        with ThreadPoolExecutor(8) as pool:
            return [record for records in pool.map(client_work, shares) for record in records]

    first = _start(command, log, tmp_path)
    try:
        _wait_for(url, first, log)
        before = session(0, 25)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    assert len(feedback.load(feedback_repo)) == 0  # killed before any scheduled push
    left = [json.loads(line) for line in next(staging.glob("*.jsonl")).read_text().splitlines()]
    assert sorted(r["feedback_id"] for r in left) == sorted(r["feedback_id"] for r in before)

    second = _start(command, log, tmp_path)
    try:
        _wait_for(url, second, log)
        after = session(25, 25)
    finally:
        _stop(second, log)  # the restarted writer pushed the leftovers; a graceful stop pushes the rest
    loaded = feedback.load(feedback_repo)
    acknowledged = {r["feedback_id"]: r for r in before + after}
    assert len(acknowledged) == 50 and len(loaded) == 50 and loaded.skipped_lines == 0
    assert {r.feedback_id: r.to_dict() for r in loaded.records} == acknowledged
    assert sorted(r.note for r in loaded.records) == sorted(f"note {n}" for n in range(50))
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
