"""Seed loading from image folders, text files, built-ins and a Hub dataset; label alignment."""

from __future__ import annotations

import json
import logging
import string
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fade_hub.errors import BadSeeds, LabelAlignmentError
from fade_hub.seeds import (
    Seed,
    SeedConfig,
    align_labels,
    default_seeds_for,
    list_builtin_seeds,
    load_seeds,
)

SHAPES = {0: "Circle", 1: "Square"}


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """circle/ and square/ subfolders holding images in many modes, one huge, one corrupt."""
    root = tmp_path_factory.mktemp("images")
    (root / "circle").mkdir()
    (root / "square").mkdir()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(root / "circle" / "a_rgb.png")
    Image.new("L", (32, 32), 128).save(root / "circle" / "b_gray.png")
    Image.new("RGBA", (20, 24), (0, 255, 0, 100)).save(root / "circle" / "c_rgba.png")
    Image.new("RGB", (6000, 6000), (5, 5, 250)).save(root / "circle" / "d_huge.png")
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(root / "square" / "e_cmyk.jpg")
    deep = np.full((20, 30), 40000, dtype=np.uint16)  # 16-bit grayscale: mode I;16
    Image.fromarray(deep).save(root / "square" / "f_deep.png")
    (root / "square" / "g_broken.png").write_bytes(b"\x89PNG not really an image")
    (root / "square" / "notes.txt").write_text("not an image")
    return root


def test_image_folder_loads_every_mode_as_bounded_rgb(image_folder, caplog):
    odd = ("circle/c_rgba.png", "square/e_cmyk.jpg", "square/f_deep.png")
    source_modes = [Image.open(image_folder / name).mode for name in odd]
    assert source_modes == ["RGBA", "CMYK", "I;16"]
    with caplog.at_level(logging.WARNING, logger="fade_hub.seeds"):
        seeds = load_seeds(SeedConfig(str(image_folder)), "image", id2label=SHAPES)
    assert [s.seed_id for s in seeds] == [
        "circle/a_rgb.png",
        "circle/b_gray.png",
        "circle/c_rgba.png",
        "circle/d_huge.png",
        "square/e_cmyk.jpg",
        "square/f_deep.png",
    ]
    assert all(isinstance(s.input, Image.Image) and s.input.mode == "RGB" for s in seeds)
    assert all(max(s.input.size) <= 1024 for s in seeds)
    assert seeds[3].input.size == (1024, 1024)
    assert seeds[0].input.size == (40, 30)
    assert seeds[4].input.getpixel((8, 8))[0] > 200  # cyan-free CMYK red stays red
    assert [s.label for s in seeds] == [0, 0, 0, 0, 1, 1]
    assert [s.label_name for s in seeds] == ["Circle"] * 4 + ["Square"] * 2
    assert seeds[0].context == "Circle"
    assert "square/g_broken.png" in caplog.text


def test_image_folder_without_model_labels_keeps_folder_names(image_folder):
    seeds = load_seeds(SeedConfig(str(image_folder), num_seeds=2), "image")
    assert [(s.label, s.label_name, s.context) for s in seeds] == [(None, "circle", "circle")] * 2


