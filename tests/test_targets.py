"""Targets: task detection, loading local folders and Hub repos, batched prediction, typed errors."""

from __future__ import annotations

import json
from contextlib import contextmanager

import pytest
import torch
from PIL import Image

from fade_hub.errors import HubUnreachable, ModelNotFound, RemoteCodeRequired, UnsupportedTask
from fade_hub.targets import Prediction, detect_task, load_target
from fade_hub.tasks import TASKS
from fade_hub.targets.source import select_files

ODD_TEXTS = ["", "Grüße 東京 🚀", "the quick brown fox " * 200]


@contextmanager
def count_calls(module: torch.nn.Module):
    """Record the batch size of every forward call of ``module`` (an observing hook)."""
    sizes: list[int] = []

    def hook(_mod, args, kwargs):
        first = args[0] if args else next(v for v in kwargs.values() if isinstance(v, torch.Tensor))
        sizes.append(first.shape[0])

    handle = module.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield sizes
    finally:
        handle.remove()


def _images() -> list[Image.Image]:
    return [Image.new("RGB", (48, 40), color) for color in ((250, 10, 10), (10, 250, 10), (10, 10, 250))]


@pytest.mark.parametrize("task", TASKS)
def test_detect_task_from_local_folder(tiny_models, task):
    assert detect_task(str(tiny_models(task))) == task


def test_image_classifier_one_forward_per_batch(tiny_models):
    target = load_target(str(tiny_models("image-classification")), device="cpu")
    assert (target.task, target.modality, target.commit_sha) == ("image-classification", "image", None)
    assert target.id2label == {0: "circle", 1: "square", 2: "triangle"}
    with count_calls(target.model) as sizes:
        out = target.predict(_images())
    assert sizes == [3]
    assert len(out) == 3 and all(isinstance(p, Prediction) for p in out)
    for p in out:
        assert p.text == target.id2label[p.label]
        assert p.score == pytest.approx(max(p.probs)) and sum(p.probs) == pytest.approx(1.0, abs=1e-5)
    target.batch_size = 2
    with count_calls(target.model) as sizes:
        again = target.predict(_images())
    assert sizes == [2, 1]
    assert [p.label for p in again] == [p.label for p in out]
    assert target.describe()["dtype"] == "float32"


def test_text_classifier_batches_and_odd_text(tiny_models):
    target = load_target(str(tiny_models("text-classification")), device="cpu")
    assert target.modality == "text"
    with count_calls(target.model) as sizes:
        out = target.predict(ODD_TEXTS)
    assert sizes == [3]
    assert {p.text for p in out} <= {"NEGATIVE", "POSITIVE"}
    assert all(0.0 <= p.score <= 1.0 for p in out)


def test_text_generator_greedy_left_padded(tiny_models):
    target = load_target(str(tiny_models("text-generation")), device="cpu", generation_kwargs={"max_new_tokens": 6})
    assert target.processor.padding_side == "left"
    prompts = ["the cat", "a painting of a house near the river", "hello"]
    with count_calls(target.model) as sizes:
        out = target.predict(prompts)
    assert len(sizes) <= 6 and set(sizes) == {3}  # one generate: every decoding step sees the whole batch
    assert all(isinstance(p.text, str) and not p.text.startswith(prompts[i]) for i, p in enumerate(out))
    assert [p.text for p in target.predict(prompts)] == [p.text for p in out]
    alone = target.predict(prompts[:1])[0].text
    assert alone == out[0].text  # left padding keeps the answer independent of the batch
    assert len(target.predict(ODD_TEXTS)) == 3
    long_prompt = "one two three " * 100 + "the cat"
    tail = target.processor.decode(target.processor(long_prompt)["input_ids"][-target.max_length :])
    assert target.predict([long_prompt])[0].text == target.predict([tail])[0].text  # truncation keeps the end
    assert target.describe()["generation_kwargs"] == {"do_sample": False, "max_new_tokens": 6}


def test_summarizer_batches(tiny_models):
    target = load_target(str(tiny_models("summarization")), device="cpu")
    docs = ["the children play in the garden after school", "scientists found water on a distant planet", ""]
    with count_calls(target.model.get_encoder()) as sizes:
        out = target.predict(docs)
    assert sizes == [3]
    assert len(out) == 3 and any(p.text for p in out)
    assert [p.text for p in target.predict(docs)] == [p.text for p in out]


