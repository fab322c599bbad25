"""Mitigated variants in the feedback app: adapters found on the (local) Hub by their card metadata or passed with
--adapters, their before/after figures and examples read without torch, and runs made on a mitigated variant.

The adapter repos are written by hand in the layout ``fade-hub mitigate`` produces (fade_eval.json,
eval/examples.parquet, plots/, a model card with ``fade_hub:`` metadata); the Space needs no weights.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import unique_repo
from space_runs import XSS
from variants import publish_variant, write_variant

@pytest.fixture(scope="module")
def published(review_run, tmp_path_factory):
    """(adapter repo for the review run, an unrelated adapter repo)."""
    run_dir, repo = review_run
    mine = publish_variant(write_variant(tmp_path_factory.mktemp("variant"), run_dir, repo),
                           unique_repo("shapes-faded"))
    other = write_variant(tmp_path_factory.mktemp("other"), run_dir, repo, name="tester/unrelated")
    card = (other / "README.md").read_text()
    run_id = json.loads((run_dir / "run.json").read_text())["run_id"]
    (other / "README.md").write_text(card.replace(run_id, "someotherrun"))
    return mine, publish_variant(other, unique_repo("unrelated-faded"))


def test_localhub_lists_models_by_tag_with_card_data(published):
    from huggingface_hub import HfApi

    mine, other = published
    found = {model.id: model for model in HfApi().list_models(filter=["fade-hub", "failure-mitigation"], cardData=True)}
    assert {mine, other} <= set(found)
    assert found[mine].card_data.to_dict()["fade_hub"]["failures"]
    assert not list(HfApi().list_models(filter=["fade-hub", "no-such-tag"]))
    assert mine in {model.id for model in HfApi().list_models(filter="peft")}  # the library counts, as on the Hub


def test_adapters_published_for_a_run_are_found_by_run_id_and_lineage(review_run, published, tmp_path):
    from fade_hub.feedback.variants import published_for

    run_dir, repo = review_run
    mine, other = published
    run_id = json.loads((run_dir / "run.json").read_text())["run_id"]
    assert mine in published_for([run_id]) and other not in published_for([run_id])
    later = write_variant(tmp_path / "later", run_dir, repo, lineage=[run_id, "nextround1"])
    card = (later / "README.md").read_text().replace(f"run_id: {run_id}", "run_id: nextround1")
    (later / "README.md").write_text(card)
    later_repo = publish_variant(later, unique_repo("later-faded"))
    assert later_repo in published_for(["nextround1"]) and later_repo in published_for([run_id])


def test_variant_figures_and_examples_are_read_without_torch(review_run, published, tmp_path):
    from fade_hub.errors import BadConfig
    from fade_hub.feedback.variants import (
        before_after_table,
        example_images,
        examples_table,
        headline,
        load_variant,
        load_variants,
    )

    run_dir, repo = review_run
    mine, _ = published
    variant = load_variant(mine)
    assert variant.run_id == json.loads((run_dir / "run.json").read_text())["run_id"]
    assert variant.card["fade_hub"]["run_id"] == variant.run_id and "modes" in variant.plots
    table = before_after_table(variant)
    top = variant.targets()[0]["key"]
    assert [key for key in (item["key"] for item in variant.targets())] == [str(m["action_id"]) for m in
                                                                             variant.evaluation["modes"]]
    assert list(table["what"])[-3:] == ["the targeted failures", "clean seeds", "the untargeted cells"]
    assert list(table.iloc[-3]) == ["the targeted failures", "100% [68, 100]", "25% [7, 59]", "down 75%"]
    assert table["change"].iloc[-1] == "-1.0 points"  # today's files: a change without an interval
    examples = examples_table(variant, top)
    assert "input" not in examples.columns  # image inputs are in the gallery
    assert [what.split(":")[0] for what in examples["what happened"]] == ["fixed", "fixed", "fixed", "still fails"]
    assert len(example_images(variant, top)) == 4 and " · fixed: base said '" in example_images(variant, top)[0][1]
    assert "(down 75%)" in headline(variant) and headline(variant).startswith(f"### {mine}")
    folder = load_variant(str(write_variant(tmp_path / "local", run_dir, repo)))
    assert before_after_table(folder).equals(table)
    variants, problems = load_variants([mine, str(tmp_path), "tester/no-such-adapter"])
    assert [v.name for v in variants] == [mine] and len(problems) == 2
    assert "no fade_eval.json" in problems[0] and "neither a local adapter folder nor a model repo" in problems[1]
    with pytest.raises(BadConfig, match="not a fade-hub mitigated variant"):
        load_variant(str(tmp_path))


def test_the_app_shows_the_variants_of_its_run(review_run, published, tmp_path):
    import gradio as gr

    from fade_hub.feedback.app import AppConfig, FeedbackApp

    run_dir, repo = review_run
    mine, other = published
    extra = str(write_variant(tmp_path / "extra", run_dir, repo))
    app = FeedbackApp(AppConfig(failures=repo, feedback_dir=str(tmp_path / "fb"), adapters=[extra]))
    names = [variant.name for variant in app.variants]
    assert names[0] == extra and mine in names[1:]  # --adapters first, then those published for the run
    assert other not in names
    blocks = {block.elem_id: block for block in app.demo.blocks.values() if getattr(block, "elem_id", None)}
    assert blocks["variant-select"].choices == [("extra", extra), *((name, name) for name in names[1:])]
    assert len(blocks["variant-table"].value["data"]) == 2 + 3
    assert blocks["variant-plot"].value is not None and blocks["variant-gallery"].value
    assert isinstance(blocks["variant-examples"], gr.Dataframe)
    none = FeedbackApp(AppConfig(failures=repo, feedback_dir=str(tmp_path / "fb2"), find_adapters=False))
    blocks = {block.elem_id: block for block in none.demo.blocks.values() if getattr(block, "elem_id", None)}
    assert "variant-select" not in blocks and "fade-hub mitigate" not in blocks["variants-none"].value
    assert "No mitigated variant of this run yet" in blocks["variants-none"].value


def test_region_variants_show_collateral_and_order_examples(planted_image_run, tmp_path, caplog):
    """The region format of fade_eval.json: targets are regions, collateral on unseen perturbations replaces the
    old untargeted figure, changes carry their bootstrap intervals, examples come fixed -> regressed -> unchanged;
    the tab's heading is the folder's name and no command line reaches the reviewer."""
    from fade_hub.feedback.app import AppConfig, FeedbackApp
    from fade_hub.feedback.variants import before_after_table, examples_table, headline, load_variant, shift_text

    run_dir, repo = planted_image_run
    folder = write_variant(tmp_path / "shapes-faded", run_dir, repo, regions=True)
    variant = load_variant(str(folder))
    regions = [item["key"] for item in variant.targets()]
    assert regions == list(pd.read_parquet(run_dir / "data" / "regions.parquet")["region_id"][:2])
    table = before_after_table(variant)
    assert list(table["what"])[2:] == ["the targeted failures", "clean seeds", "collateral on unseen perturbations",
                                       "untargeted cells, trained on"]
    assert list(table.iloc[0])[1:] == ["90% [77, 96]", "7.5% [3, 20]", "down 92% [81, 98]"]
    assert table.set_index("what").loc["collateral on unseen perturbations", "change"] == "+0.2 points [-0.4, +0.9]"
    text = headline(variant)
    assert text.startswith("### shapes-faded\n") and "against 2 regions reviewers marked *fix*" in text
    assert "**Collateral on unseen perturbations:** 2\\.5% \\[1.9, 3.2\\] (60 of 2400) failed before" in text
    assert "Wasserstein" in shift_text(variant) and "not which cells changed" in shift_text(variant)
    assert "Explored afresh" not in text  # no re-check in this variant
    variant.evaluation["recheck"] = {"counts": {"fixed": 1, "persisting": 0, "unresolved": 0, "new": 1}, "queries": 600,
                                     "regions": [{"status": "fixed", "text": "brightness 0.2: A fails 90%, B 5%"},
                                                 {"status": "new", "text": f"rotation 40 {XSS}"}, "broken"]}
    text = headline(variant)
    assert "**Explored afresh:** the variant was searched again like the run it fades (600 queries): 1 fixed, 0 " \
           "persisting, 0 unresolved, 1 new." in text
    assert "- *fixed:* brightness 0.2: A fails 90%, B 5%\n- *new:* rotation 40 &lt;img" in text and XSS not in text
    shown = examples_table(variant, regions[0])
    assert [what.split(":")[0] for what in shown["what happened"]] == [
        "fixed", "fixed", "fixed", "regressed", "still fails", "still right"]
    assert sum(what.startswith("regressed:") for what in examples_table(variant, "all")["what happened"]) == 2
    caplog.set_level("INFO", logger="fade_hub.feedback.ui_variants")
    app = FeedbackApp(AppConfig(failures=str(run_dir), feedback_dir=str(tmp_path / "fb"), find_adapters=False,
                                reviewer="ada"))
    assert "fade-hub mitigate RUN --feedback FEEDBACK" in caplog.text  # the operator's hint: in the log only
    blocks = {block.elem_id: block for block in app.demo.blocks.values() if getattr(block, "elem_id", None)}
    assert "fade-hub" not in blocks["variants-none"].value


def test_variant_outputs_with_html_are_text(hostile_run, tmp_path):
    import gradio as gr

    from fade_hub.feedback.app import AppConfig, FeedbackApp

    run_dir, repo = hostile_run
    variant = str(write_variant(tmp_path / "hostile", run_dir, repo, hostile=True))
    app = FeedbackApp(AppConfig(failures=repo, feedback_dir=str(tmp_path / "fb"), adapters=[variant],
                                find_adapters=False))
    blocks = {block.elem_id: block for block in app.demo.blocks.values() if getattr(block, "elem_id", None)}
    cells = [cell for row in blocks["variant-examples"].value["data"] for cell in row]
    assert any(XSS in cell for cell in cells) and "**bold** reply" not in str(blocks["variant-headline"].value)
    assert "tester/echo-model" in blocks["variant-headline"].value  # escaped Markdown: no markup of its own
    for block in app.demo.blocks.values():
        if isinstance(block, (gr.HTML, gr.Markdown)):
            assert "<" not in str(block.value), block.value


def test_feedback_on_a_run_made_on_a_mitigated_variant_carries_its_own_run_id(review_run, published, tmp_path):
    """A run explored on the variant names its lineage; its feedback is its own, read with the base run's."""
    import shutil

    from fade_hub import feedback
    from fade_hub.feedback.app import AppConfig, FeedbackApp

    run_dir, _ = review_run
    mine, _ = published
    base_meta = json.loads((run_dir / "run.json").read_text())
    child = tmp_path / "child-run"
    shutil.copytree(run_dir, child)
    meta = dict(base_meta, run_id="childrun0001", model_id=mine,
                lineage={"base_model": base_meta["model_id"], "base_commit": None, "adapter": mine,
                         "adapter_run_id": base_meta["run_id"], "run_ids": [base_meta["run_id"]]})
    (child / "run.json").write_text(json.dumps(meta))
    folder = tmp_path / "fb"
    base = FeedbackApp(AppConfig(failures=str(run_dir), feedback_dir=str(folder), find_adapters=False))
    mode = base.view.region_ids[0]
    base.submit(mode, "fix")
    app = FeedbackApp(AppConfig(failures=str(child), feedback_dir=str(folder), find_adapters=False))
    lineage = next(block for block in app.demo.blocks.values() if getattr(block, "elem_id", None) == "lineage")
    assert mine in lineage.value and base_meta["run_id"] in lineage.value and "childrun0001" in lineage.value
    assert [variant.name for variant in app.variants] == [mine]  # the adapter this run was made on
    record = app.submit(mode, "acceptable", "", "still fails after mitigation")
    assert record["run_id"] == "childrun0001"
    resolved = feedback.load(folder).resolved()
    wanted = {*meta["lineage"]["run_ids"], meta["run_id"]}
    assert {(r.run_id, r.verdict) for r in resolved if r.run_id in wanted} == {
        (base_meta["run_id"], "fix"), ("childrun0001", "acceptable")}