def test_images_in_root_have_no_label(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "one.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "two.bmp")
    seeds = load_seeds(SeedConfig(str(tmp_path)), "image", id2label=SHAPES)
    assert [(s.seed_id, s.label, s.label_name, s.context) for s in seeds] == [
        ("one.png", None, None, ""),
        ("two.bmp", None, None, ""),
    ]


def test_folder_of_unreadable_images_is_bad_seeds(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(BadSeeds, match=r"no readable images.*cat/x\.jpg"):
        load_seeds(SeedConfig(str(tmp_path)), "image")


def test_jsonl_text_with_labels_and_non_ascii(tmp_path):
    rows = [
        {"sentence": "Très bien, merci 😊", "label": "positive"},
        {"sentence": "", "label": "NEGATIVE"},
        {"sentence": None, "label": "negative"},
        {"sentence": "Ужасно", "label": "Negative"},
    ]
    path = tmp_path / "reviews.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n", encoding="utf-8")
    seeds = load_seeds(SeedConfig(str(path)), "text", id2label={0: "NEGATIVE", 1: "POSITIVE"})
    assert [(s.seed_id, s.input, s.label, s.label_name) for s in seeds] == [
        ("reviews.jsonl/00000", "Très bien, merci 😊", 1, "POSITIVE"),
        ("reviews.jsonl/00001", "", 0, "NEGATIVE"),
        ("reviews.jsonl/00003", "Ужасно", 0, "NEGATIVE"),
    ]


def test_csv_text_with_labels_and_reference(tmp_path):
    path = tmp_path / "news.csv"
    path.write_text(
        "article,summary,topic\n"
        '"Der Zug fährt um 8 Uhr, sagt die Bahn.",Zug um 8,world_news\n'
        "Stocks rose today.,Stocks up,Business\n",
        encoding="utf-8",
    )
    seeds = load_seeds(SeedConfig(str(path), label_column="topic"), "text", id2label={0: "World News", 1: "business"})
    assert [(s.input, s.reference, s.label, s.label_name) for s in seeds] == [
        ("Der Zug fährt um 8 Uhr, sagt die Bahn.", "Zug um 8", 0, "World News"),
        ("Stocks rose today.", "Stocks up", 1, "business"),
    ]


def test_csv_of_image_paths_relative_to_the_file(tmp_path):
    (tmp_path / "pics").mkdir()
    Image.new("LA", (10, 10)).save(tmp_path / "pics" / "p.png")
    path = tmp_path / "index.csv"
    path.write_text("file_name,label\npics/p.png,square\npics/missing.png,circle\n", encoding="utf-8")
    seeds = load_seeds(SeedConfig(str(path)), "image", id2label=SHAPES)
    assert [(s.seed_id, s.input.mode, s.label) for s in seeds] == [("index.csv/00000", "RGB", 1)]


def test_txt_prompt_file(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("a {descriptor} chef in a kitchen\n\na café on a rainy street\n", encoding="utf-8")
    seeds = load_seeds(SeedConfig(str(path)), "prompt")
    assert [(s.seed_id, s.input, s.context) for s in seeds] == [
        ("prompts.txt/00000", "a {descriptor} chef in a kitchen", ""),
        ("prompts.txt/00001", "a café on a rainy street", ""),
    ]
    path.write_text("a {descriptor chef\n", encoding="utf-8")
    with pytest.raises(BadSeeds, match="not a valid template"):
        load_seeds(SeedConfig(str(path)), "prompt")


def test_builtins_load():
    names = list_builtin_seeds()
    assert {"paper-activities", "prompts", "sentences", "articles"} <= set(names)
    assert all(isinstance(line, str) and line and "\n" not in line for line in names.values())

    activities = load_seeds(SeedConfig("builtin:paper-activities"), "prompt")
    assert len(activities) == 20
    assert len({s.input for s in activities}) == 20 and len({s.context for s in activities}) == 20
    for seed in activities:
        slots = {name for _, name, _, _ in string.Formatter().parse(seed.input) if name}
        assert slots == {"descriptor", "profession", "setting"}, seed.input
    assert activities[7].seed_id == "paper-activities/07"

    prompts = load_seeds(SeedConfig("builtin:prompts"), "text")
    assert len(prompts) >= 25 and all(s.input and s.context == "" for s in prompts)

    sentences = load_seeds(SeedConfig("builtin:sentences"), "text", id2label={0: "negative", 1: "positive"})
    assert len(sentences) >= 25
    assert {s.label for s in sentences} == {0, 1}
    assert {s.label_name for s in sentences} == {"negative", "positive"}

    articles = load_seeds(SeedConfig("builtin:articles"), "text")
    assert len(articles) >= 10
    assert all(s.reference and s.input.count(". ") >= 2 for s in articles)

    with pytest.raises(BadSeeds, match=r"known: .*paper-activities"):
        load_seeds(SeedConfig("builtin:nope"), "text")
    assert default_seeds_for("text-to-image") == "builtin:paper-activities"
    assert default_seeds_for("text-generation") == "builtin:prompts"
    assert default_seeds_for("image-classification") is None


def test_cap_and_shuffle_are_deterministic():
    first = load_seeds(SeedConfig("builtin:prompts", num_seeds=5, shuffle=True, shuffle_seed=3), "text")
    again = load_seeds(SeedConfig("builtin:prompts", num_seeds=5, shuffle=True, shuffle_seed=3), "text")
    other = load_seeds(SeedConfig("builtin:prompts", num_seeds=5, shuffle=True, shuffle_seed=4), "text")
    plain = load_seeds(SeedConfig("builtin:prompts", num_seeds=5), "text")
    assert [s.seed_id for s in first] == [s.seed_id for s in again]
    assert [s.seed_id for s in first] != [s.seed_id for s in other]
    assert [s.seed_id for s in plain] == [f"prompts/{i:02d}" for i in range(5)]


def test_align_labels_ignores_case_and_separators():
    model = {0: "golden retriever", 1: "tench, Tinca tinca", 2: "T-shirt"}
    assert align_labels(["Golden_Retriever", "golden-retriever", "tench", "t shirt"], model) == {
        "Golden_Retriever": 0,
        "golden-retriever": 0,
        "tench": 1,
        "t shirt": 2,
    }


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_label_map_file(tmp_path, suffix):
    mapping = {"kitty": "Circle", "box": "square"}
    path = tmp_path / f"map{suffix}"
    path.write_text(json.dumps(mapping) if suffix == ".json" else "kitty: Circle\nbox: square\n")
    data = tmp_path / "data.jsonl"
    data.write_text('{"text": "x", "label": "box"}\n{"text": "y", "label": "kitty"}\n')
    seeds = load_seeds(SeedConfig(str(data), label_map=str(path)), "text", id2label=SHAPES)
    assert [(s.label, s.label_name) for s in seeds] == [(1, "Square"), (0, "Circle")]


def test_unalignable_labels_show_both_sides(image_folder):
    with pytest.raises(LabelAlignmentError) as err:
        load_seeds(SeedConfig(str(image_folder)), "image", id2label={0: "cat", 1: "dog"})
    message = str(err.value)
    assert "\n" not in message
    assert "'circle'" in message and "'square'" in message
    assert "'cat'" in message and "'dog'" in message and "--label-map" in message


def test_partly_aligned_labels_are_an_error():
    with pytest.raises(LabelAlignmentError, match=r"\['triangle'\] have no match"):
        align_labels(["circle", "triangle", "square"], SHAPES)


def test_integer_labels_align_by_index_only_when_in_range(tmp_path, caplog):
    data = tmp_path / "ints.jsonl"
    data.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 0}\n')
    with caplog.at_level(logging.WARNING, logger="fade_hub.seeds"):
        seeds = load_seeds(SeedConfig(str(data)), "text", id2label={0: "LABEL_0", 1: "LABEL_1"})
    assert [(s.label, s.label_name) for s in seeds] == [(1, "LABEL_1"), (0, "LABEL_0")]
    assert "bare integers" in caplog.text
    data.write_text('{"text": "a", "label": 5}\n')
    with pytest.raises(LabelAlignmentError, match="'5'"):
        load_seeds(SeedConfig(str(data)), "text", id2label={0: "LABEL_0", 1: "LABEL_1"})


def test_empty_sources_and_missing_columns(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadSeeds, match="has no rows"):
        load_seeds(SeedConfig(str(tmp_path / "empty")), "image")
    for name in ("empty.txt", "empty.jsonl", "empty.csv"):
        (tmp_path / name).write_text("")
        with pytest.raises(BadSeeds, match="has no rows"):
            load_seeds(SeedConfig(str(tmp_path / name)), "text")
    data = tmp_path / "cols.jsonl"
    data.write_text('{"body": "x", "y": 1}\n')
    with pytest.raises(BadSeeds, match=r"no text column \(columns: body, y\); pass --text-column"):
        load_seeds(SeedConfig(str(data)), "text")
    with pytest.raises(BadSeeds, match="'nope' given by --label-column"):
        load_seeds(SeedConfig(str(data), text_column="body", label_column="nope"), "text")
    with pytest.raises(BadSeeds, match="does not exist"):
        load_seeds(SeedConfig(str(tmp_path / "missing.csv")), "text")


def test_hub_dataset_streams_with_cap_and_classlabel_names(hub):
    import datasets

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["circle", "square"])})
    modes = ["RGB", "L", "RGBA", "RGB", "L", "RGB"]
    dataset = datasets.Dataset.from_dict(
        {"image": [Image.new(mode, (12, 10)) for mode in modes], "label": [1, 0, 1, 1, 0, 0]}, features=features
    )
    dataset.push_to_hub("seed-tester/shapes")

    model = {0: "Square", 1: "CIRCLE"}  # reversed order: ids must come from names, not ClassLabel ints
    seeds = load_seeds(SeedConfig("seed-tester/shapes", num_seeds=4), "image", id2label=model)
    assert [s.seed_id for s in seeds] == ["train/00000", "train/00001", "train/00002", "train/00003"]
    assert [(s.label, s.label_name) for s in seeds] == [(0, "Square"), (1, "CIRCLE"), (0, "Square"), (0, "Square")]
    assert all(isinstance(s, Seed) and s.input.mode == "RGB" and s.input.size == (12, 10) for s in seeds)

    unlabelled = load_seeds(SeedConfig("seed-tester/shapes", num_seeds=2, shuffle=True), "image")
    assert [s.label_name for s in unlabelled] == [
        ["square", "circle", "square", "square", "circle", "circle"][int(s.seed_id.split("/")[1])] for s in unlabelled
    ]
    with pytest.raises(BadSeeds, match="seed-tester/absent"):
        load_seeds(SeedConfig("seed-tester/absent"), "image")


