"""Concept spaces and perturbation ops: YAML contract, action indexing, op behaviour, image preparation."""

from __future__ import annotations

import io
import multiprocessing

import numpy as np
import pytest
import yaml
from PIL import Image, ImageEnhance

from fade_hub.errors import BadSpace
from fade_hub.tasks import TASKS
from fade_hub.perturb import (
    Factor,
    ConceptSpace,
    list_builtin_spaces,
    load_space,
    ops_for,
    prepare_image,
)

NON_ASCII = "Grüße, 東京 🚀"
SENTENCE = "The quick brown fox was jumping over the lazy dog, and it can see the river. "


def photo(width: int = 96, height: int = 64, seed: int = 0) -> Image.Image:
    """A smooth RGB test image with a bit of texture, so every op visibly changes something."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    arr = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height) + 64], axis=-1)
    arr = np.clip(arr + rng.normal(0, 8, arr.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(arr, mode="RGB")


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image)


def levenshtein(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def one_factor(modality: str, op: str, levels: list, **params) -> ConceptSpace:
    factor = {"name": "f", "op": op, "levels": levels}
    if params:
        factor["params"] = params
    return ConceptSpace.from_dict({"modality": modality, "factors": [factor]})


# ---------------------------------------------------------------- spaces and actions


def test_yaml_round_trip(tmp_path):
    space = ConceptSpace.from_dict({
        "modality": "prompt",
        "name": "mine",
        "factors": [
            {"name": "rotation", "op": "slot", "levels": [-10, 0.5, "x y"], "params": {"slot": "r"}},
            {"name": "typo", "op": "typos", "levels": [0, 0.1]},
        ],
    })
    path = tmp_path / "space.yaml"
    text = space.to_yaml(path)
    assert path.read_text() == text
    again = ConceptSpace.from_yaml(path)
    assert again == space
    assert again.factors[0].levels == (-10, 0.5, "x y")
    assert again.factors[0].params == {"slot": "r"}
    assert again.fingerprint() == space.fingerprint()
    assert load_space(str(path)).to_dict() == space.to_dict()


def _rewrite_space(path: str, times: int) -> None:
    space = ConceptSpace.from_yaml(path)
    for _ in range(times):
        space.to_yaml(path)


def test_yaml_written_while_other_processes_write_it_is_never_seen_half_written(tmp_path):
    """Two benchmark processes sharing a cache folder both write a fixture's space: a reader meanwhile always finds
    a whole space (a plain truncate-and-write let it read an empty file), and no partial file is left behind."""
    path = tmp_path / "space.yaml"
    ConceptSpace.from_dict({"modality": "text", "factors": [{"name": "typo", "op": "typos", "levels": [0, 0.1]}]
                            }).to_yaml(path)
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_rewrite_space, args=(str(path), 300)) for _ in range(2)]
    for writer in writers:
        writer.start()
    reads = 0
    while any(writer.is_alive() for writer in writers):
        assert ConceptSpace.from_yaml(path).factors[0].name == "typo"
        reads += 1
    assert all(writer.exitcode == 0 for writer in writers) and reads > 0
    assert [p.name for p in tmp_path.iterdir()] == ["space.yaml"]


def test_fingerprint_tracks_levels_not_name():
    base = load_space("image-default").to_dict()
    renamed = dict(base, name="other", description="other words")
    changed = dict(base, factors=[dict(base["factors"][0], levels=[-10, -5, 0, 5, 11])] + base["factors"][1:])
    fp = ConceptSpace.from_dict(base).fingerprint()
    assert ConceptSpace.from_dict(renamed).fingerprint() == fp
    assert ConceptSpace.from_dict(changed).fingerprint() != fp
    assert len(fp) == 64


@pytest.mark.parametrize("name", sorted(list_builtin_spaces()))
def test_action_id_bijection(name):
    space = load_space(name)
    seen = set()
    for ident in range(space.num_cells):
        action = space.action_from_id(ident)
        assert space.action_id(action) == ident
        seen.add(action)
    assert len(seen) == space.num_cells == int(np.prod(space.shape))
    assert space.action_id([0] * len(space.shape)) == 0
    assert space.action_id([n - 1 for n in space.shape]) == space.num_cells - 1
    # row-major: the last factor varies fastest, as numpy's ravel_multi_index
    action = tuple(n // 2 for n in space.shape)
    assert space.action_id(action) == np.ravel_multi_index(action, space.shape)


def test_validate_action_and_levels():
    space = load_space("image-default")
    assert space.validate_action(np.array([4, 0, 2])) == (4, 0, 2)
    assert space.level_values((4, 1, 4)) == {"rotation": 10, "brightness": 0.8, "saturation": 0.0}
    assert space.level_strings((0, 1, 2)) == {"rotation": "-10", "brightness": "0.8", "saturation": "0.5"}
    assert space.level_strings((2, 0, 4)) == {"rotation": "0", "brightness": "1.0", "saturation": "0.0"}
    assert load_space("text-default").level_strings((1, 3, 1, 0)) == {
        "typos": "0.05", "case": "toggle", "negate": "true", "punctuation": "false"}
    for bad in ([0, 0], [0, 0, 5], [0, -1, 0], [0.5, 0, 0], ["a", 0, 0]):
        with pytest.raises(BadSpace):
            space.validate_action(bad)
    with pytest.raises(BadSpace, match="0..124"):
        space.action_from_id(125)


def test_float_levels_format_stably():
    space = one_factor("image", "brightness", [0.1 + 0.2, 2, 1e-7])
    assert [space.level_strings((i,))["f"] for i in range(3)] == ["0.3", "2", "1e-07"]


def test_neutral_action():
    assert load_space("image-default").neutral_action() == (2, 0, 0)
    assert load_space("text-default").neutral_action() == (0, 0, 0, 0)
    assert load_space("paper-image").neutral_action() is None  # darken has no 0 level
    assert load_space("paper-prompts").neutral_action() is None
    image = photo()
    space = load_space("image-default")
    assert pixels(space.apply(image, space.neutral_action(), seed=3)).tolist() == pixels(image).tolist()


# ---------------------------------------------------------------- built-ins and loading

PROMISED_SHAPES = {
    "image-default": ("image", (5, 5, 5)),
    "paper-image": ("image", (5, 5, 5)),
    "image-corruptions": ("image", (4, 4, 4, 4)),
    "text-default": ("text", (4, 4, 2, 2)),
    "text-invariant": ("text", (4, 4, 2)),
    "paper-prompts": ("prompt", (3, 3, 3)),
    "prompt-default": ("prompt", (5, 5, 4)),
    "demo-shapes": ("image", (5, 5, 5)),
}


def test_builtins_load_with_promised_shapes():
    listed = list_builtin_spaces()
    assert set(listed) == set(PROMISED_SHAPES)
    for name, (modality, shape) in PROMISED_SHAPES.items():
        assert listed[name] and "\n" not in listed[name]
        space = load_space(f"builtin:{name}")
        assert (space.modality, space.shape, space.name) == (modality, shape, name)
        assert load_space(name).fingerprint() == space.fingerprint()
    paper = load_space("paper-image")
    assert [f.levels for f in paper.factors] == [
        (-10, -5, 0, 5, 10), (0.1, 0.2, 0.3, 0.4, 0.5), (0.5, 0.55, 0.6, 0.65, 0.7)]
    assert [f.op for f in paper.factors] == ["rotate", "darken", "saturation"]
    assert load_space("paper-prompts").factors[2].levels == ("corporate office", "research center", "classroom")
    for spec in TASKS.values():  # every task's default space exists and fits the task's inputs
        assert load_space(spec.default_space).modality == spec.modality


def test_unknown_builtin_lists_known_names(tmp_path):
    with pytest.raises(BadSpace) as err:
        load_space("builtin:nope")
    assert "nope" in str(err.value) and all(name in str(err.value) for name in PROMISED_SHAPES)
    with pytest.raises(BadSpace, match="image-default"):
        load_space("nope")
    with pytest.raises(BadSpace, match="file not found"):
        load_space(tmp_path / "missing.yaml")
    space = load_space("text-default")
    assert load_space(space) is space


# ---------------------------------------------------------------- validation errors

VALID_FACTOR = {"name": "rotation", "op": "rotate", "levels": [0, 5]}


def _space_with(**factor_changes):
    return {"modality": "image", "factors": [VALID_FACTOR, {**VALID_FACTOR, "name": "r2", **factor_changes}]}


BAD_SPACES = [
    (_space_with(op="blurr"), "factors[1].op", "unknown op 'blurr' for modality image (known: blur, brightness"),
    ({"modality": "image", "factors": [{"name": "r", "op": "rotate"}]}, "factors[0].levels", "missing"),
    (_space_with(levels=[]), "factors[1].levels", "non-empty list"),
    (_space_with(levels=5), "factors[1].levels", "non-empty list"),
    (_space_with(levels=[0, "left"]), "factors[1].levels[1]", "'left' is not a number"),
    (_space_with(levels=[0, True]), "factors[1].levels[1]", "not a number"),
    (_space_with(op="jpeg", levels=[50, 0]), "factors[1].levels[1]", "out of range"),
    (_space_with(op="jpeg", levels=[101]), "factors[1].levels[0]", "out of range"),
    (_space_with(op="jpeg", levels=[50.5]), "factors[1].levels[0]", "not an integer"),
    (_space_with(op="blur", levels=[-1]), "factors[1].levels[0]", "out of range"),
    (_space_with(op="occlude", levels=[1.0]), "factors[1].levels[0]", "out of range"),
    (_space_with(op="darken", levels=[float("nan")]), "factors[1].levels[0]", "not a number"),
    (_space_with(levels=[5, 5.0]), "factors[1].levels[1]", "duplicate level"),
    (_space_with(name="rotation"), "factors[1].name", "duplicate factor name 'rotation'"),
    (_space_with(params={"angle": 3}), "factors[1].params.angle", "unknown param"),
    (_space_with(params=[1]), "factors[1].params", "mapping"),
    (_space_with(colour="red"), "factors[1].colour", "unknown key"),
    (_space_with(name=""), "factors[1].name", "non-empty string"),
    ({"modality": "image", "factors": [VALID_FACTOR], "seed": 3}, "seed", "unknown key"),
    ({"modality": "audio", "factors": [VALID_FACTOR]}, "modality", "unknown modality 'audio'"),
    ({"factors": [VALID_FACTOR]}, "modality", "missing"),
    ({"modality": "image", "factors": []}, "factors", "non-empty list"),
    ({"modality": "image"}, "factors", "non-empty list"),
    ({"modality": "image", "factors": ["rotate"]}, "factors[0]", "mapping"),
    ([1, 2], "", "mapping"),
    ({"modality": "text", "factors": [{"name": "t", "op": "typos", "levels": [0, 1.5]}]},
     "factors[0].levels[1]", "out of range"),
    ({"modality": "text", "factors": [{"name": "c", "op": "case", "levels": ["title"]}]},
     "factors[0].levels[0]", "not one of none, lower, upper, toggle"),
    ({"modality": "text", "factors": [{"name": "n", "op": "negate", "levels": [0, 1]}]},
     "factors[0].levels[0]", "not true or false"),
    ({"modality": "text", "factors": [{"name": "r", "op": "repeat", "levels": [-1]}]},
     "factors[0].levels[0]", "out of range"),
    ({"modality": "prompt", "factors": [{"name": "d", "op": "slot", "levels": ["a"], "params": {"slot": None}}]},
     "factors[0].params.slot", "non-empty name"),
    ({"modality": "prompt", "factors": [{"name": "d", "op": "slot", "levels": [["a"]]}]},
     "factors[0].levels[0]", "not a string or number"),
    ({"modality": "prompt", "factors": [{"name": "d", "op": "slot", "levels": ["a"]},
                                        {"name": "e", "op": "slot", "levels": ["b"], "params": {"slot": "d"}}]},
     "factors[1].params.slot", "filled by two factors"),
    ({"modality": "image", "factors": [{"name": "d", "op": "slot", "levels": ["a"]}]},
     "factors[0].op", "unknown op 'slot' for modality image"),
]
BAD_IDS = [f"{key or 'root'}-{message[:20]}" for _, key, message in BAD_SPACES]


@pytest.mark.parametrize(("data", "key", "message"), BAD_SPACES, ids=BAD_IDS)
def test_validation_errors_name_file_and_key(tmp_path, data, key, message):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(BadSpace) as err:
        load_space(str(path))
    text = str(err.value)
    assert text.startswith(f"{path}: {key}: " if key else f"{path}: "), text
    assert message in text and "\n" not in text


def test_yaml_syntax_and_missing_file_errors(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("modality: image\nfactors: [{name: r, op: rotate, levels: [0, 5]\n")
    with pytest.raises(BadSpace, match=r"broken\.yaml: YAML does not parse: .* at line \d+"):
        load_space(path)
    with pytest.raises(BadSpace, match=r"nowhere\.yaml: file not found"):
        ConceptSpace.from_yaml(tmp_path / "nowhere.yaml")


def test_direct_construction_is_validated():
    space = ConceptSpace("image", [Factor("rotation", "rotate", [0, 5])])
    assert space.shape == (2,) and space.factors[0].levels == (0, 5) and space.factors[0].params == {}
    with pytest.raises(BadSpace, match="unknown op 'spin'"):
        ConceptSpace("image", [Factor("rotation", "spin", (0, 5))])


# ---------------------------------------------------------------- image ops

IMAGE_LEVELS = {
    "rotate": [0, 7.5], "brightness": [1.0, 0.4], "contrast": [1, 1.7], "saturation": [1.0, 0.0],
    "darken": [0, 0.3], "blur": [0, 1.5], "noise": [0, 0.1], "jpeg": [None, 10], "occlude": [0, 0.2],
}
RANDOM_IMAGE_OPS = {"noise", "occlude"}


def test_every_image_op_is_covered():
    assert set(ops_for("image")) == set(IMAGE_LEVELS)


@pytest.mark.parametrize("op", sorted(IMAGE_LEVELS))
def test_image_op_deterministic_and_noop(op):
    noop, level = IMAGE_LEVELS[op]
    image = photo()
    before = pixels(image).copy()
    levels = [level] if noop is None else [noop, level]
    space = one_factor("image", op, levels)
    out = space.apply(image, (len(levels) - 1,), seed=1)
    assert out.mode == "RGB" and out.size == image.size
    assert not np.array_equal(pixels(out), before)
    assert np.array_equal(pixels(space.apply(image, (len(levels) - 1,), seed=1)), pixels(out))
    if op in RANDOM_IMAGE_OPS:
        assert not np.array_equal(pixels(space.apply(image, (len(levels) - 1,), seed=2)), pixels(out))
    if noop is not None:
        assert np.array_equal(pixels(space.apply(image, (0,), seed=1)), before)
        assert space.neutral_action() == (0,)
    else:
        assert space.neutral_action() is None
    assert np.array_equal(pixels(image), before)  # the input is never modified


def test_rotate_and_brightness_match_pil():
    image = photo()
    space = load_space("image-default")
    for action in [(0, 0, 0), (4, 0, 0), (1, 0, 0)]:
        expected = image.rotate(space.level_values(action)["rotation"], resample=Image.BILINEAR, fillcolor="black")
        assert np.array_equal(pixels(space.apply(image, action)), pixels(expected))
    expected = ImageEnhance.Brightness(image).enhance(0.4)
    assert np.array_equal(pixels(space.apply(image, (2, 3, 0))), pixels(expected))
    # factors run in YAML order
    rotated = image.rotate(5, resample=Image.BILINEAR, fillcolor="black")
    expected = ImageEnhance.Color(ImageEnhance.Brightness(rotated).enhance(0.6)).enhance(0.25)
    assert np.array_equal(pixels(space.apply(image, (3, 2, 3), seed=9)), pixels(expected))
    darkened = one_factor("image", "darken", [0.3]).apply(image, (0,))
    assert np.array_equal(pixels(darkened), pixels(ImageEnhance.Brightness(image).enhance(0.7)))


def test_jpeg_changes_pixels_and_keeps_size():
    image = photo(101, 77)
    space = one_factor("image", "jpeg", [90, 5])
    mild, harsh = (pixels(space.apply(image, (i,))).astype(int) for i in range(2))
    assert mild.shape == harsh.shape == (77, 101, 3)
    original = pixels(image).astype(int)
    assert 0 < np.abs(mild - original).mean() < np.abs(harsh - original).mean()
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=5)
    assert np.array_equal(harsh, pixels(Image.open(buffer).convert("RGB")))


@pytest.mark.parametrize("fraction", [0.05, 0.2, 0.5, 0.9])
def test_occlude_covers_requested_fraction(fraction):
    image = Image.new("RGB", (200, 120), (255, 0, 0))
    space = one_factor("image", "occlude", [fraction])
    for seed in range(3):
        gray = np.all(pixels(space.apply(image, (0,), seed=seed)) == 128, axis=-1)
        assert gray.mean() == pytest.approx(fraction, abs=0.02)
        rows, cols = np.nonzero(gray)
        assert gray[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # one solid rectangle


def test_noise_strength_follows_level():
    image = Image.new("RGB", (64, 64), (128, 128, 128))
    space = one_factor("image", "noise", [0.05, 0.2])
    std = [(pixels(space.apply(image, (i,))) / 255.0).std() for i in range(2)]
    assert std[0] == pytest.approx(0.05, rel=0.1) and std[1] == pytest.approx(0.2, rel=0.1)


def test_apply_accepts_other_modes():
    space = load_space("image-default")
    gray = photo().convert("L")
    out = space.apply(gray, (4, 2, 1))
    assert out.mode == "RGB" and out.size == gray.size


# ---------------------------------------------------------------- prepare_image


def _mode_image(mode: str) -> Image.Image:
    base = photo(80, 60)
    if mode == "I;16":
        return Image.fromarray((pixels(base.convert("L")).astype(np.uint16) * 257))
    if mode == "RGBA":
        rgba = base.convert("RGBA")
        rgba.putalpha(Image.new("L", base.size, 0))  # fully transparent: must come out white
        return rgba
    return base.convert(mode)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F", "1"])
def test_prepare_image_modes(mode):
    image = _mode_image(mode)
    assert image.mode == mode
    out = prepare_image(image)
    assert out.mode == "RGB" and out.size == image.size and pixels(out).dtype == np.uint8
    if mode == "RGBA":
        assert (pixels(out) == 255).all()
    if mode in ("L", "I;16"):
        expected = pixels(photo(80, 60).convert("L"))
        assert np.abs(pixels(out)[..., 0].astype(int) - expected).max() <= 1


def test_prepare_image_downscales_huge_images():
    big = Image.fromarray(np.random.default_rng(0).integers(0, 256, (6000, 6000, 3), dtype=np.uint8))
    out = prepare_image(big)
    assert out.mode == "RGB" and out.size == (1024, 1024)
    wide = prepare_image(Image.new("RGBA", (6000, 1500)), max_side=512)
    assert wide.size == (512, 128) and wide.mode == "RGB"
    small = photo()
    copy = prepare_image(small)
    assert copy is not small and np.array_equal(pixels(copy), pixels(small))


# ---------------------------------------------------------------- text ops

TEXT_LEVELS = {
    "typos": [0, 0.3], "case": ["none", "toggle"], "punctuation": [False, True], "stopwords": [False, 0.7],
    "negate": [False, True], "shuffle": [0, 0.8], "repeat": [0, 2],
}
RANDOM_TEXT_OPS = {"typos", "stopwords", "shuffle", "repeat"}


def test_every_text_op_is_covered():
    assert set(ops_for("text")) == set(TEXT_LEVELS)


@pytest.mark.parametrize("op", sorted(TEXT_LEVELS))
def test_text_op_deterministic_noop_and_robust(op):
    noop, level = TEXT_LEVELS[op]
    space = one_factor("text", op, [noop, level])
    out = space.apply(SENTENCE, (1,), seed=1)
    assert out != SENTENCE
    assert space.apply(SENTENCE, (1,), seed=1) == out
    if op in RANDOM_TEXT_OPS:
        assert any(space.apply(SENTENCE, (1,), seed=s) != out for s in range(2, 6))
    assert space.apply(SENTENCE, (0,), seed=1) == SENTENCE
    assert space.neutral_action() == (0,)
    for text in ("", "   ", NON_ASCII, "🚀"):
        assert space.apply(text, (0,), seed=4) == text
        result = space.apply(text, (1,), seed=4)
        assert isinstance(result, str)
        if op not in ("case", "punctuation"):  # case maps ü and ß; punctuation removes the comma
            assert all(ch in result for ch in "üß東京🚀" if ch in text)


def test_typos_rate_matches_level():
    text = SENTENCE * 6
    letters = sum(c.isalpha() for c in text)
    space = one_factor("text", "typos", [0.2])
    for seed in range(3):
        out = space.apply(text, (0,), seed=seed)
        edits = levenshtein(text, out)
        assert 0.15 * letters <= edits <= 0.3 * letters  # a swap costs two edits
    assert one_factor("text", "typos", [0.2]).apply(NON_ASCII, (0,), seed=0).count("東京 🚀") == 1


def test_negation():
    space = one_factor("text", "negate", [True])
    assert space.apply("The film is great.", (0,)) == "The film is not great."
    assert space.apply("She can swim", (0,)) == "She cannot swim"
    assert space.apply("He does like it", (0,)) == "He does not like it"
    assert space.apply("THE FILM WAS GREAT", (0,)) == "THE FILM WAS NOT GREAT"
    assert space.apply("Birds fly south.", (0,)) == "It is not true that Birds fly south."
    assert space.apply("the birds fly", (0,)) == "It is not true that the birds fly"
    assert space.apply("This isn't it, this is", (0,)) == "This isn't it, this is not"
    assert space.apply("", (0,)) == ""


def test_text_ops_content():
    def run(op, level, text, seed=0):
        return one_factor("text", op, [level]).apply(text, (0,), seed=seed)

    assert run("case", "upper", "abc Déf") == "ABC DÉF"
    assert run("case", "lower", "ABC") == "abc"
    assert run("case", "toggle", "aBc") == "AbC"
    assert run("punctuation", True, "Hello, world! «Yes»… ok?") == "Hello world Yes ok"
    assert run("stopwords", True, "The cat is on the mat.\n") == "cat mat.\n"
    assert sorted(run("shuffle", True, "one two three four five").split()) == sorted("one two three four five".split())
    assert run("repeat", 3, "Hello!") == "Hello Hello Hello Hello!"


# ---------------------------------------------------------------- prompts

TEMPLATE = "a photo of a {descriptor} {profession} at a {setting}"


def test_prompt_slot_filling():
    space = load_space("paper-prompts")
    assert space.apply(TEMPLATE, (0, 1, 2)) == "a photo of a unique artist at a classroom"
    assert space.apply(TEMPLATE, space.action_from_id(26)) == "a photo of a cool professor at a classroom"
    # slots absent from a template are unused; braces no factor fills stay as they are
    assert space.apply("portrait of a {profession}, {style}", (2, 0, 1)) == "portrait of a scientist, {style}"
    prompts = {space.apply(TEMPLATE, space.action_from_id(i)) for i in range(space.num_cells)}
    assert len(prompts) == space.num_cells


def test_prompt_slot_param_and_text_ops():
    space = ConceptSpace.from_dict({"modality": "prompt", "factors": [
        {"name": "typo", "op": "typos", "levels": [0, 0.5]},
        {"name": "job", "op": "slot", "levels": ["doctor", "chef"], "params": {"slot": "profession"}},
    ]})
    assert space.apply("a {profession} smiling", (0, 1)) == "a chef smiling"
    noisy = space.apply("a {profession} smiling", (1, 0), seed=2)  # slots are filled before the typos
    assert "{" not in noisy and noisy != "a doctor smiling"
    assert space.level_strings((1, 0)) == {"typo": "0.5", "job": "doctor"}