def test_text_to_image_seeded_per_prompt(tiny_models):
    target = load_target(str(tiny_models("text-to-image")), device="cpu", generation_kwargs={"num_inference_steps": 2})
    assert target.modality == "prompt"
    prompts = ["a photo of a cat", "a red house", "a photo of a cat"]
    with count_calls(target.model) as sizes:
        out = target.predict(prompts)
    assert len(sizes) == 2 and set(sizes) == {6}  # 2 steps, 3 prompts x classifier-free guidance
    assert all(p.image.size == (32, 32) and p.image.mode == "RGB" and p.text == "<image>" for p in out)
    pixels = [p.image.tobytes() for p in out]
    assert pixels[0] == pixels[2] and pixels[0] != pixels[1]
    assert target.predict(prompts[1:2])[0].image.tobytes() == pixels[1]


def test_task_override_and_unknown_task(tiny_models):
    folder = str(tiny_models("text-classification"))
    with pytest.raises(UnsupportedTask, match="choose one of"):
        load_target(folder, task="translation")


def test_nonexistent_path_is_model_not_found(tmp_path):
    with pytest.raises(ModelNotFound, match="model folder .* does not exist"):
        load_target(str(tmp_path / "no-such-model"))
    with pytest.raises(ModelNotFound, match="no config.json"):
        load_target(str(tmp_path))


def test_audio_model_is_unsupported(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["Wav2Vec2ForCTC"], "model_type": "wav2vec2"}))
    with pytest.raises(UnsupportedTask, match="automatic-speech-recognition.*--task"):
        detect_task(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mystery"}))
    with pytest.raises(UnsupportedTask, match="could not detect"):
        load_target(str(tmp_path))


def test_remote_code_needs_flag(tiny_models):
    folder = str(tiny_models("remote-code"))
    with pytest.raises(RemoteCodeRequired, match="--trust-remote-code"):
        load_target(folder)
    target = load_target(folder, trust_remote_code=True, device="cpu")
    assert type(target.model).__name__ == "FadeTinyForImageClassification"
    assert len(target.predict(_images()[:2])) == 2


def test_file_selection_prefers_safetensors():
    files = ["config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json"]
    assert sorted(select_files(files, diffusers=False)) == ["config.json", "model.safetensors", "tokenizer.json"]
    pipe = ["model_index.json", "v1-5.ckpt", "v1-5.safetensors", "unet/config.json",
            "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
            "safety_checker/pytorch_model.bin"]  # fmt: skip
    assert sorted(select_files(pipe, diffusers=True)) == [
        "model_index.json", "safety_checker/pytorch_model.bin", "unet/config.json", "unet/diffusion_pytorch_model.safetensors"
    ]  # fmt: skip


def test_hub_repo_pins_commit_sha(hub, tiny_models):
    from huggingface_hub import HfApi

    api = HfApi()
    repo = "tester/tiny-sentiment"
    api.create_repo(repo, exist_ok=True)
    api.upload_folder(repo_id=repo, folder_path=tiny_models("text-classification"))
    sha = api.repo_info(repo).sha
    assert detect_task(repo) == "text-classification"
    target = load_target(repo, device="cpu")
    assert target.commit_sha == sha and target.model_id == repo
    assert target.describe()["commit_sha"] == sha
    assert len(target.predict(["great movie", "bad movie"])) == 2
    with pytest.raises(ModelNotFound, match="not on the Hub"):
        load_target("tester/does-not-exist")


def test_unknown_revision_is_model_not_found(hub, tiny_models):
    from huggingface_hub import HfApi

    HfApi().create_repo("tester/tiny-shapes", exist_ok=True)
    HfApi().upload_folder(repo_id="tester/tiny-shapes", folder_path=tiny_models("image-classification"))
    with pytest.raises(ModelNotFound, match="revision 'no-such-branch'"):
        load_target("tester/tiny-shapes", revision="no-such-branch")


def test_unreachable_hub(monkeypatch):
    import socket

    from huggingface_hub import constants

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setattr(constants, "ENDPOINT", dead)
    with pytest.raises(HubUnreachable, match=f"not a local folder and the Hub at {dead} could not be reached"):
        load_target("someone/some-model")


def test_unreachable_hub_falls_back_to_cached_snapshot(hub, tiny_models, monkeypatch):
    from huggingface_hub import HfApi, constants

    repo = "tester/tiny-cached"
    HfApi().create_repo(repo, exist_ok=True)
    HfApi().upload_folder(repo_id=repo, folder_path=tiny_models("text-classification"))
    online = load_target(repo, device="cpu")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    offline = load_target(repo, device="cpu")
    assert offline.commit_sha == online.commit_sha and offline.model_id == repo
    assert offline.predict(["fine"])[0].probs == pytest.approx(online.predict(["fine"])[0].probs)