def test_images_are_decoded_at_the_size_they_are_kept_and_bombs_are_skipped(tmp_path, caplog):
    from fade_hub.perturb.image import ImageTooLarge, open_image

    folder = tmp_path / "seeds" / "circle"
    folder.mkdir(parents=True)
    previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:  # a 13000 x 13000 one-bit PNG compresses to about 20 KB: 169 megapixels once decoded
        Image.new("1", (13000, 13000), 0).save(folder / "bomb.png", optimize=True)
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    assert (folder / "bomb.png").stat().st_size < 64_000
    Image.linear_gradient("L").resize((4000, 3000)).convert("RGB").save(folder / "photo.jpg", quality=90)
    Image.new("RGB", (300, 200), (10, 200, 10)).save(folder / "small.png")
    with caplog.at_level(logging.WARNING, logger="fade_hub.seeds"):
        seeds = load_seeds(SeedConfig(str(tmp_path / "seeds"), image_side=64), "image")
    assert [s.seed_id for s in seeds] == ["circle/photo.jpg", "circle/small.png"]
    assert "skipping image circle/bomb.png" in caplog.text and "13000x13000 is 169 MP, over the 64 MP" in caplog.text
    sizes = {s.seed_id: s.input.size for s in seeds}
    assert sizes == {"circle/photo.jpg": (85, 64), "circle/small.png": (96, 64)}  # shorter side: the model's 64
    with pytest.raises(ImageTooLarge, match="over the 64 MP limit"):
        open_image(folder / "bomb.png")
    with Image.open(folder / "photo.jpg") as photo:  # what draft makes of the JPEG before any decoding
        photo.draft("RGB", (85, 64))
        assert photo.size == (500, 375)  # decoded at 1/8 scale: 0.19 MP instead of 12 MP
    default = load_seeds(SeedConfig(str(tmp_path / "seeds")), "image")
    assert {s.seed_id: s.input.size for s in default} == {"circle/photo.jpg": (1024, 768),
                                                          "circle/small.png": (300, 200)}


