"""The tiny model factory: every kind builds offline, reloads with its Auto class, and runs."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from fade_hub.testing import tiny


def _image(color=(200, 30, 30)) -> Image.Image:
    return Image.new("RGB", (40, 40), color)


def test_image_classification_reloads(tiny_models):
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    folder = tiny_models("image-classification")
    assert (folder / "model.safetensors").is_file()
    model = AutoModelForImageClassification.from_pretrained(folder, use_safetensors=True).eval()
    processor = AutoImageProcessor.from_pretrained(folder)
    batch = processor(images=[_image(), _image((0, 0, 255))], return_tensors="pt")
    with torch.inference_mode():
        logits = model(**batch).logits
    assert logits.shape == (2, 3)
    assert model.config.id2label == tiny.SHAPE_LABELS


def test_text_classification_reloads(tiny_models):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = tiny_models("text-classification")
    model = AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    batch = tokenizer(["this movie was great", "", "Grüße 東京 🚀"], padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**batch).logits
    assert logits.shape == (3, 2)
    assert set(model.config.id2label.values()) == {"NEGATIVE", "POSITIVE"}
    assert tokenizer.convert_ids_to_tokens(tokenizer("the dog")["input_ids"]) == ["[CLS]", "the", "dog", "[SEP]"]


def test_text_generation_reloads(tiny_models):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_models("text-generation")
    model = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.pad_token is not None
    text = "the quick brown fox"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    batch = tokenizer([text, "hi"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**batch, do_sample=False, max_new_tokens=5)
    assert out.shape[0] == 2 and out.shape[1] <= batch["input_ids"].shape[1] + 5


def test_summarization_reloads(tiny_models):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    folder = tiny_models("summarization")
    model = AutoModelForSeq2SeqLM.from_pretrained(folder, use_safetensors=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    batch = tokenizer(["the children play in the garden after school"], return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**batch, do_sample=False)
    assert 1 < out.shape[1] <= 17
    assert model.config.is_encoder_decoder


def test_text_to_image_reloads(tiny_models):
    from diffusers import DiffusionPipeline

    folder = tiny_models("text-to-image")
    pipe = DiffusionPipeline.from_pretrained(folder, use_safetensors=True)
    assert pipe.tokenizer.model_max_length == 77
    gen = torch.Generator().manual_seed(0)
    image = pipe("a photo of a cat", num_inference_steps=2, generator=gen, output_type="pil").images[0]
    assert image.size == (32, 32)


def test_clip_reloads(tiny_models):
    from transformers import CLIPModel, CLIPProcessor

    folder = tiny_models("clip")
    model = CLIPModel.from_pretrained(folder, use_safetensors=True).eval()
    processor = CLIPProcessor.from_pretrained(folder)
    batch = processor(text=["a red square", "a cat"], images=[_image(), _image()], return_tensors="pt", padding=True)
    with torch.inference_mode():
        out = model(**batch)
    assert out.logits_per_image.shape == (2, 2)


def test_remote_code_needs_trust(tiny_models):
    from transformers import AutoModelForImageClassification

    folder = tiny_models("remote-code")
    assert "auto_map" in json.loads((folder / "config.json").read_text())
    with pytest.raises(ValueError, match="trust_remote_code"):
        AutoModelForImageClassification.from_pretrained(folder)
    model = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True)
    assert type(model).__name__ == "FadeTinyForImageClassification"


def test_build_is_idempotent_and_rejects_foreign_folder(tiny_models, tmp_path):
    folder = tiny_models("text-classification")
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert tiny.build("text-classification", folder) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        tiny.build("clip", tmp_path)
    with pytest.raises(ValueError, match="unknown tiny model kind"):
        tiny.build("audio", tmp_path / "x")
