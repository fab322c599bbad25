"""With HF_HOME pointing elsewhere, a feedback session writes nothing under HOME (the demo's share of this promise is
asserted in ``test_demo.py``, whose demos run with an empty HOME of their own)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import LIBRARY_DIRS, free_port
from space_runs import app_client, start_app, stop_app, submit, wait_for_app


@pytest.mark.slow
def test_a_feedback_session_writes_nothing_under_home(tmp_path, image_run):
    from huggingface_hub import HfApi

    from fade_hub.feedback.queue import endpoint_key
    from fade_hub.localhub import LocalHub

    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in LIBRARY_DIRS and not k.startswith("XDG_")}
    env.update(HOME=str(home), HF_HOME=str(tmp_path / "hf"))
    env.pop("FADE_HUB_CACHE", None)  # only HF_HOME set: the queue then lives in HF_HOME/fade-hub
    run_dir, _ = image_run
    landscape = pd.read_parquet(run_dir / "data" / "landscape.parquet")
    top = str(int(landscape.sort_values("rank").iloc[0]["action_id"]))
    with LocalHub(tmp_path / "hub", port=free_port()) as hub:
        env["HF_ENDPOINT"] = hub.endpoint
        port, log = free_port(), tmp_path / "app.log"
        app = start_app([sys.executable, "-m", "fade_hub.cli", "space", "serve", "--failures", str(run_dir),
                         "--feedback-repo", "org/fb", "--port", str(port)], log, tmp_path, env)
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
