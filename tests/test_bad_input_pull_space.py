"""The bad-input guard of ``pull``, ``space serve`` / ``space exclude``, ``localhub serve`` and the feedback that
``mitigate`` reads (issue 25): the same contract as ``test_bad_input.py`` (``tests/bad_input.py``).

Each row runs ``fade-hub ARGV`` (in this process, or a fresh one where marked or where it sets the environment) and
asserts: exit status 2, at most three lines on stderr (the last one the error, holding the row's needle), no
traceback, and a test bed whose every file and folder is byte-for-byte as it was. Besides the ``test_bad_input`` placeholders (``{root}``, ``{image}``,
``{run}``, ``{out}``, ``{file}``, ``{seeds}``), the bed has ``{adapter}`` (an adapter folder), ``{feedback}``
(alice's verdicts on the run), ``{dataset}`` (a dataset repo on the session LocalHub) and ``{hub_port}`` (the
session LocalHub's port, in use).

Stdout closed early (``report ... | head -1``) is not an error: the command stops quietly, as Unix tools do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HUB_PORT, free_port, unique_repo
from bad_input import Case, fails_cleanly

pytestmark = pytest.mark.slow  # about 40 rows

DOWN = {"HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"}  # a Hub that is not there
SERVE = ("space", "serve", "--failures", "{run}", "--no-find-adapters", "--reviewer", "ops")
EXCLUDE = ("space", "exclude")


def _serve(*flags: str) -> tuple[str, ...]:
    return (*SERVE, "--feedback-dir", "{out}", *flags)


def _mitigate(feedback: str) -> tuple[str, ...]:
    return ("mitigate", "{run}", "--feedback", feedback, "--output", "{out}", "--steps", "1", "--no-progress")


CASES: dict[str, Case] = {
    # pull (items 5, 12, 16; smaller items)
    "pull-output-under-a-file": Case(("pull", "{adapter}", "--output", "{file}/sub"), "is a file, not a folder"),
    "pull-output-is-a-file": Case(("pull", "{adapter}", "--output", "{file}"), "is a file, not a folder"),
    "pull-output-not-empty": Case(("pull", "{adapter}", "--output", "{seeds}"), "not an empty folder"),
    "pull-base-without-merge": Case(("pull", "{adapter}", "--output", "{out}", "--base", "{image}"),
                                    "--base only matters with --merge"),
    "pull-dataset-repo": Case(("pull", "{dataset}", "--output", "{out}"), "is a dataset repo"),
    "pull-broken-link": Case(("pull", "{root}/adapter-broken-link", "--output", "{out}"), "is a broken link"),
    "pull-a-run-folder": Case(("pull", "{run}", "--output", "{out}"), "pass a saved model or adapter folder"),
    "pull-hub-down": Case(("pull", "local-user/some-adapter", "--output", "{out}"), "could not be reached", env=DOWN),
    # who may review (item 8, smaller items)
    "reviewers-empty": Case(_serve("--reviewers", ""), "names nothing; write USER,org:ORG"),
    "reviewers-only-commas": Case(_serve("--reviewers", ",,,"), "names nothing; write USER,org:ORG"),
    "reviewers-two-words": Case(_serve("--reviewers", "one two"), "list reviewers as USER,org:ORG"),
    "reviewers-at-name": Case(_serve("--reviewers", "@name"), "'@name' is not a Hub name"),
    "reviewers-slash": Case(_serve("--reviewers", "alice,a/b"), "'a/b' is not a Hub name"),
    "reviewers-markup": Case(_serve("--reviewers", "<script>"), "'<script>' is not a Hub name"),
    "reviewers-empty-org": Case(_serve("--reviewers", "org:"), "reviewer organisation '' is not a Hub name"),
    "reviewer-markup": Case((*SERVE, "--feedback-dir", "{out}", "--reviewer", "<b>x</b>"), "--reviewer '<b>x</b>'"),
    # space serve (items 14, 16)
    "serve-feedback-dir-is-a-file": Case((*SERVE, "--feedback-dir", "{file}"), "is a file, not a folder"),
    "serve-feedback-repo-hub-down": Case((*SERVE, "--feedback-repo", "local-user/feedback"), "could not reach the Hub",
                                         env=DOWN),
    # space exclude (items 11, 16)
    "exclude-feedback-dir-is-a-file": Case((*EXCLUDE, "alice", "--feedback-dir", "{file}", "--reviewer", "ops"),
                                           "is a file, not a folder"),
    "exclude-feedback-dir-under-a-file": Case((*EXCLUDE, "alice", "--feedback-dir", "{file}/fb", "--reviewer", "ops"),
                                              "is a file, not a folder"),
    "exclude-user-without-records": Case((*EXCLUDE, "bob", "--feedback-dir", "{feedback}", "--reviewer", "ops"),
                                         "holds no feedback by 'bob' (reviewers there: alice)"),
    "exclude-impossible-user": Case((*EXCLUDE, "a/b", "--feedback-dir", "{feedback}", "--reviewer", "ops"),
                                    "USER 'a/b' is not a Hub name"),
    "exclude-mistyped-repo": Case((*EXCLUDE, "alice", "--feedback-repo", "local-user/no-such-feedback", "--reviewer",
                                   "ops"), "neither a local folder nor a feedback dataset repo"),
    "exclude-hub-down": Case((*EXCLUDE, "alice", "--feedback-repo", "local-user/feedback", "--reviewer", "ops"),
                             "could not reach the Hub", env=DOWN),
    # feedback that mitigate reads (items 7, 14)
    "mitigate-feedback-all-unusable": Case(_mitigate("{root}/feedback-unusable"), "holds no verdicts"),
    "mitigate-feedback-unknown-example-only": Case(_mitigate("{root}/feedback-q99999"), "nothing to train on"),
    "mitigate-feedback-is-a-file": Case(_mitigate("{file}"), "is a file; pass the folder"),
    # empty lists and LocalHub (smaller items)
    "explore-labels-empty": Case(("explore", "{image}", "--seeds", "{seeds}", "--labels", "", "--output", "{out}"),
                                 "--labels: '' names nothing"),
    "hub-port-in-use": Case(("localhub", "serve", "--root", "{out}", "--port", "{hub_port}"), "already in use"),
}


def _record(run_id: str, target: str | None, verdict: str = "fix", **fields: str) -> dict[str, str | None]:
    return {"feedback_id": os.urandom(16).hex(), "run_id": run_id, "target": target,
            "target_type": "example" if str(target).startswith("q") else "mode", "verdict": verdict, "correction": "",
            "note": "", "user": "alice", "timestamp": "2026-01-01T00:00:00.000000Z", **fields}


def _write_lines(folder: Path, lines: list[str]) -> None:
    folder.mkdir(parents=True)
    (folder / "feedback-0.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")


@pytest.fixture(scope="module")
def bed(tmp_path_factory, tiny_models, small_space, hub) -> dict[str, str]:
    """A finished run, an adapter folder (and a copy with a broken link), feedback files, a dataset repo."""
    from huggingface_hub import HfApi

    from fade_hub.demo.shapes import write_seed_folder
    from fade_hub.explore import ExploreConfig
    from fade_hub.explore.runner import explore

    root = tmp_path_factory.mktemp("bad-input-pull-space")
    image = tiny_models("image-classification")
    seeds = write_seed_folder(root / "seeds", per_class=2, seed=1)
    run = explore(ExploreConfig(model=str(image), seeds=str(seeds), space=str(small_space), algorithm="random",
                                budget=6, confirm_top=0, output=str(root / "run"), show_progress=False))
    (root / "file.txt").write_text("a plain file\n")
    adapter = root / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(image),
                                                             "peft_type": "LORA"}))
    (adapter / "adapter_model.safetensors").write_bytes(os.urandom(1024))
    broken = shutil.copytree(adapter, root / "adapter-broken-link")
    (broken / "notes.txt").symlink_to(root / "gone.txt")
    _write_lines(root / "feedback", [json.dumps(_record(run.run_id, "0"))])
    unusable = [json.dumps(_record(run.run_id, "0", verdict="banana")), json.dumps(_record(run.run_id, "abc")),
                json.dumps(_record(run.run_id, "0", timestamp="yesterday")), json.dumps(_record(run.run_id, None))]
    _write_lines(root / "feedback-unusable", unusable)
    _write_lines(root / "feedback-q99999", [json.dumps(_record(run.run_id, "q99999", correction="circle"))])
    dataset = unique_repo("a-run", "local-user")
    HfApi().create_repo(dataset, repo_type="dataset")
    return {"root": str(root), "image": str(image), "seeds": str(seeds), "run": str(run.path),
            "out": str(root / "out"), "file": str(root / "file.txt"), "adapter": str(adapter),
            "feedback": str(root / "feedback"), "dataset": dataset, "hub_port": str(HUB_PORT)}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_clear_line_and_changes_nothing(name, bed):
    fails_cleanly(CASES[name], bed)


@pytest.mark.parametrize("argv", [("report", "{run}"), ("report", "{run}", "--json"), ("explore", "--list-builtins")],
                         ids=["report", "report-json", "list-builtins"])
def test_a_reader_that_went_away_ends_the_command_quietly(argv, bed):
    """``fade-hub report RUN | head -1``: the reader is gone before the first write, so every write fails."""
    process = subprocess.Popen([sys.executable, "-m", "fade_hub.cli", *(part.format(**bed) for part in argv)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=bed["root"])
    process.stdout.close()  # as `head` does once it has what it wants
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141, stderr  # 128 + SIGPIPE, what a Unix tool killed by the pipe reports
    assert stderr == ""
