"""``fade-hub pull`` is all or nothing: killed at any moment (SIGINT or SIGKILL), it leaves no partial ``--output``,
and the same command run again succeeds with no cleanup by hand."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import unique_repo

from fade_hub.staging import staging_folder

pytestmark = pytest.mark.slow  # each pull starts a process that imports the model stack (about 10 s)


def _digests(folder: Path) -> dict[str, str]:
    """sha256 of each file under ``folder`` (but the ``.gitattributes`` every Hub repo gets)."""
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file() and path.name != ".gitattributes"}


@pytest.fixture(scope="module")
def big_adapter(hub, tmp_path_factory) -> tuple[str, dict[str, str]]:
    """An adapter repo on the session LocalHub with a 150 MB weights file: (repo id, sha256 of each file)."""
    from huggingface_hub import HfApi

    folder = tmp_path_factory.mktemp("big-adapter")
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "tester/base",
                                                            "peft_type": "LORA"}))
    with (folder / "adapter_model.safetensors").open("wb") as handle:
        for _ in range(150):
            handle.write(os.urandom(1 << 20))
    repo = unique_repo("big-adapter", "local-user")
    HfApi().create_repo(repo)
    HfApi().upload_folder(repo_id=repo, folder_path=folder)
    return repo, _digests(folder)


def _pull(repo: str, output: Path, home: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "fade_hub.cli", "pull", repo, "--output", str(output), "--no-progress"]
    return subprocess.Popen(command, env={**os.environ, "HF_HOME": str(home)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_an_interrupted_pull_leaves_nothing_partial_and_the_rerun_succeeds(big_adapter, tmp_path, stop):
    repo, expected = big_adapter
    draw = random.Random(f"pull-{stop.name}")
    for repetition in range(3):
        home, output = tmp_path / f"home{repetition}", tmp_path / f"pulled{repetition}"  # a cold download each time
        process = _pull(repo, output, home)
        while not staging_folder(output).exists() and process.poll() is None:
            time.sleep(0.01)  # the pull has begun writing: its staging folder is there
        delay = draw.uniform(0, 8)  # imports, download and copy take about 9 s
        time.sleep(delay)
        process.send_signal(stop)
        _, stderr = process.communicate(timeout=120)
        left = staging_folder(output).exists()
        print(f"\n{stop.name} {delay:.1f} s into the pull: exit {process.returncode}, output "
              f"{'complete' if output.exists() else 'absent'}, staging {'left' if left else 'none'}")
        assert "Traceback" not in stderr, stderr
        if output.exists():  # it had finished writing when the signal came: complete
            assert _digests(output) == expected, (process.returncode, stderr)
            continue
        if stop == signal.SIGINT:
            assert process.returncode == 130 and stderr.strip().endswith(
                f"interrupted: nothing was written to {output}; run the same command again to pull"), stderr
        rerun = _pull(repo, output, home)
        out, err = rerun.communicate(timeout=300)
        assert rerun.returncode == 0, err
        assert out.strip() == str(output) and _digests(output) == expected
        assert not staging_folder(output).exists(), "the interrupted pull's staging folder was left behind"


def test_a_pull_that_fails_midway_leaves_the_output_as_it_was(tmp_path):
    """A broken link in the adapter folder: one line naming it, and the empty --output given stays empty."""
    from fade_hub.cli import main

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "tester/base"}))
    (adapter / "adapter_model.safetensors").write_bytes(os.urandom(4096))
    (adapter / "tokenizer.json").symlink_to(tmp_path / "gone.json")
    output = tmp_path / "pulled"
    output.mkdir()
    assert main(["pull", str(adapter), "--output", str(output)]) == 2
    assert list(output.iterdir()) == [] and sorted(path.name for path in tmp_path.iterdir()) == ["adapter", "pulled"]
    (adapter / "tokenizer.json").unlink()
    assert main(["pull", str(adapter), "--output", str(output)]) == 0
    assert _digests(output) == _digests(adapter)


def test_pull_merge_without_progress_prints_only_where_it_went(tiny_models, tmp_path):
    """No transformers FutureWarning and, with --no-progress, no loading or writing bars: stdout names the folder."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageClassification

    base = tiny_models("image-classification")
    model = get_peft_model(AutoModelForImageClassification.from_pretrained(base),
                           LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    model.save_pretrained(tmp_path / "adapter")
    (tmp_path / "adapter" / "fade_eval.json").write_text(json.dumps({"task": "image-classification"}))
    merged = tmp_path / "merged"
    done = subprocess.run([sys.executable, "-m", "fade_hub.cli", "pull", str(tmp_path / "adapter"), "--output",
                           str(merged), "--merge", "--no-progress"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.strip() == str(merged)
    assert (merged / "config.json").is_file() and not (merged / "adapter_config.json").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["adapter", "merged"]  # no staging left
