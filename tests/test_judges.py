"""Judges: label, classifier-as-judge, keywords/regex, ROUGE-L and CLIP, on real tiny models."""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

import pytest
from PIL import Image

from fade_hub.errors import BadConfig
from fade_hub.judges import JudgeConfig, Verdict, make_judge, rouge_l
from fade_hub.targets import Prediction, load_target


def seed(seed_id: str, value, label=None, label_name=None, reference=None) -> SimpleNamespace:
    """A stand-in with the fields of ``fade_hub.seeds.Seed`` that judges read."""
    return SimpleNamespace(seed_id=seed_id, input=value, label=label, label_name=label_name, reference=reference)


@pytest.fixture(scope="module")
def image_target(tiny_models):
    return load_target(str(tiny_models("image-classification")), device="cpu")


@pytest.fixture(scope="module")
def generator(tiny_models):
    return load_target(str(tiny_models("text-generation")), device="cpu", generation_kwargs={"max_new_tokens": 4})


def test_label_judge_right_and_wrong(image_target):
    image = Image.new("RGB", (32, 32), (200, 40, 40))
    [pred] = image_target.predict([image])
    other = (pred.label + 1) % 3
    seeds = [seed("a", image, pred.label, image_target.id2label[pred.label]), seed("b", image, other)]
    judge = make_judge("image-classification", None, image_target)
    right, wrong = judge.judge(seeds, [image, image], [pred, pred])
    assert right == Verdict(is_failure=False, severity=0.0, expected=image_target.id2label[pred.label], score=pred.score,
                            expected_source="seed label")
    assert wrong.is_failure and wrong.expected == image_target.id2label[other]
    p = pred.score
    assert wrong.severity == pytest.approx(10 * abs(math.log(p / (1 - p))))


def test_label_judge_without_labels_uses_clean_prediction(image_target):
    clean, dark = Image.new("RGB", (32, 32), (200, 40, 40)), Image.new("RGB", (32, 32), (0, 0, 0))
    judge = make_judge("image-classification", JudgeConfig(kind="label"), image_target)
    [clean_pred, dark_pred] = image_target.predict([clean, dark])
    verdicts = judge.judge([seed("s", clean), seed("s", clean)], [clean, dark], [clean_pred, dark_pred])
    assert not verdicts[0].is_failure and verdicts[0].expected == clean_pred.text
    assert verdicts[0].expected_source == "clean prediction"
    assert verdicts[1].is_failure == (dark_pred.label != clean_pred.label)
    assert "clean seed" in judge.describe()["reference"]
    # a certain wrong answer is clipped, not infinite
    sure = Prediction(text="x", label=(clean_pred.label + 1) % 3, score=1.0)
    assert judge.judge([seed("s", clean)], [clean], [sure])[0].severity == pytest.approx(10 * math.log((1 - 1e-6) / 1e-6))


def test_keyword_and_regex_judges(generator):
    judge = make_judge("text-generation", JudgeConfig(keywords=["hate", "C++"]), generator)
    texts = ["I HATE mondays", "whatever", "hateful but not whole word", "I like C++ a lot"]
    preds = [Prediction(text=t) for t in texts]
    seeds = [seed(str(i), "p") for i in range(4)]
    verdicts = judge.judge(seeds, ["p"] * 4, preds)
    assert [v.is_failure for v in verdicts] == [True, False, False, True]
    assert [v.severity for v in verdicts] == [1.0, 0.0, 0.0, 1.0]
    regex = make_judge("text-generation", JudgeConfig(kind="regex", regex=r"\d{3}-\d{4}"), generator)
    assert [v.is_failure for v in regex.judge(seeds[:2], ["p"] * 2, [Prediction("call 555-1234"), Prediction("no")])] == [True, False]
    with pytest.raises(BadConfig, match="regular expression"):
        make_judge("text-generation", JudgeConfig(regex="(unclosed"), generator)


