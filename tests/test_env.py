"""FailureEnv on real tiny models of every task, and the one-line errors of bad input through the CLI."""

from __future__ import annotations

import json
import re
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from conftest import IMAGE_2X2
import torch
from PIL import Image

from fade_hub.cli import main
from fade_hub.env import FailureEnv
from fade_hub.errors import BadConfig, BadSpace
from fade_hub.judges import JudgeConfig, logit_severity, make_judge, rouge_l
from fade_hub.perturb import ConceptSpace, load_space
from fade_hub.seeds import Seed, SeedConfig, load_seeds
from fade_hub.targets import load_target
from fade_hub.demo.shapes import LABELS, draw_shape

TEXT_2X2 = {
    "modality": "text",
    "factors": [
        {"name": "case", "op": "case", "levels": ["none", "upper"]},
        {"name": "typos", "op": "typos", "levels": [0, 0.3]},
    ],
}


@contextmanager
def forward_calls(module: torch.nn.Module):
    """Record the batch size of every forward call of ``module``."""
    sizes: list[int] = []

    def hook(_module, args, kwargs):
        first = args[0] if args else next(v for v in kwargs.values() if isinstance(v, torch.Tensor))
        sizes.append(int(first.shape[0]))

    handle = module.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield sizes
    finally:
        handle.remove()


def self_labelled(target, inputs: list, prefix: str = "s") -> list[Seed]:
    """Seeds labelled with the classifier's own prediction on the clean input."""
    return [
        Seed(seed_id=f"{prefix}{i}", input=item, label=p.label, label_name=p.text)
        for i, (item, p) in enumerate(zip(inputs, target.predict(inputs)))
    ]


def all_cells(space: ConceptSpace) -> list[tuple[int, ...]]:
    """Every action of a space, in action_id order."""
    return [space.action_from_id(i) for i in range(space.num_cells)]


@pytest.fixture(scope="module")
def image_target(tiny_models):
    return load_target(str(tiny_models("image-classification")), device="cpu", batch_size=16)


@pytest.fixture(scope="module")
def image_seeds(image_target):
    rng = np.random.default_rng(0)
    return self_labelled(image_target, [draw_shape(LABELS[i % 3], rng) for i in range(4)])


@pytest.fixture(scope="module")
def image_env(image_target, image_seeds):
    judge = make_judge("image-classification", None, image_target)
    return FailureEnv(image_target, judge, load_space("builtin:image-default"), image_seeds, seed=0)


