"""Landscape pictures (PNG + plotly) and the run's dataset card."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from huggingface_hub import DatasetCard, constants
from PIL import Image

from fade_hub.card import build_dataset_card, md_escape, size_category
from fade_hub.errors import BadConfig
from fade_hub.characterize import Confirmation, characterize, compute_landscape
from fade_hub.landscape import failure_modes
from fade_hub.perturb import Factor, ConceptSpace, load_space
from fade_hub.plots import examples_grid_png, heatmap_png, heatmaps_png, landscape_figure, marginals_png

UNVISITED_RGB = (217, 217, 217)
XSS = "<img src=x onerror=alert(1)>"


def explore_records(space: ConceptSpace, n: int, seed: int = 0, skip_last_level: bool = True) -> list[dict]:
    """Random explore queries with a planted failure region (first level of factor 0, level >= 2 of factor 1)."""
    rng = np.random.default_rng(seed)
    highs = [s - 1 if skip_last_level and i == 1 else s for i, s in enumerate(space.shape)]
    records = []
    for q in range(n):
        action = tuple(int(rng.integers(0, h)) for h in highs)
        planted = action[0] == 0 and (len(action) == 1 or action[1] >= 2)
        fail = bool(rng.random() < (0.95 if planted else 0.03))
        records.append({
            "query_id": q, "phase": "explore", "action_id": space.action_id(action), "is_failure": fail,
            "severity": float(rng.random()) if fail else 0.0, **space.level_strings(action),
        })
    return records


@pytest.fixture(scope="module")
def space() -> ConceptSpace:
    return load_space("image-default")


@pytest.fixture(scope="module")
def explored(space) -> list[dict]:
    """400 explore queries (brightness 0.2 never visited) and 40 clean seeds, none failing."""
    clean = [{"phase": "clean", "action_id": -1, "seed_id": f"c{i}", "is_failure": False, "severity": 0.0}
             for i in range(40)]
    return explore_records(space, 400) + clean


@pytest.fixture(scope="module")
def confirmation(space, explored) -> Confirmation:
    """The top screened region, tested on 12 held-out seeds."""
    top = characterize(explored, space).regions.iloc[0]
    return Confirmation("pooled", [top["region_id"]], [f"h{i}" for i in range(12)], 0.0)


@pytest.fixture(scope="module")
def queries(space, explored, confirmation) -> list[dict]:
    """The explored records plus the held-out queries of the top region: 10 of 12 seeds fail there."""
    cells = characterize(explored, space).regions.iloc[0]["cells"]
    return explored + [{"phase": "confirm", "action_id": int(cells[i % len(cells)]), "seed_id": seed,
                        "is_failure": i < 10, "severity": 1.0} for i, seed in enumerate(confirmation.held_out)]


def open_png(path) -> Image.Image:
    image = Image.open(path)
    assert image.format == "PNG"
    assert 600 <= image.width <= 1300 and 250 <= image.height <= 1300, image.size
    return image.convert("RGB")


def count_near(image: Image.Image, rgb: tuple[int, int, int], tol: int = 6) -> int:
    pixels = np.asarray(image).astype(int)
    return int((np.abs(pixels - np.array(rgb)).max(axis=-1) <= tol).sum())


def count_red(image: Image.Image) -> int:
    pixels = np.asarray(image).astype(int)
    return int(((pixels[..., 0] > 110) & (pixels[..., 1] < 40) & (pixels[..., 2] < 60)).sum())


def test_heatmap_draws_rates_and_marks_unvisited(space, queries, tmp_path):
    image = open_png(heatmap_png(queries, space, ("rotation", "brightness"), tmp_path / "rb.png"))
    calm = open_png(heatmap_png(queries, space, ("brightness", "saturation"), tmp_path / "bs.png"))
    assert count_red(image) > count_red(calm) + 5000  # the planted region's two cells are drawn red
    assert count_near(image, UNVISITED_RGB, tol=1) > 5000  # brightness=0.2 was never visited: grey, hatched
    full = explore_records(space, 400, skip_last_level=False)
    every = open_png(heatmap_png(full, space, ("rotation", "saturation"), tmp_path / "rs.png"))
    assert count_near(every, UNVISITED_RGB, tol=1) < 300  # only anti-aliased text edges
    with pytest.raises(BadConfig):
        heatmap_png(queries, space, ("rotation", "nope"), tmp_path / "x.png")


def test_heatmaps_one_per_pair(tmp_path, queries, space):
    paths = heatmaps_png(queries, space, tmp_path / "plots")
    assert [p.name for p in paths] == [
        "heatmap_rotation_brightness.png", "heatmap_rotation_saturation.png", "heatmap_brightness_saturation.png",
    ]
    for path in paths:
        open_png(path)
    text_space = load_space("text-default")  # four factors: six pairs, capped
    text_queries = explore_records(text_space, 60, skip_last_level=False)
    assert len(heatmaps_png(text_queries, text_space, tmp_path / "text", max_pairs=2)) == 2


def test_marginals_png(space, queries, tmp_path):
    image = open_png(marginals_png(queries, space, tmp_path / "marginals.png"))
    assert count_near(image, (0, 0, 0), tol=30) > 200  # axes, error bars and labels are drawn


def test_landscape_figure_three_factors(space, queries):
    land = compute_landscape(queries, space)
    fig = landscape_figure(land, space)
    visited, unvisited = fig.data[:2]
    assert visited.type == unvisited.type == "scatter3d"
    assert len(visited.x) == int((land["seeds"] > 0).sum()) and len(unvisited.x) == 25
    assert list(fig.layout.scene.xaxis.ticktext) == ["-10", "-5", "0", "5", "10"]
    assert fig.layout.scene.yaxis.title.text == "brightness"
    assert visited.marker.colorbar.title.text == "failure rate"
    assert "failure rate" in visited.hovertext[0] and " seeds" in visited.hovertext[0]
    assert "(cell, seed) pairs" in fig.layout.title.text


def test_landscape_figure_rings_the_regions(space, queries, confirmation):
    land = characterize(queries, space, confirmation=confirmation).landscape
    fig = landscape_figure(land, space)
    ringed = [trace for trace in fig.data if trace.name == "region 1"]
    assert len(ringed) == 1 and len(ringed[0].x) == int((land["region_rank"] == 1).sum()) > 0


def test_landscape_figure_other_dimensions():
    one = ConceptSpace(modality="image", factors=[Factor("rotation", "rotate", (-10, 0, 10))])
    two = ConceptSpace(modality="image", factors=[Factor("rotation", "rotate", (-10, 0, 10)),
                                                       Factor("brightness", "brightness", (1.0, 0.5))])
    four = load_space("text-default")
    bar = landscape_figure(compute_landscape(explore_records(one, 30, skip_last_level=False), one), one)
    assert bar.data[0].type == "bar" and list(bar.data[0].x) == ["-10", "0", "10"]
    heat = landscape_figure(compute_landscape(explore_records(two, 30), two), two)
    assert heat.data[0].type == "heatmap" and np.asarray(heat.data[0].z, dtype=float).shape == (3, 2)
    land4 = compute_landscape(explore_records(four, 100, skip_last_level=False), four)
    pooled = landscape_figure(land4, four)
    cells = sum(len(trace.x) for trace in pooled.data)
    assert cells == int(np.prod(four.shape[:3]))
    assert four.factors[3].name in pooled.layout.title.text


def test_examples_grid_images_text_and_empty(tmp_path):
    images = [{"image": Image.new("RGB", (48, 48), (40 * i, 90, 200)), "caption": f"pred: square / true: circle {i}"}
              for i in range(5)]
    open_png(examples_grid_png(images, tmp_path / "img.png", title="rotation=-10"))
    texts = [{"text": "Costs $\\frac{1 and $$ " * 20, "caption": "pred: negative / true: positive $x^$"}] * 3
    open_png(examples_grid_png(texts, tmp_path / "txt.png"))  # '$' is not parsed as math
    placeholder = Image.open(examples_grid_png([], tmp_path / "none.png"))
    assert placeholder.format == "PNG"


# ---------------------------------------------------------------------------------------- card


@pytest.fixture(scope="module")
def meta(queries, confirmation) -> dict:
    return {
        "run_id": "run-1", "model_id": "org/tiny-vit", "model_revision": "main",
        "model_commit_sha": "0123456789abcdef0123456789abcdef01234567", "task": "image-classification",
        "space_name": "image-default", "algorithm": "ppo", "mode": "single", "budget": 400, "seed": 7,
        "queries": len(queries), "failures": sum(q["is_failure"] for q in queries), "fade_hub_version": "0.1.0",
        "versions": {"torch": "2.13.0", "trl": "1.16.0"}, "timings": {"explore": 12.5, "confirm": 1.5},
        "judge": {"name": "label"}, "seeds": {"dataset": "org/shapes", "split": "test"}, "status": "finished",
        "clean": {"queries": 40, "failures": 0, "rate": 0.0, "ci_low": 0.0, "ci_high": 0.088},
        "confirmation": confirmation.to_dict(),
    }


@pytest.fixture(scope="module")
def found(queries, space, confirmation):
    return characterize(queries, space, confirmation=confirmation)


@pytest.fixture(scope="module")
def landscape(found) -> pd.DataFrame:
    return found.landscape


@pytest.fixture(scope="module")
def regions(found) -> pd.DataFrame:
    return found.regions


@pytest.fixture(scope="module")
def card(meta, landscape, regions, space) -> DatasetCard:
    modes = failure_modes(landscape)
    examples = {int(modes.loc[0, "action_id"]): "media/q000012.png", int(modes.loc[1, "action_id"]): XSS + " | a\nb"}
    images = {"heatmap rotation × brightness": "plots/heatmap_rotation_brightness.png"}
    region_images = {regions.loc[0, "region_id"]: "plots/region_1.png"}
    return build_dataset_card(meta, landscape, space, regions, examples=examples, images=images,
                              region_images=region_images, repo_id="me/run-1")


def test_card_metadata(card):
    again = DatasetCard(str(card))
    data = again.data
    assert [c["config_name"] for c in data.configs] == ["queries", "failures", "landscape", "regions"]
    assert data.configs[0]["data_files"] == "data/queries.parquet"
    assert {"fade-hub", "failure-analysis", "robustness", "image-classification"} <= set(data.tags)
    assert data.task_categories == ["image-classification"]
    assert data.size_categories == ["n<1K"]
    assert data.license == "other"  # the meta names no licence: neither the model's nor the seeds' is known
    assert data.to_dict()["model_under_test"] == "org/tiny-vit"


def test_card_leads_with_the_regions(card, regions):
    text = card.text
    top = regions.iloc[0]
    assert top["confirmed"] and top["description"].startswith("rotation -10 and brightness")
    # the regions come before the cells, in words with their figures and intervals
    assert text.index("## Failure regions") < text.index("## Cells (drill-down)") < text.index("## How to read this")
    assert f"### 1. {top['description']}" in text
    assert "fails 83% \\[55, 95\\] of 12 held-out seeds vs 0% clean" in text  # 10 of 12
    assert f"`region_id` `{top['region_id']}`" in text
    assert "![region 1](plots/region_1.png)" in text
    assert "and 1 failure region fails more often than the clean failure rate" in text
    assert "tested on 12 held-out seeds the search never saw" in text


def test_card_body(card, landscape, space):
    text = card.text
    top = failure_modes(landscape).iloc[0]
    assert top["region_confirmed"]  # cells of the confirmed region lead
    assert f"rotation={top['rotation']}, brightness={top['brightness']}, saturation={top['saturation']}" in text
    assert f"[org/tiny-vit]({constants.ENDPOINT}/org/tiny-vit)@0123456 with 452 queries (ppo, budget 400, seed 7)" in text
    assert '<img src="media/q000012.png"' in text
    assert "![heatmap rotation × brightness](plots/heatmap_rotation_brightness.png)" in text
    assert 'load_dataset("me/run-1", "regions", split="train")' in text
    assert "| torch | 2.13.0 |" in text and "| explore | 12.5 |" in text
    assert "Uncertain" in text and "Confirmation" in text and "Invariance and directional tests" in text
    assert "The seed is the unit of evidence" in text


def test_card_escapes_model_text(card):
    text = str(card)
    assert XSS not in text
    assert "&lt;img src=x onerror=alert(1)&gt; \\| a b" in text
    table_rows = [line for line in card.text.splitlines() if line.startswith("| ") and "onerror" in line]
    assert len(table_rows) == 1 and table_rows[0].count(" | ") == 7 - 1  # the pipe did not add a column


def test_card_helpers_and_custom_data_files(meta, landscape, regions, space):
    assert md_escape("a|b\n<c> & *d*") == "a\\|b &lt;c&gt; &amp; \\*d\\*"
    assert md_escape("x" * 50, limit=10) == "x" * 9 + "…"
    assert [size_category(n) for n in (0, 999, 1000, 25_000)] == ["n<1K", "n<1K", "1K<n<10K", "10K<n<100K"]
    custom = dict(meta, data_files={"queries": ["data/queries.jsonl"], "landscape": "data/landscape.parquet"},
                  task="summarization", license="mit", model_id="/tmp/local-model")
    card = build_dataset_card(custom, landscape, space, regions)
    assert [c["config_name"] for c in card.data.configs] == ["queries", "landscape"]
    assert card.data.task_categories == ["summarization"] and card.data.license == "mit"
    assert "](http" not in card.text.split("## Concept space")[0]  # a local model folder is not linked
    assert 'load_dataset("path/to/this/run", "landscape"' in card.text
    with pytest.raises(BadConfig):
        build_dataset_card(meta, landscape, space, regions, images={"x": "../outside.png"})


def test_card_without_failures(meta, space):
    found = characterize([{"phase": "explore", "action_id": 0, "is_failure": False, "severity": 0.0}], space)
    card = build_dataset_card(dict(meta, queries=1, confirmation=None), found.landscape, space, found.regions)
    assert "No region fails more often than the model does on clean inputs." in card.text
    assert "No cell fails significantly more often than the model does on clean inputs (1 explored (cell, seed) " \
           "pairs)." in card.text
    assert "seeds failed in 0 of 125 cells, and 0 failure regions fail" in card.text
    assert "this run has no held-out confirmation" in card.text


def test_card_configs_load_with_datasets(meta, queries, landscape, regions, space, tmp_path, caplog):
    """The YAML configs are what `datasets` reads: each config loads from a folder laid out like a run."""
    from datasets import load_dataset

    files = {"queries": "data/queries-*.parquet", "failures": "data/failures-*.parquet", "landscape": "data/landscape.parquet"}
    with caplog.at_level("WARNING", logger="fade_hub.card"):
        mixed = dict(files, queries="logs/queries*.jsonl")
        build_dataset_card(dict(meta, data_files=mixed), landscape, space, regions).save(tmp_path / "mixed.md")
        assert "mix file formats ['json', 'parquet']" in caplog.text
        caplog.clear()
        build_dataset_card(dict(meta, data_files=files), landscape, space, regions).save(tmp_path / "README.md")
        assert "mix file formats" not in caplog.text
    (tmp_path / "data").mkdir()
    pd.DataFrame(queries).to_parquet(tmp_path / "data" / "queries-00000.parquet")
    failing = pd.DataFrame([q for q in queries if q["is_failure"]])
    failing.to_parquet(tmp_path / "data" / "failures-00000.parquet")
    landscape.to_parquet(tmp_path / "data" / "landscape.parquet")
    assert load_dataset(str(tmp_path), "queries", split="train").num_rows == len(queries)
    assert load_dataset(str(tmp_path), "failures", split="train").num_rows == len(failing)
    loaded = load_dataset(str(tmp_path), "landscape", split="train")
    assert loaded.num_rows == 125 and loaded.column_names == list(landscape.columns)


def test_card_yaml_validates_on_hub(card, hub):
    """The Hub's /api/validate-yaml (served by LocalHub offline) accepts the card."""
    card.validate(repo_type="dataset")