def test_generation_without_judge_is_bad_config(generator):
    with pytest.raises(BadConfig, match="--judge MODEL_ID --judge-label LABEL"):
        make_judge("text-generation", None, generator)
    with pytest.raises(BadConfig, match="does not apply"):
        make_judge("text-generation", JudgeConfig(kind="clip", model_id="x"), generator)


def test_classifier_as_judge(generator, tiny_models):
    judge_model = str(tiny_models("text-classification"))
    config = JudgeConfig(kind="classifier", model_id=judge_model, label="positive")
    judge = make_judge("text-generation", config, generator)
    prompts = ["the cat", "Grüße 東京 🚀", ""]
    preds = generator.predict(prompts)
    verdicts = judge.judge([seed(str(i), p) for i, p in enumerate(prompts)], prompts, preds)
    expected = [p.probs[1] for p in judge.model.predict([p.text for p in preds])]
    assert [v.severity for v in verdicts] == pytest.approx(expected)
    assert [v.is_failure for v in verdicts] == [s >= 0.5 for s in expected]
    assert verdicts[0].expected == "not POSITIVE"
    strict = make_judge("text-generation", JudgeConfig(kind="classifier", model_id=judge_model, label="POSITIVE", threshold=0.0), generator)
    assert all(v.is_failure for v in strict.judge([seed("a", "x")], ["x"], preds[:1]))
    with pytest.raises(BadConfig, match="NEGATIVE, POSITIVE"):
        make_judge("text-generation", JudgeConfig(kind="classifier", model_id=judge_model, label="toxic"), generator)


def test_rouge_l_metric():
    assert rouge_l("The cat sat", "the cat sat") == 1.0
    assert rouge_l("dogs run fast", "the cat sat") == 0.0
    assert rouge_l("the cat sat on the mat", "the cat on a mat") == pytest.approx(2 * (4 / 6) * (4 / 5) / (4 / 6 + 4 / 5))
    assert rouge_l("", "") == 1.0 and rouge_l("", "x") == 0.0


def test_rouge_judge_against_clean_and_reference(tiny_models):
    target = load_target(str(tiny_models("summarization")), device="cpu", generation_kwargs={"max_new_tokens": 8})
    doc = "the children play in the garden after school"
    [clean] = target.predict([doc])
    judge = make_judge("summarization", None, target)
    same, unrelated = judge.judge([seed("d", doc)] * 2, [doc, doc], [Prediction(clean.text), Prediction("zebra quantum xylophone")])
    assert not same.is_failure and same.severity == 0.0 and same.expected == clean.text
    assert unrelated.is_failure and unrelated.severity == pytest.approx(1.0 - rouge_l("zebra quantum xylophone", clean.text))
    ref = seed("r", doc, reference="children play in the garden")
    [with_ref] = judge.judge([ref], [doc], [Prediction("children play in the park")])
    baseline = rouge_l(clean.text, ref.reference)
    score = rouge_l("children play in the park", ref.reference)
    assert with_ref.expected == ref.reference and with_ref.is_failure == (score < 0.5 * baseline)
    assert with_ref.severity == pytest.approx(max(0.0, baseline - score))


def test_rouge_judge_relative_to_reference_baseline(tiny_models):
    """With a reference, a perturbation fails when it loses more than (1 - threshold) of the clean quality."""
    target = load_target(str(tiny_models("summarization")), device="cpu", generation_kwargs={"max_new_tokens": 8})
    doc = "the children play in the garden after school"
    [clean] = target.predict([doc])
    assert re.search(r"\w", clean.text), "the tiny summarizer should emit some word tokens"
    ref = seed("r", doc, reference=clean.text + " in the sunny garden")
    baseline = rouge_l(clean.text, ref.reference)
    assert 0.0 < baseline < 1.0
    judge = make_judge("summarization", JudgeConfig(threshold=0.5), target)
    kept, lost = judge.judge([ref, ref], [doc, doc], [Prediction(clean.text), Prediction("zebra quantum")])
    assert not kept.is_failure and kept.severity == pytest.approx(0.0)
    assert lost.is_failure and lost.severity == pytest.approx(baseline)


