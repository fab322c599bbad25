"""A run and a feedback file written before the config tree (main at a01a0b4) open, report, review and mitigate.

``tests/data/main-a01a0b4`` was made by commit a01a0b4 (flat ``config`` in ``run.json``, feedback records naming
their subject ``target``/``target_type``): a grid run of the shipped shapes model (copied beside the run as
``model``, the folder it was explored from) over rotation {0, 40} x brightness {1.0, 0.2} on the seeds of
``release-0.1.0`` (random seed 1, 4 seeds held out, batch size 8), and two reviewers' feedback on it: alice marks
the top region fix and corrects one failing example, bob marks the region fix and its cell 3 acceptable.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fade_hub.assembly import recorded_config
from fade_hub.cli import main
from fade_hub.demo.shapes import shipped_model_dir
from fade_hub.feedback import load as load_feedback
from fade_hub.run import Run

DATA = Path(__file__).parent / "data"
OLD = DATA / "main-a01a0b4"
REGION = "rotation=40&brightness=0.2&class=square,triangle"


@pytest.fixture
def old_run(tmp_path) -> Path:
    """A copy of the old run folder, with the model and the seed folder beside it where the run names them."""
    shutil.copytree(DATA / "release-0.1.0" / "seeds", tmp_path / "seeds")
    shutil.copytree(shipped_model_dir(), tmp_path / "model")
    shutil.copy(OLD / "space.yaml", tmp_path / "space.yaml")
    shutil.copytree(OLD / "feedback", tmp_path / "feedback")
    return shutil.copytree(OLD / "run", tmp_path / "run")


def test_an_old_flat_config_is_read_as_the_tree(old_run):
    assert "algorithm" in json.loads((old_run / "run.json").read_text())["config"]  # the flat form, as written then
    config = recorded_config(Run.open(old_run))
    assert (config.search.algorithm, config.search.seed, config.target.batch_size) == ("grid", 1, 8)
    assert (config.confirm.confirm_seeds, config.inputs.split) == (4, "train")
    assert (config.algorithm, config.seed, config.confirm_seeds) == ("grid", 1, 4)  # flat reads as before


def test_an_old_run_reports_its_region(old_run, capsys):
    assert main(["report", str(old_run)]) == 0
    out = capsys.readouterr().out
    assert "rotation 40 and brightness 0.2, on square and triangle seeds" in out


def test_old_feedback_still_reads(old_run):
    records = load_feedback(str(old_run.parent / "feedback")).resolved()
    assert {(r.item, r.item_type, r.verdict, r.user) for r in records} >= {
        (REGION, "region", "fix", "alice"), (REGION, "region", "fix", "bob"), ("3", "mode", "acceptable", "bob")}
    assert any(r.item_type == "example" and r.correction == "square" for r in records)


@pytest.mark.slow
def test_an_old_run_mitigates_from_its_old_feedback(old_run, monkeypatch):
    monkeypatch.chdir(old_run.parent)
    assert main(["mitigate", "run", "--feedback", "feedback", "--output", "adapter", "--steps", "3",
                 "--batch-size", "8", "--no-progress"]) == 0
    figures = json.loads((old_run.parent / "adapter" / "fade_eval.json").read_text())
    assert figures["run_id"] == Run.open(old_run).run_id
    feedback = figures["feedback"]  # every old record read: two reviewers, three fix verdicts, one correction
    assert (feedback["records"], feedback["reviewers"], feedback["corrections"]) == (4, 2, 1)
    assert feedback["verdicts"] == {"fix": 3, "acceptable": 1}