def test_card_names_its_licence_and_where_it_comes_from(meta, landscape, regions, space):
    from fade_hub.provenance import NO_LICENSE_NOTE

    from_model = build_dataset_card(dict(meta, license="mit", license_from="model"), landscape, space, regions)
    assert from_model.data.license == "mit" and "**Licence:** mit, as declared by the model under test" in from_model.text
    from_seeds = build_dataset_card(dict(meta, license="cc-by-4.0", license_from="seeds"), landscape, space, regions)
    assert from_seeds.data.license == "cc-by-4.0" and "declared by the seed data" in from_seeds.text
    unknown = build_dataset_card(meta, landscape, space, regions)
    assert unknown.data.license == "other" and NO_LICENSE_NOTE in unknown.text


def test_control_characters_and_missing_glyphs_draw_as_escapes(tmp_path):
    import warnings

    from fade_hub.plots import plot_text

    hostile = "ok\x00\x1b[31m red\x07 東京 🚀 zero\u200bwidth"
    assert plot_text(hostile) == "ok\\x00\\x1b[31m red\\x07 \\u6771\\u4eac \\U0001f680 zero\\u200bwidth"
    assert plot_text("é ü — × 0.5\nnext") == "é ü — × 0.5\nnext"  # what the font draws stays as it is
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        examples_grid_png([{"text": hostile, "caption": f"out: {hostile}\nexp: b\x08"}], tmp_path / "grid.png",
                          title=f"mode {hostile}")
    glyphs = [str(w.message) for w in caught if "Glyph" in str(w.message)]
    assert not glyphs, glyphs[:3]
    open_png(tmp_path / "grid.png")