# gymnasium ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["single", "sequential"])
def test_check_env_passes(image_target, image_seeds, mode):
    from gymnasium.utils.env_checker import check_env

    judge = make_judge("image-classification", None, image_target)
    env = FailureEnv(image_target, judge, ConceptSpace.from_dict(IMAGE_2X2), image_seeds, mode=mode, max_steps=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    assert [str(w.message) for w in caught if "render" not in str(w.message)] == []
    obs, info = env.reset(seed=5)
    assert env.observation_space.contains(obs) and info["seed_id"] in env.seed_by_id
    assert obs["cell"].tolist() == [0, 0]  # episodes start at the neutral cell
    if mode == "single":
        assert env.action_space.nvec.tolist() == [2, 2]
        _, reward, terminated, truncated, info = env.step(np.array([1, 1]))
        assert terminated and not truncated and info["levels"] == {"rotation": "15", "brightness": "0.3"}
        assert reward == (1.0 if info["is_failure"] else 0.0)
    else:
        assert env.action_space.n == 4  # up/down per factor
        _, _, _, _, info = env.step(0)
        assert info["levels"] == {"rotation": "15", "brightness": "1.0"}


def test_sequential_steps_cumulate_and_stop(image_target, image_seeds):
    judge = make_judge("image-classification", None, image_target)
    space = ConceptSpace.from_dict(IMAGE_2X2)
    env = FailureEnv(image_target, judge, space, image_seeds, mode="sequential", max_steps=3, step_penalty=0.25)
    env.reset(seed=0, options={"seed_index": 1})
    cells, rewards, ended = [], [], None
    for move in (0, 2, 1):  # rotation up, brightness up, rotation down
        obs, reward, terminated, truncated, info = env.step(move)
        cells.append(tuple(obs["cell"].tolist()))
        rewards.append(reward)
        assert reward == pytest.approx((1.0 if info["is_failure"] else 0.0) - 0.25)
        if terminated or truncated:
            ended = (terminated, truncated, info["is_failure"])
            break
    assert cells == [(1, 0), (1, 1), (0, 1)][: len(cells)]
    terminated, truncated, failed = ended
    assert terminated == failed and truncated == (not failed) and (failed or len(cells) == 3)
    assert env.move((0, 0), 1) == (0, 0) and env.move((1, 1), 0) == (1, 1)  # clamped at the ends
    with pytest.raises(BadConfig, match="out of range"):
        env.move((0, 0), 4)


# evaluate on every task --------------------------------------------------------------------------


def test_image_evaluate_neutral_rotation_and_severity(image_env, image_seeds):
    space = image_env.space
    neutral = image_env.neutral_cell()
    assert space.level_strings(neutral) == {"rotation": "0", "brightness": "1.0", "saturation": "1.0"}
    rotated = (space.factors[0].levels.index(10), neutral[1], neutral[2])
    dark = (0, 4, 4)
    ids = [s.seed_id for s in image_seeds]
    results = image_env.evaluate([neutral] * 4 + [rotated] * 4 + [dark] * 4, ids * 3)
    assert len(results) == 12
    for r in results[:4]:  # self-labelled seeds at the no-op cell: right, so not a failure
        assert not r.verdict.is_failure and r.verdict.severity == 0 and r.score == 0
        assert r.input.tobytes() == r.seed.input.tobytes()
    for seed, r in zip(image_seeds, results[4:8]):
        pil = seed.input.rotate(10, resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))
        assert r.input.tobytes() == pil.tobytes() and r.input.size == seed.input.size
        assert r.levels == {"rotation": "10", "brightness": "1.0", "saturation": "1.0"}
        assert r.action_id == space.action_id(rotated) and r.action == rotated
    for r in results:
        assert r.prediction.text in LABELS and sum(r.prediction.probs) == pytest.approx(1, abs=1e-5)
        assert r.verdict.is_failure == (r.prediction.label != r.seed.label)
        assert r.verdict.expected == r.seed.label_name
        if r.verdict.is_failure:
            assert r.verdict.severity == pytest.approx(logit_severity(r.prediction.score)) and r.score == 1.0
    # the prediction is the model's answer on that very input
    direct = image_env.target.predict([r.input for r in results])
    assert [p.label for p in direct] == [r.prediction.label for r in results]


def test_one_forward_per_batch(image_env, image_seeds):
    ids = [s.seed_id for s in image_seeds]
    cells = all_cells(image_env.space)[:10]
    with forward_calls(image_env.target.model) as sizes:
        image_env.evaluate(cells, (ids * 3)[:10])
    assert sizes == [10]
    image_env.target.batch_size = 4
    try:
        with forward_calls(image_env.target.model) as sizes:
            image_env.evaluate(cells, (ids * 3)[:10])
        assert sizes == [4, 4, 2]
    finally:
        image_env.target.batch_size = 16


def test_same_seed_same_results_other_seed_other_noise(image_target, image_seeds):
    judge = make_judge("image-classification", None, image_target)
    space = load_space("builtin:image-corruptions")  # noise and occlusion draw from the perturbation RNG
    cells = [space.action_from_id(i) for i in (5, 90, 255, 255)]
    ids = [image_seeds[0].seed_id, image_seeds[1].seed_id, image_seeds[2].seed_id, image_seeds[3].seed_id]

    def run(env_seed: int):
        env = FailureEnv(image_target, judge, space, image_seeds, seed=env_seed)
        return [(r.input.tobytes(), r.prediction.probs, r.verdict) for r in env.evaluate(cells, ids)]

    first, again, other = run(7), run(7), run(8)
    assert first == again
    assert [x[0] for x in first] != [x[0] for x in other]


def test_evaluate_rejects_bad_batches(image_env, image_seeds):
    with pytest.raises(BadConfig, match="2 actions but 1 seed ids"):
        image_env.evaluate([(0, 0, 0), (0, 0, 0)], [image_seeds[0].seed_id])
    with pytest.raises(BadConfig, match="unknown seed id"):
        image_env.evaluate([(0, 0, 0)], ["nope"])
    with pytest.raises(BadSpace, match="outside 0..4"):
        image_env.evaluate([(0, 0, 5)], [image_seeds[0].seed_id])


