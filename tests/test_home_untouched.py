"""With HF_HOME and FADE_HUB_CACHE pointing elsewhere, the demo and a feedback session write nothing under HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import free_port
from space_runs import app_client, start_app, stop_app, submit, wait_for_app

# Set by conftest to keep library caches out of HOME; a real user sets none of them, so neither do we here.
LIBRARY_DIRS = ("MPLCONFIGDIR", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "TORCH_HOME", "HF_DATASETS_CACHE")


@pytest.mark.slow
def test_demo_and_a_feedback_session_write_nothing_under_home(tmp_path):
    from huggingface_hub import HfApi

    from fade_hub.feedback.queue import endpoint_key
    from fade_hub.localhub import LocalHub

    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in LIBRARY_DIRS and not k.startswith("XDG_")}
    env.update(HOME=str(home), HF_HOME=str(tmp_path / "hf"), FADE_HUB_CACHE=str(tmp_path / "cache"))
    demo_env = {k: v for k, v in env.items() if k not in ("HF_ENDPOINT", "HF_TOKEN")}  # the demo embeds its Hub
    run_dir = tmp_path / "demo" / "run"
    demo = subprocess.run(
        [sys.executable, "-m", "fade_hub.cli", "demo", "--budget", "60", "--mitigation-steps", "5", "--output",
         str(tmp_path / "demo"), "--no-progress"],
        env=demo_env, cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert (tmp_path / "cache" / "demo-hub").is_dir() and list((run_dir / "plots").glob("*.png"))

    # a feedback session with only HF_HOME set: the queue then lives in HF_HOME/fade-hub
    landscape = pd.read_parquet(run_dir / "data" / "landscape.parquet")
    top = str(int(landscape.sort_values("rank").iloc[0]["action_id"]))
    with LocalHub(tmp_path / "hub", port=free_port()) as hub:
        app_env = {k: v for k, v in env.items() if k != "FADE_HUB_CACHE"}
        app_env["HF_ENDPOINT"] = hub.endpoint
        port, log = free_port(), tmp_path / "app.log"
        app = start_app([sys.executable, "-m", "fade_hub.cli", "space", "serve", "--failures", str(run_dir),
                      "--feedback-repo", "org/fb", "--port", str(port)], log, tmp_path, app_env)
        try:
            wait_for_app(f"http://127.0.0.1:{port}/", app, log)
            record = submit(app_client(f"http://127.0.0.1:{port}/"), top, "fix", "", "dark shapes must work")
        finally:
            stop_app(app, log)
        pushed = [f for f in HfApi(endpoint=hub.endpoint).list_repo_files("org/fb", repo_type="dataset")
                  if f.startswith("data/")]
    queue = tmp_path / "hf" / "fade-hub" / "feedback" / endpoint_key(hub.endpoint) / "org--fb"
    assert [f"data/{path.name}" for path in queue.glob("*.jsonl")] == pushed
    assert record["feedback_id"] in next(queue.glob("*.jsonl")).read_text()
    assert sorted(str(path.relative_to(home)) for path in Path(home).rglob("*")) == []
