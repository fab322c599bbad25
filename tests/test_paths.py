"""Names at the edges: output folders, repo ids, and local paths as a run records them."""

from __future__ import annotations

from pathlib import Path

import pytest

from fade_hub.errors import BadConfig, BadRepoId
from fade_hub.paths import check_folder_target, check_repo_id, looks_like_path, portable_fields, portable_path


def test_portable_path_is_relative_to_the_run_or_just_a_name(tmp_path):
    (tmp_path / "models" / "m").mkdir(parents=True)
    run = tmp_path / "runs" / "r"
    assert portable_path(str(tmp_path / "models" / "m"), run) == "../../models/m"
    assert portable_path(str(run / "inside"), run) == str(run / "inside")  # not on disk: not a path, kept
    (run / "inside").mkdir(parents=True)
    assert portable_path(str(run / "inside"), run) == "inside"
    assert portable_path("user/model", run) == "user/model" and portable_path("builtin:prompts", run) == "builtin:prompts"
    assert portable_path(None, run) is None
    # sharing only the filesystem root, ``..`` steps would spell out other folders: only the name is kept
    assert portable_path(str(tmp_path / "models" / "m"), Path("/nonexistent-top/run")) == "local:m"


def test_portable_fields_only_touches_the_named_fields(tmp_path):
    (tmp_path / "seeds").mkdir()
    record = {"seeds": {"source": str(tmp_path / "seeds"), "split": "seeds"}, "model_id": "org/m", "n": 1}
    out = portable_fields(record, ("seeds.source", "model_id", "missing.deep"), tmp_path / "run")
    assert out == {"seeds": {"source": "../seeds", "split": "seeds"}, "model_id": "org/m", "n": 1}
    assert record["seeds"]["source"] == str(tmp_path / "seeds")
    kept = portable_fields({"model_id": "../seeds"}, ("model_id",), tmp_path / "run", absolute_only=True)
    assert kept == {"model_id": "../seeds"}  # read back from a run: already relative to it


def test_folder_targets_and_repo_ids(tmp_path):
    (tmp_path / "file").write_text("x")
    for target in (tmp_path / "file", tmp_path / "file" / "sub" / "run"):
        with pytest.raises(BadConfig, match=r"file is a file, not a folder"):
            check_folder_target(target, "--output", "for the run")
    check_folder_target(tmp_path / "new" / "run", "--output", "for the run")
    assert not (tmp_path / "new").exists()  # checking creates nothing
    for bad in ("local-user/..", "bad repo/na me!!", "a/b/c", "-x/y"):
        with pytest.raises(BadRepoId, match="not a valid repo id"):
            check_repo_id(bad, "REPO_ID")
    check_repo_id("user/name", "REPO_ID")
    assert looks_like_path("x/../../y") and looks_like_path("./m") and looks_like_path("a/b/c")
    assert not looks_like_path("user/model") and not looks_like_path("model")
