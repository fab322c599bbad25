"""Publishing a run: push to LocalHub, load it back in a fresh process, report, card, Hub outages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fade_hub.cli import main
from fade_hub.store import DATA_FILES, RunStore


@pytest.fixture(scope="module")
def image_run(shapes_model, block_space, tmp_path_factory) -> Path:
    """A finished grid run of the shapes classifier over a 2x2 space with one failing (dark, rotated) cell."""
    from fade_hub.demo.shapes import write_seed_folder
    from fade_hub.explore import ExploreConfig
    from fade_hub.explore.runner import explore

    seeds = write_seed_folder(tmp_path_factory.mktemp("seeds"), per_class=6, seed=7)
    run = explore(
        ExploreConfig(
            model=str(shapes_model), seeds=str(seeds), space=str(block_space), algorithm="grid", seed=3,
            output=str(tmp_path_factory.mktemp("runs") / "run"), show_progress=False, confirm_top=3, confirm_seeds=2,
        )
    )
    assert len(run.modes) >= 1, "the shapes classifier fails dark rotated shapes"
    return run.path


def _load_configs_in_subprocess(source: str, tmp_path: Path) -> dict:
    """Load every config of ``source`` with datasets in a fresh process with an empty cache."""
    script = """
import json, sys, hashlib, datasets
out = {}
for config in sys.argv[2:]:
    ds = datasets.load_dataset(sys.argv[1], config, split="train")
    rows = []
    for row in ds:
        for key, value in row.items():
            if hasattr(value, "convert"):  # a decoded image (image, clean_image)
                row[key] = hashlib.sha256(value.convert("RGB").tobytes()).hexdigest()
        rows.append(row)
    out[config] = rows
