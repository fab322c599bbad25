"""The Space ships with the package, and a deployed Space without its token explains itself instead of crashing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import textwrap
import urllib.request
import zipfile
from pathlib import Path

import pytest
from conftest import free_port, unique_repo
from space_runs import BOOTSTRAP, CHECKOUT, start_app, stop_app, wait_for_app

TEMPLATE = CHECKOUT / "spaces" / "feedback"
FILES = ("app.py", "README.md", "requirements.txt")

# Import fade_hub from an installed copy only (not the checkout, not the editable install), then run the CLI.
FROM_INSTALL = textwrap.dedent(
    """
    import importlib.util, sys
    checkout, target = sys.argv[1], sys.argv[2]
    in_checkout = lambda p: p.startswith(checkout) and "site-packages" not in p
    sys.path[:] = [p for p in sys.path if p and not in_checkout(p) and "__editable__" not in p]
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path_hooks[:] = [h for h in sys.path_hooks if "editable" not in repr(h).lower()]
    sys.path_importer_cache.clear()
    sys.path.insert(0, target)
    import fade_hub
    assert fade_hub.__file__.startswith(target), fade_hub.__file__
    from fade_hub.cli import main
    sys.exit(main(sys.argv[3:]))
    """
)


def _hook(hook: str, cwd: Path, out: Path) -> Path:
    """Run a PEP 517 hook of setuptools in ``cwd``; the built file."""
    code = f"from setuptools import build_meta; print(build_meta.{hook}({str(out)!r}))"
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out / done.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_space_deploy_works_from_a_pip_installed_wheel(image_run, tmp_path):
    """sdist from the checkout -> wheel from the sdist -> pip install -> `fade-hub space deploy` from that install."""
    from huggingface_hub import HfApi

    sdist = _hook("build_sdist", CHECKOUT, tmp_path)
    with tarfile.open(sdist) as archive:
        members = {member.name.split("/", 1)[1]: member for member in archive.getmembers() if "/" in member.name}
        for name in FILES:
            member = members[f"fade_hub/feedback/space_template/{name}"]
            assert member.isfile()  # a real copy, not the checkout's link
            assert archive.extractfile(member).read() == (TEMPLATE / name).read_bytes()
        archive.extractall(tmp_path / "src", filter="data")
    wheel = _hook("build_wheel", next((tmp_path / "src").iterdir()), tmp_path / "wheel")
    with zipfile.ZipFile(wheel) as archive:
        for name in FILES:
            assert archive.read(f"fade_hub/feedback/space_template/{name}") == (TEMPLATE / name).read_bytes()
    target = tmp_path / "installed"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                           str(target), str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    _, repo = image_run
    space_id, feedback_repo = unique_repo("space"), unique_repo("feedback")
    deploy = [sys.executable, "-c", FROM_INSTALL, str(CHECKOUT), str(target), "space", "deploy", "--failures", repo,
              "--feedback-repo", feedback_repo, "--space-id", space_id]
    done = subprocess.run(deploy, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    files = set(HfApi().list_repo_files(space_id, repo_type="space"))
    assert set(FILES) | {"fade_hub/feedback/app.py", "fade_hub/feedback/ui.py"} <= files


@pytest.mark.slow
def test_a_space_without_its_token_shows_how_to_add_it(image_run, tmp_path):
    from fade_hub.feedback.deploy import stage_space

    _, repo = image_run
    folder = tmp_path / "space"
    folder.mkdir()
    stage_space(folder)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HF_TOKEN")}
    env.update(SPACE_ID="tester/feedback-space", FADE_FAILURES=repo, FADE_FEEDBACK_REPO=unique_repo("feedback"),
               FADE_FEEDBACK_DIR=str(tmp_path / "staging"), GRADIO_SERVER_PORT=str(port),
               GRADIO_SERVER_NAME="127.0.0.1", PYTHONNOUSERSITE="1")
    log = tmp_path / "space.log"
    process = start_app([sys.executable, "-c", BOOTSTRAP, str(CHECKOUT)], log, folder, env)
    try:
        wait_for_app(f"http://127.0.0.1:{port}/", process, log)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=10) as response:
            config = json.loads(response.read())
        texts = {c["props"].get("elem_id"): str(c["props"].get("value")) for c in config["components"]}
        assert process.poll() is None  # still serving
    finally:
        stop_app(process, log)
    assert texts["setup-problem"] == "**What is missing:** the Space secret HF\\_TOKEN is not set"
    how = texts["setup-how"]
    assert "/spaces/tester/feedback-space/settings" in how and "New secret" in how and "`HF_TOKEN`" in how
    assert "Traceback" not in log.read_text()
    assert "the feedback app cannot start: the Space secret HF_TOKEN is not set" in log.read_text()