def test_clip_judge(tiny_models):
    t2i = load_target(str(tiny_models("text-to-image")), device="cpu", generation_kwargs={"num_inference_steps": 2})
    with pytest.raises(BadConfig, match="--clip MODEL_ID"):
        make_judge("text-to-image", None, t2i)
    judge = make_judge("text-to-image", JudgeConfig(model_id=str(tiny_models("clip"))), t2i)
    prompts = ["a photo of a cat", "a red house", "a photo of a man running"]
    preds = t2i.predict(prompts)
    verdicts = judge.judge([seed(str(i), p) for i, p in enumerate(prompts)], prompts, preds)
    for verdict, prompt in zip(verdicts, prompts):
        assert -1.0 <= verdict.score <= 1.0
        assert verdict.severity == pytest.approx(100 * (1 - verdict.score))
        assert verdict.is_failure == (verdict.score < 0.25) and verdict.expected == prompt
    assert judge.similarity([preds[0].image], [prompts[0]]) == pytest.approx([verdicts[0].score], abs=1e-5)


def test_image_classifier_judge_expects_the_shape_the_prompt_names(tiny_models, shapes_model):
    import numpy as np

    from fade_hub.demo.shapes import draw_shape
    from fade_hub.judges.image_classifier import label_pattern

    t2i = load_target(str(tiny_models("text-to-image")), device="cpu", generation_kwargs={"num_inference_steps": 2})
    with pytest.raises(BadConfig, match="--judge MODEL_ID"):
        make_judge("text-to-image", JudgeConfig(kind="image-classifier"), t2i)
    judge = make_judge("text-to-image", JudgeConfig(kind="classifier", model_id=str(shapes_model)), t2i)
    assert judge.name == "image-classifier"  # --judge MODEL_ID on text-to-image: an image classifier
    rng = np.random.default_rng(0)
    square, circle = draw_shape("square", rng), draw_shape("circle", rng)
    prompts = ["a drawing of a fancy square", "two Squares", "a fancy square", "a dog", "a circle in a square"]
    images = [square, square, circle, square, circle]
    preds = [Prediction("<image>", image=image) for image in images]
    right, plural, wrong, none, both = judge.judge([seed(str(i), p) for i, p in enumerate(prompts)], prompts, preds)
    assert not right.is_failure and right.expected == "square" and right.score > 0.5 and right.judged
    assert not plural.is_failure and plural.expected == "square"
    assert wrong.is_failure and wrong.expected == "square" and wrong.severity > 0 and wrong.score < 0.5
    assert not none.judged and not both.judged and "none or several" in none.expected_source
    strict = make_judge("text-to-image", JudgeConfig(kind="classifier", model_id=str(shapes_model), threshold=0.999),
                        t2i)
    assert strict.judge([seed("s", prompts[0])], prompts[:1], preds[:1])[0].is_failure == (right.score < 0.999)
    assert judge.describe()["labels"] == ["circle", "square", "triangle"]
    assert label_pattern("traffic_light").search("a red traffic light") and not label_pattern("cat").search("a catalog")
    with pytest.raises(BadConfig, match="does not apply"):
        make_judge("image-classification", JudgeConfig(kind="image-classifier"), t2i)


def test_explore_options_select_the_image_classifier_judge():
    from fade_hub.explore import ExploreConfig
    from fade_hub.assembly import judge_config

    chosen = judge_config(ExploreConfig(model="user/sd", judge="user/shapes", judge_threshold=0.6))
    assert (chosen.kind, chosen.model_id, chosen.threshold) == ("classifier", "user/shapes", 0.6)
    clip = judge_config(ExploreConfig(model="user/sd", clip="user/clip"))
    assert (clip.kind, clip.model_id) == (None, "user/clip")
    with pytest.raises(BadConfig, match="pass one of them"):
        ExploreConfig(model="user/sd", clip="user/clip", judge="user/shapes").validate()