def test_text_classification_evaluate(tiny_models):
    target = load_target(str(tiny_models("text-classification")), device="cpu")
    texts = ["this movie was great", "", "Grüße aus 東京 — très bien!", "the food is good but the service is slow"]
    seeds = self_labelled(target, texts, "t")
    space = ConceptSpace.from_dict(TEXT_2X2)
    env = FailureEnv(target, make_judge(target.task, None, target), space, seeds)
    cells = all_cells(space)
    results = env.evaluate([c for c in cells for _ in seeds], [s.seed_id for _ in cells for s in seeds])
    for r in results[: len(seeds)]:
        assert r.input == r.seed.input and not r.verdict.is_failure
    upper = [r for r in results if r.levels == {"case": "upper", "typos": "0"}]
    assert [r.input for r in upper] == [t.upper() for t in texts]
    for r in results:
        assert r.prediction.text in ("NEGATIVE", "POSITIVE")
        assert r.verdict.is_failure == (r.prediction.label != r.seed.label)


def test_text_generation_evaluate_with_pattern_judges(tiny_models):
    target = load_target(str(tiny_models("text-generation")), device="cpu", generation_kwargs={"max_new_tokens": 4})
    seeds = [Seed(f"p{i}", text) for i, text in enumerate(["hello world", "tell me a story", "ünïcödé ✓"])]
    space = ConceptSpace.from_dict(TEXT_2X2)
    cells = all_cells(space)
    actions, ids = [c for c in cells for _ in seeds], [s.seed_id for _ in cells for s in seeds]
    env = FailureEnv(target, make_judge(target.task, JudgeConfig(regex="."), target), space, seeds)
    results = env.evaluate(actions, ids)
    assert all(r.prediction.text for r in results)  # the tiny model always says something
    assert all(r.verdict.is_failure and r.verdict.severity == 1.0 and r.score == 1.0 for r in results)
    # keywords: fail exactly where the output holds the word
    word = re.findall(r"\w+", " ".join(r.prediction.text for r in results))[0]
    env = FailureEnv(target, make_judge(target.task, JudgeConfig(keywords=[word]), target), space, seeds)
    again = env.evaluate(actions, ids)
    assert [r.prediction.text for r in again] == [r.prediction.text for r in results]  # greedy: deterministic
    hits = [bool(re.search(rf"(?<!\w){re.escape(word)}(?!\w)", r.prediction.text, re.IGNORECASE)) for r in again]
    assert any(hits) and [r.verdict.is_failure for r in again] == hits
    assert [r.verdict.severity for r in again] == [float(h) for h in hits]


def test_summarization_evaluate_with_rouge(tiny_models):
    target = load_target(str(tiny_models("summarization")), device="cpu", generation_kwargs={"max_new_tokens": 6})
    docs = ["the children play in the garden after school", "scientists found water on a distant planet last year"]
    seeds = [Seed(f"d{i}", doc) for i, doc in enumerate(docs)]
    space = ConceptSpace.from_dict(TEXT_2X2)
    env = FailureEnv(target, make_judge(target.task, None, target), space, seeds)
    cells = all_cells(space)
    results = env.evaluate([c for c in cells for _ in seeds], [s.seed_id for _ in cells for s in seeds])
    clean = {s.seed_id: p.text for s, p in zip(seeds, target.predict(docs))}
    for r in results[: len(seeds)]:  # identical input, identical summary: ROUGE-L 1, not a failure
        assert r.prediction.text == clean[r.seed.seed_id] and r.prediction.text
        assert not r.verdict.is_failure and r.verdict.severity == 0 and r.verdict.score == 1.0
    for r in results:
        rouge = rouge_l(r.prediction.text, clean[r.seed.seed_id])
        assert r.verdict.score == pytest.approx(rouge) and r.verdict.severity == pytest.approx(1 - rouge)
        assert r.verdict.is_failure == (rouge < 0.5) and r.verdict.expected == clean[r.seed.seed_id]
    assert any(r.verdict.is_failure for r in results)  # upper-casing changes the tiny model's summary


