"""What the Hub shows of a variant, without training one: the model-index built from fade_eval.json figures, the
run card's variants section replaced rather than repeated, and sources named without local paths."""

from __future__ import annotations

from huggingface_hub import ModelCard, ModelCardData

from fade_hub.card import VARIANTS_START
from fade_hub.model_index import eval_results
from fade_hub.paths import public_name
from fade_hub.variant_links import with_variants

REVISION = "a" * 40


def _rate(failures: int, seeds: int, low: float, high: float) -> dict:
    return {"failures": failures, "queries": seeds, "rate": failures / seeds, "ci_low": low, "ci_high": high}


FIGURES = {
    "task": "image-classification", "failures": "user/run", "failures_revision": REVISION,
    "regions": [{"region_id": "rotation=40&brightness=0.2", "description": "rotation 40 and brightness 0.2",
                 "before": _rate(17, 30, 0.39, 0.73), "after": _rate(5, 30, 0.07, 0.34)}],
    "targeted": {"before": _rate(17, 30, 0.39, 0.73), "after": _rate(5, 30, 0.07, 0.34)},
    "clean": {"before": _rate(0, 30, 0.0, 0.11), "after": _rate(1, 30, 0.01, 0.17)},
    "untargeted": {"before": _rate(3, 90, 0.01, 0.09), "after": _rate(2, 90, 0.01, 0.08)},
    "collateral": {"before": _rate(2, 60, 0.01, 0.11), "after": _rate(4, 60, 0.03, 0.16)},
    "recheck": {"dataset": "user/faded-failures", "revision": "b" * 40,
                "counts": {"fixed": 1, "persisting": 0, "unresolved": 0, "new": 2}},
}


def test_the_model_index_round_trips_through_a_card_with_its_datasets():
    card = ModelCard.from_template(ModelCardData(eval_results=eval_results(FIGURES, "user/run"), model_name="m"))
    results = {r.metric_name: r for r in ModelCard(str(card)).data.eval_results}
    region = results["failure rate in region rotation 40 and brightness 0.2, mitigated"]
    assert (region.metric_value, region.dataset_type, region.dataset_revision) == (0.1667, "user/run", REVISION)
    assert region.metric_args == {"ci_low": 0.07, "ci_high": 0.34, "seeds": 30}
    assert results["clean failure rate, mitigated"].metric_value == 0.0333
    # collateral on unseen perturbations replaces the untargeted cells when the figures have it
    assert "collateral failure rate on unseen perturbations, base" in results
    assert not any(name.startswith("untargeted") for name in results)
    assert not any(name.startswith("failure rate in mode") for name in results)  # regions, when there are some
    new = results["re-check: regions new"]
    assert (new.metric_value, new.dataset_type, new.dataset_revision) == (2, "user/faded-failures", "b" * 40)


def test_an_unpushed_re_check_names_the_base_run_and_modes_stand_in_for_regions():
    figures = {**FIGURES, "regions": [], "collateral": None, "recheck": {**FIGURES["recheck"], "dataset": None},
               "modes": [{"cell": "rotation=40, brightness=0.2", **FIGURES["targeted"]}]}
    results = {r.metric_name: r for r in eval_results(figures, "user/run")}
    assert "failure rate in mode rotation=40, brightness=0.2, base" in results
    assert "untargeted failure rate, mitigated" in results
    assert results["re-check: regions fixed"].dataset_type == "user/run"
    assert results["re-check: regions fixed"].dataset_revision == REVISION


def test_the_variants_section_is_replaced_not_repeated():
    card = "# run\n\n## Concept space\n\nfactors\n"
    once = with_variants(card, ["user/a-faded"])
    assert once.index(VARIANTS_START) < once.index("## Concept space") and "[user/a-faded]" in once
    twice = with_variants(once, ["user/a-faded", "user/b-faded"])
    assert twice.count(VARIANTS_START) == 1 and "[user/b-faded]" in twice and twice.endswith("factors\n")
    assert with_variants(card, []) == card


def test_cards_name_sources_by_dataset_or_local_name(tmp_path):
    assert public_name("../../hf/fade-hub/shapes-resnet-v1-eval") == "local:shapes-resnet-v1-eval"
    assert public_name(str(tmp_path / "eval")) == "local:eval"
    assert public_name("user/my-images") == "user/my-images"
    assert public_name("builtin:paper-image") == "builtin:paper-image"
    assert public_name("local:eval") == "local:eval"
