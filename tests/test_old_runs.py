"""A run and a feedback file written by release 0.1.0 (before regions) still open, report and publish.

``tests/data/release-0.1.0`` was made by the release commit 02b9ae1: a grid run of the shipped shapes model over
rotation {0, 40} x brightness {1.0, 0.2} (18 seeds, 4 held out for its old cell confirmation) and feedback on it
(mode and example verdicts, as the app wrote them then).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fade_hub.cli import main
from fade_hub.feedback import load as load_feedback
from fade_hub.run import Run

RELEASE = Path(__file__).parent / "data" / "release-0.1.0"


@pytest.fixture
def old_run(tmp_path) -> Path:
    """A copy of the release's run folder (with its seed folder beside it, as the run names it)."""
    shutil.copytree(RELEASE / "seeds", tmp_path / "seeds")
    return shutil.copytree(RELEASE / "run", tmp_path / "run")


def test_an_old_run_opens_with_regions_computed_from_its_queries(old_run):
    run = Run.open(old_run)
    assert run.regions_computed and not (old_run / "data" / "regions.parquet").exists()
    top = run.regions.iloc[0]
    assert top["description"].startswith("rotation 40") and top["screened"] and top["confirm_test"] == ""
    assert "seeds" in run.landscape.columns  # the landscape is recomputed with seed counts too
    assert run.resolve(top["region_id"])["region_id"] == top["region_id"]
    assert run.resolve("3") is not None  # the old mode the feedback names is still a failure-mode cell


def test_an_old_run_reports_and_says_where_its_regions_come_from(old_run, capsys):
    assert main(["report", str(old_run), "--cells"]) == 0
    out = capsys.readouterr().out
    assert "recorded before fade-hub reported regions" in out and "1. rotation 40" in out
    assert "rotation=40 brightness=0.2" in out
    assert main(["report", str(old_run), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["regions_computed"] and document["regions"][0]["description"].startswith("rotation 40")


def test_an_old_run_pushes_with_a_card_that_says_so(old_run, hub):
    from huggingface_hub import DatasetCard

    from fade_hub.hub import push_run

    push_run(old_run, "local-user/release-0-1-0-run")
    card = DatasetCard.load("local-user/release-0-1-0-run", repo_type="dataset")
    assert "recorded before fade-hub reported regions" in card.text and "## Failure regions" in card.text
    pushed = Run.open("local-user/release-0-1-0-run")
    assert pushed.regions_computed and pushed.regions.iloc[0]["description"].startswith("rotation 40")


def test_old_feedback_still_reads(tmp_path):
    folder = shutil.copytree(RELEASE / "feedback", tmp_path / "feedback")
    records = load_feedback(str(folder)).resolved()
    assert {(r.item, r.item_type, r.verdict, r.user) for r in records} >= {
        ("3", "mode", "fix", "alice"), ("3", "mode", "acceptable", "bob"), ("3", "mode", "fix", "carol")}
    assert any(r.item_type == "example" and r.correction == "square" for r in records)