@pytest.mark.slow
def test_exploring_a_capped_hub_image_folder_leaves_no_pending_task(hub, tiny_models, tmp_path):
    """A Hub image folder (40 images) read with --num-seeds 8: datasets' threaded decoding (asyncio tasks) is off,
    so the run ends without "Task was destroyed but it is pending!" errors (issue 25, item 21)."""
    import subprocess
    import sys

    from huggingface_hub import HfApi

    for label in ("circle", "square"):
        (tmp_path / "imgs" / "train" / label).mkdir(parents=True)
        for i in range(20):
            Image.new("RGB", (16, 16), (10 * i, 5 * i, 3)).save(tmp_path / "imgs" / "train" / label / f"{i:03d}.png")
    api = HfApi()
    api.create_repo("seed-tester/image-folder", repo_type="dataset", exist_ok=True)
    api.upload_folder(folder_path=str(tmp_path / "imgs"), repo_id="seed-tester/image-folder", repo_type="dataset")
    done = subprocess.run(
        [sys.executable, "-m", "fade_hub.cli", "explore", str(tiny_models("image-classification")), "--seeds",
         "seed-tester/image-folder", "--num-seeds", "8", "--algorithm", "random", "--budget", "8", "--confirm-top",
         "0", "--no-progress", "--output", str(tmp_path / "run")], capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "asyncio" not in done.stderr and "Task was destroyed" not in done.stderr, done.stderr[-3000:]