def test_text_to_image_evaluate_with_clip(tiny_models):
    target = load_target(
        str(tiny_models("text-to-image")), device="cpu", generation_kwargs={"num_inference_steps": 2}
    )
    judge = make_judge(target.task, JudgeConfig(model_id=str(tiny_models("clip"))), target)
    seeds = load_seeds(SeedConfig("builtin:paper-activities", num_seeds=2), "prompt")
    space = load_space("builtin:paper-prompts")
    env = FailureEnv(target, judge, space, seeds, seed=3)
    cells = [space.action_from_id(i) for i in (0, 13, 26)]
    results = env.evaluate([c for c in cells for _ in seeds], [s.seed_id for _ in cells for s in seeds])
    for r in results:
        levels = r.levels
        assert r.input == r.seed.input.format(**levels)  # slots filled from the cell's levels
        assert r.prediction.image.size == (32, 32) and r.prediction.image.mode == "RGB"
        cos = r.verdict.score
        assert -1 <= cos <= 1 and r.verdict.severity == pytest.approx(100 * (1 - cos))
        assert r.verdict.is_failure == (cos < 0.25)
        [again] = judge.similarity([r.prediction.image], [r.input])
        assert again == pytest.approx(cos, abs=1e-5)
    again = env.evaluate([c for c in cells for _ in seeds], [s.seed_id for _ in cells for s in seeds])
    assert [r.prediction.image.tobytes() for r in again] == [r.prediction.image.tobytes() for r in results]


# bad input: one clear line on stderr, exit status 2 ------------------------------------------------


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``fade-hub ARGV`` in-process; return (status, stdout, stderr)."""
    capsys.readouterr()  # drop what building the tiny model printed
    code = main([*argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> str:
    """Exit 2 with one ``error:`` line (no traceback) holding every needle."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def explore_args(model: Path, seeds: Path | str, output: Path, *extra: str) -> list[str]:
    """Flags of a small, quiet random exploration."""
    return [
        "explore", str(model), "--seeds", str(seeds), "--output", str(output), "--algorithm", "random",
        "--budget", "6", "--confirm-top", "0", "--no-progress", *extra,
    ]


def test_missing_model_path(capsys, tmp_path, shape_seeds):
    missing = tmp_path / "no-such-model"
    code, _, err = run_cli(capsys, *explore_args(missing, shape_seeds, tmp_path / "run"))
    assert_one_line_error(code, err, str(missing))
    assert not (tmp_path / "run").exists()


def test_audio_model_is_unsupported(capsys, tmp_path, shape_seeds):
    model = tmp_path / "wav2vec2"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"architectures": ["Wav2Vec2ForCTC"], "model_type": "wav2vec2"}))
    code, _, err = run_cli(capsys, *explore_args(model, shape_seeds, tmp_path / "run"))
    assert_one_line_error(code, err, "automatic-speech-recognition", "--task")


def test_remote_code_model_names_the_flag(capsys, tmp_path, tiny_models, shape_seeds, small_space):
    model = tiny_models("remote-code")
    code, _, err = run_cli(capsys, *explore_args(model, shape_seeds, tmp_path / "run", "--concepts", str(small_space)))
    assert_one_line_error(code, err, "--trust-remote-code")
    trusted = explore_args(model, shape_seeds, tmp_path / "run2", "--concepts", str(small_space), "--trust-remote-code")
    code, out, err = run_cli(capsys, *trusted)
    assert code == 0, err
    assert "run:" in out


def test_unalignable_labels_show_both_sides(capsys, tmp_path, tiny_models):
    seeds = tmp_path / "pets"
    for label in ("cat", "dog"):
        (seeds / label).mkdir(parents=True)
        Image.new("RGB", (32, 32), (120, 80, 40)).save(seeds / label / "0.png")
    code, _, err = run_cli(capsys, *explore_args(tiny_models("image-classification"), seeds, tmp_path / "run"))
    assert_one_line_error(code, err, "'cat'", "'dog'", "'circle'", "--label-map")