print(json.dumps(out, default=str, sort_keys=True))
"""
    env = dict(os.environ, HF_HOME=str(tmp_path / "fresh_home"))
    done = subprocess.run(
        [sys.executable, "-c", script, source, *DATA_FILES], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_pushed_run_loads_back_equal_config_by_config(image_run, hub, tmp_path):
    from fade_hub.hub import push_run

    push_run(image_run, "local-user/tiny-failures")
    local = _load_configs_in_subprocess(str(image_run), tmp_path / "a")
    pushed = _load_configs_in_subprocess("local-user/tiny-failures", tmp_path / "b")
    assert set(local) == set(DATA_FILES)
    for config in DATA_FILES:
        assert local[config] == pushed[config], config
    assert len(local["failures"]) == sum(r["is_failure"] for r in RunStore(image_run).read_queries())
    assert all(isinstance(row["image"], str) and len(row["image"]) == 64 for row in local["failures"])
    assert len(local["landscape"]) == 4


def test_failures_config_decodes_images(image_run):
    import datasets
    from PIL import Image

    failures = datasets.load_dataset(str(image_run), "failures", split="train")
    assert isinstance(failures.features["image"], datasets.Image)
    first = failures[0]
    assert isinstance(first["image"], Image.Image) and first["image"].size == (32, 32)
    assert first["output"] != first["expected"]


def test_card_parses_and_validates(image_run, hub):
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(image_run / "README.md")
    assert sorted(c["config_name"] for c in card.data.configs) == sorted(DATA_FILES)
    assert "fade-hub" in card.data.tags
    assert card.data.task_categories == ["image-classification"]
    card.validate(repo_type="dataset")
    assert "rotation=" in card.text and "load_dataset" in card.text


def test_push_is_idempotent(image_run, hub):
    from huggingface_hub import HfApi

    from fade_hub.hub import push_run

    push_run(image_run, "local-user/idempotent-failures")
    api = HfApi()
    first = api.repo_info("local-user/idempotent-failures", repo_type="dataset").sha
    push_run(image_run, "local-user/idempotent-failures")
    assert api.repo_info("local-user/idempotent-failures", repo_type="dataset").sha == first


@pytest.mark.slow
def test_pushing_unchanged_content_again_says_so_once(image_run, hub):
    """The second ``fade-hub push`` of an unchanged run is a no-op, and huggingface_hub's warning that says so shows
    once: through its own handler only, not again through the CLI's."""
    command = [sys.executable, "-m", "fade_hub.cli", "push", str(image_run), "local-user/pushed-twice"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0 and first.stderr == "", first.stderr
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout == first.stdout
    assert again.stderr.splitlines() == ["No files have been modified since last commit. Skipping to prevent empty "
                                         "commit."], again.stderr


def test_report_same_modes_local_and_pushed(image_run, hub, capsys):
    from fade_hub.hub import push_run

    push_run(image_run, "local-user/report-failures")
    assert main(["report", str(image_run), "--top", "5", "--json"]) == 0
    local = json.loads(capsys.readouterr().out)
    assert main(["report", "local-user/report-failures", "--top", "5", "--json", "--cells"]) == 0
    pushed = json.loads(capsys.readouterr().out)
    assert local["regions"] == pushed["regions"] and len(local["regions"]) > 0
    assert "cells" not in local and len(pushed["cells"]) > 0
    assert main(["report", str(image_run), "--top", "3"]) == 0
    text = capsys.readouterr().out
    first = local["regions"][0]
    assert f"1. {first['description']}: fails" in text and "--cells" in text


def test_report_bad_target_is_one_line(hub, capsys, tmp_path):
    assert main(["report", "local-user/no-such-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "neither a local run directory nor a dataset repo" in err[0]


@pytest.mark.slow
def test_push_while_hub_is_down_keeps_run_and_retry_succeeds(image_run, hub, capsys):
    from huggingface_hub import HfApi

    before = {p: p.read_bytes() for p in sorted(image_run.rglob("*")) if p.is_file()}
    hub.stop()
    try:
        started = time.monotonic()
        assert main(["push", str(image_run), "local-user/outage-failures"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1
        assert "could not reach the Hub" in err[0] and f"fade-hub push {image_run}" in err[0]
        assert time.monotonic() - started < 120
    finally:
        hub.start()
    after = {p: p.read_bytes() for p in sorted(image_run.rglob("*")) if p.is_file()}
    assert before == after, "a failed push must leave the run untouched, its card included"
    assert 'load_dataset("local-user/outage-failures"' not in (image_run / "README.md").read_text()
    assert main(["push", str(image_run), "local-user/outage-failures"]) == 0
    assert 'load_dataset("local-user/outage-failures"' in (image_run / "README.md").read_text()  # once accepted
    files = HfApi().list_repo_files("local-user/outage-failures", repo_type="dataset")
    assert {"run.json", *DATA_FILES.values()} <= set(files)


@pytest.mark.slow  # end to end (a served app, a subprocess or timed requests): the slow tier
def test_explore_push_to_hub_flag_publishes_a_private_dataset(tiny_models, hub, tmp_path, capsys):
    from huggingface_hub import HfApi

    from fade_hub.demo.shapes import write_seed_folder

    seeds = write_seed_folder(tmp_path / "seeds", per_class=2, seed=11)
    code = main([
        "explore", str(tiny_models("image-classification")), "--seeds", str(seeds), "--concepts", "builtin:demo-shapes",
        "--algorithm", "random", "--budget", "24", "--output", str(tmp_path / "run"), "--no-progress",
        "--push-to-hub", "local-user/cli-pushed", "--private",
    ])
    out = capsys.readouterr().out
    assert code == 0 and "pushed: " in out and "local-user/cli-pushed" in out
    info = HfApi().dataset_info("local-user/cli-pushed")
    assert info.private
    files = HfApi().list_repo_files("local-user/cli-pushed", repo_type="dataset")
    assert {"README.md", "run.json", *DATA_FILES.values()} <= set(files)
    assert not any(name.startswith(".policy") or "hf_dummy" in name for name in files)
    assert os.environ["HF_TOKEN"] not in (tmp_path / "run" / "run.json").read_text()


@pytest.mark.slow
def test_licence_and_privacy_follow_the_model_and_the_seeds(tiny_models, hub, tmp_path, caplog, capsys):
    """The card takes the model's licence, else the seeds'; gated seeds make a push private unless --public."""
    import logging
    import shutil

    from huggingface_hub import HfApi

    from fade_hub.demo.shapes import write_seed_folder

    api = HfApi()
    seeds = api.create_repo("local-user/gated-shapes", repo_type="dataset", exist_ok=True).repo_id
    api.upload_folder(repo_id=seeds, repo_type="dataset", path_in_repo="train",
                      folder_path=write_seed_folder(tmp_path / "seed-files", per_class=2, seed=5))
    api.upload_file(repo_id=seeds, repo_type="dataset", path_in_repo="README.md",
                    path_or_fileobj=b"---\nlicense: cc-by-4.0\n---\n# shapes behind a gate\n")
    api.update_repo_settings(seeds, gated="auto", repo_type="dataset")
    model = shutil.copytree(tiny_models("image-classification"), tmp_path / "mit-model")
    (model / "README.md").write_text("---\nlicense: mit\n---\n# a tiny classifier\n")
    flags = ["--concepts", "builtin:demo-shapes", "--algorithm", "random", "--budget", "6", "--confirm-top", "0",
             "--no-progress"]

    assert main(["explore", str(model), "--seeds", str(tmp_path / "seed-files"), *flags,
                 "--output", str(tmp_path / "mit-run")]) == 0
    meta = RunStore(tmp_path / "mit-run").read_meta()
    assert (meta["license"], meta["license_from"]) == ("mit", "model")
    assert meta["inputs_access"] == {"model": "local", "seeds": "local"}
    assert "license: mit" in (tmp_path / "mit-run" / "README.md").read_text()

    gated_run = tmp_path / "gated-run"
    model_without_licence = str(tiny_models("image-classification"))
    assert main(["explore", model_without_licence, "--seeds", seeds, "--num-seeds", "6", *flags,
                 "--output", str(gated_run)]) == 0
    meta = RunStore(gated_run).read_meta()
    assert (meta["license"], meta["license_from"]) == ("cc-by-4.0", "seeds")
    assert meta["inputs_access"]["seeds"] == "gated"
    with caplog.at_level(logging.WARNING, logger="fade_hub.provenance"):
        assert main(["push", str(gated_run), "local-user/gated-failures"]) == 0
    assert "pushing it as a private dataset; pass --public" in caplog.text
    assert api.dataset_info("local-user/gated-failures").private
    assert api.dataset_info("local-user/gated-failures").card_data.license == "cc-by-4.0"
    assert main(["push", str(gated_run), "local-user/gated-failures-public", "--public"]) == 0
    assert not api.dataset_info("local-user/gated-failures-public").private
    capsys.readouterr()
    assert main(["push", str(gated_run), "local-user/gated-failures-public"]) == 2  # the public repo exists
    assert "already exists and is public" in capsys.readouterr().err


def test_a_run_records_no_absolute_path(image_run):
    """Every setting naming a local file (the model, the seeds, the concept space) is recorded relative to the run or
    by name, in the settings tree too, so that no absolute path of this machine reaches a pushed run."""
    def strings(value):
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []

    meta = json.loads((Path(image_run) / "run.json").read_text())
    assert isinstance(meta["config"]["inputs"], dict)  # the tree
    assert [s for s in strings(meta) if s.startswith("/")] == []


def test_report_shows_local_paths_from_the_current_folder(image_run, tmp_path, capsys, tiny_models, monkeypatch):
    import shutil

    model = RunStore(image_run).read_meta()["model_id"]
    assert not Path(model).is_absolute() and str(tiny_models("image-classification")) not in model
    old = shutil.copytree(image_run, tmp_path / "runs" / "old")
    local_model = shutil.copytree(tiny_models("image-classification"), tmp_path / "models" / "tiny")
    RunStore(old).update_meta(model_id=str(local_model))  # absolute, as runs of earlier versions recorded it
    monkeypatch.chdir(tmp_path / "runs")  # neither the run folder nor the model's parent
    capsys.readouterr()
    assert main(["report", str(old), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model_id"] == str(local_model)  # not below here: absolute
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(old)]) == 0
    assert capsys.readouterr().out.startswith("models/tiny @ local:")
    shutil.move(local_model, tmp_path / "moved")
    assert main(["report", str(old)]) == 0
    assert capsys.readouterr().out.startswith(f"{local_model} (not found) @ local:")


def test_push_refuses_a_run_another_process_is_writing(image_run, hub):
    from fade_hub.errors import FolderBusy
    from fade_hub.hub import push_run

    writer = RunStore(image_run)
    writer.hold()  # as `explore --resume` holds it
    try:
        with pytest.raises(FolderBusy, match=r"is in use by another fade-hub process \(pid \d+\); wait until it ends$"):
            push_run(image_run, "local-user/busy-run")
    finally:
        writer.release()