@pytest.mark.parametrize(
    ("factor", "needles"),
    [
        ({"name": "spin", "op": "twirl", "levels": [1, 2]}, ["factors[0].op", "twirl"]),
        ({"name": "spin", "op": "rotate"}, ["factors[0].levels", "missing"]),
        ({"name": "spin", "op": "rotate", "levels": "ten"}, ["factors[0].levels", "list"]),
        ({"name": "spin", "op": "rotate", "levels": ["ten", 5]}, ["factors[0].levels[0]", "'ten'"]),
    ],
    ids=["unknown-op", "missing-levels", "levels-not-a-list", "level-wrong-type"],
)
def test_bad_space_yaml(capsys, tmp_path, tiny_models, shape_seeds, factor, needles):
    path = tmp_path / "space.yaml"
    path.write_text(json.dumps({"modality": "image", "factors": [factor]}))  # JSON is YAML
    args = explore_args(tiny_models("image-classification"), shape_seeds, tmp_path / "run", "--concepts", str(path))
    code, _, err = run_cli(capsys, *args)
    assert_one_line_error(code, err, str(path), *needles)


def test_seed_source_without_rows(capsys, tmp_path, tiny_models):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    code, _, err = run_cli(capsys, *explore_args(tiny_models("text-classification"), empty, tmp_path / "run"))
    assert_one_line_error(code, err, "no rows")
    folder = tmp_path / "no-images"
    folder.mkdir()
    code, _, err = run_cli(capsys, *explore_args(tiny_models("image-classification"), folder, tmp_path / "run"))
    assert_one_line_error(code, err, "no rows")


def test_odd_image_modes_and_huge_image_are_explored(capsys, tmp_path, tiny_models, small_space):
    from fade_hub.store import RunStore

    folder = tmp_path / "odd" / "circle"
    folder.mkdir(parents=True)
    Image.new("L", (40, 30), 90).save(folder / "gray.png")
    Image.new("RGBA", (32, 32), (200, 10, 10, 100)).save(folder / "alpha.png")
    Image.new("CMYK", (32, 48), (0, 120, 200, 10)).save(folder / "cmyk.jpg")
    Image.fromarray((np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 60)).save(folder / "deep.png")
    Image.new("RGB", (6000, 6000), (10, 200, 10)).save(folder / "huge.png", compress_level=1)
    with Image.open(folder / "deep.png") as deep:
        assert deep.mode.startswith("I")
    output = tmp_path / "run"
    model = tiny_models("image-classification")
    args = explore_args(model, folder.parent, output, "--concepts", str(small_space), "--budget", "10")
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    rows = [r for r in RunStore(output).read_queries() if r["phase"] == "explore"]
    names = ("gray.png", "alpha.png", "cmyk.jpg", "deep.png", "huge.png")
    assert len(rows) == 10 and {r["seed_id"] for r in rows} <= {f"circle/{name}" for name in names}
    assert all(r["expected"] == "circle" for r in rows)
    for r in rows:
        if r["media"]:
            with Image.open(output / r["media"]) as image:
                assert image.mode == "RGB" and max(image.size) <= 1024


def test_empty_and_non_ascii_text_seeds(capsys, tmp_path, tiny_models):
    import datasets

    seeds = tmp_path / "texts.jsonl"
    texts = ["", "Grüße aus Köln — ça va? 東京 🚀", "   ", "plain ascii text"]
    seeds.write_text("\n".join(json.dumps({"text": t}, ensure_ascii=False) for t in texts) + "\n", encoding="utf-8")
    space = tmp_path / "text.yaml"
    ConceptSpace.from_dict(TEXT_2X2).to_yaml(space)
    output = tmp_path / "run"
    args = explore_args(tiny_models("text-classification"), seeds, output, "--concepts", str(space), "--budget", "16")
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    rows = datasets.load_dataset(str(output), "queries", split="train").filter(lambda row: row["phase"] == "explore")
    assert len(rows) == 16
    by_seed = {f"texts.jsonl/{i:05d}": t for i, t in enumerate(texts)}
    for row in rows:
        levels = {"case": row["case"], "typos": row["typos"]}
        if levels == {"case": "none", "typos": "0"}:
            assert row["input"] == by_seed[row["seed_id"]] and not row["is_failure"]
        if levels == {"case": "upper", "typos": "0"}:
            assert row["input"] == by_seed[row["seed_id"]].upper()
