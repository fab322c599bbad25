"""Big local models on this CPU machine: --device auto falls back, --dtype, --batch-size auto, out-of-memory back-off.

The out-of-memory error is the allocator's own ``torch.OutOfMemoryError``, raised from a forward hook on the
real tiny model for batches above a size, as a GPU raises it when a batch does not fit.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager

import pytest
import torch
from PIL import Image

from fade_hub.cli import main
from fade_hub.errors import BadConfig
from fade_hub.targets import load_target
from fade_hub.targets.batching import CPU_BATCH_LIMIT, largest_fitting, probe_inputs
from fade_hub.targets.placement import HEADROOM, needs_device_map, weights_bytes

OOM_MESSAGE = "CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 15.78 GiB total capacity)"


@contextmanager
def out_of_memory_above(module: torch.nn.Module, limit: int):
    """Make ``module`` raise the allocator's OutOfMemoryError for batches larger than ``limit``; record batch sizes."""
    seen: list[int] = []

    def hook(_module, args, kwargs):
        first = args[0] if args else next(v for v in kwargs.values() if isinstance(v, torch.Tensor))
        seen.append(first.shape[0])
        if first.shape[0] > limit:
            raise torch.OutOfMemoryError(OOM_MESSAGE)

    handle = module.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield seen
    finally:
        handle.remove()


def _images(count: int) -> list[Image.Image]:
    return [Image.new("RGB", (40 + i, 36), (20 * i % 255, 90, 200)) for i in range(count)]


def test_device_auto_falls_back_to_the_cpu(tiny_models):
    target = load_target(str(tiny_models("image-classification")), device="auto")
    assert target.device == "cpu" and target.device_map is None
    assert next(target.model.parameters()).device.type == "cpu"
    described = target.describe()
    assert described["device"] == "cpu" and "device_map" not in described
    assert len(target.predict(_images(3))) == 3


@pytest.mark.parametrize(("device", "needle"), [("cuda", "no CUDA GPU is visible"), ("cuda:3", "no CUDA GPU"),
                                                ("tpu:0", "is not a device"), ("mps", "MPS is not available")])  # fmt: skip
def test_a_device_this_machine_lacks_is_a_one_line_error(device, needle, tiny_models):
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this machine has an accelerator")
    with pytest.raises(BadConfig, match=needle):
        load_target(str(tiny_models("text-classification")), device=device)


def test_spreading_over_devices_only_for_auto_and_only_when_needed():
    gib = 1024**3
    assert needs_device_map("auto", 10 * gib, 8 * gib) and needs_device_map(None, 10 * gib, 8 * gib)
    assert not needs_device_map("auto", 5 * gib, 8 * gib)  # fits with headroom
    assert needs_device_map("auto", int(8 * gib / HEADROOM) + 1, 8 * gib)  # weights fit, activations would not
    assert not needs_device_map("cuda:1", 10 * gib, 8 * gib)  # a named device is used as given
    assert not needs_device_map("auto", 10 * gib, None)  # cpu / mps: never split


def test_weight_bytes_are_read_from_the_safetensors_headers(tiny_models):
    folder = tiny_models("text-classification")
    model = load_target(str(folder), device="cpu").model
    loaded = sum(p.numel() * p.element_size() for p in model.parameters())
    assert weights_bytes(folder) == weights_bytes(folder, torch.float32) >= loaded  # buffers are stored too
    assert weights_bytes(folder, torch.bfloat16) < weights_bytes(folder)


@pytest.mark.parametrize(("dtype", "expected"), [("auto", torch.float32), ("bfloat16", torch.bfloat16),
                                                 ("float16", torch.float16)])  # fmt: skip
def test_dtype_option(dtype, expected, tiny_models):
    target = load_target(str(tiny_models("image-classification")), device="cpu", dtype=dtype)
    assert target.model.dtype == expected and target.describe()["dtype"] == str(expected).removeprefix("torch.")
    predictions = target.predict(_images(2))
    assert all(p.text in ("circle", "square", "triangle") for p in predictions)
    with pytest.raises(BadConfig, match="dtype 'int8' not supported"):
        load_target(str(tiny_models("image-classification")), device="cpu", dtype="int8")


def test_batch_size_auto_finds_the_largest_batch_that_fits(tiny_models):
    target = load_target(str(tiny_models("image-classification")), device="cpu", batch_size="auto")
    assert target.batch_pending
    with out_of_memory_above(target.model, 5) as seen:
        assert target.find_batch_size(_images(3)) == 5
    assert seen == [1, 2, 4, 8, 6, 5]  # doubling up to the first failure, then bisecting
    assert target.describe()["batch_size"] == 5 and not target.batch_pending
    reference = load_target(str(tiny_models("image-classification")), device="cpu", batch_size=64).predict(_images(13))
    with out_of_memory_above(target.model, 5) as seen:
        out = target.predict(_images(13))
    assert seen == [5, 5, 3]
    assert [p.label for p in out] == [p.label for p in reference]
    assert [p.score for p in out] == pytest.approx([p.score for p in reference], abs=1e-5)


def test_batch_size_auto_without_memory_pressure_stops_at_the_cpu_limit(tiny_models):
    target = load_target(str(tiny_models("text-classification")), device="cpu", batch_size="auto")
    out = target.predict(["a short one", "a much longer sentence about the weather tomorrow"])  # resolved on first use
    assert target.batch_size == CPU_BATCH_LIMIT and len(out) == 2


def test_a_batch_that_runs_out_of_memory_is_halved_and_nothing_is_lost(tiny_models, caplog):
    target = load_target(str(tiny_models("text-generation")), device="cpu", batch_size=8,
                         generation_kwargs={"max_new_tokens": 3})  # fmt: skip
    prompts = [f"the cat number {i}" for i in range(8)]
    reference = load_target(str(tiny_models("text-generation")), device="cpu", batch_size=2,
                            generation_kwargs={"max_new_tokens": 3}).predict(prompts)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="fade_hub.targets.base"), out_of_memory_above(target.model, 3) as seen:
        out = target.predict(prompts)
    assert [p.text for p in out] == [p.text for p in reference]
    assert target.batch_size == 2 and seen[0] == 8 and seen[1] == 4
    assert "out of memory at batch size 8 on cpu: retrying with 4" in caplog.text
    with out_of_memory_above(target.model, 0), pytest.raises(BadConfig, match="out of memory on cpu even for one input"):
        target.predict(prompts[:2])


def test_largest_fitting_is_exact_for_every_limit():
    for limit in range(1, 40):
        for fits_up_to in range(0, 45):
            assert largest_fitting(lambda n, k=fits_up_to: n <= k, limit) == min(fits_up_to, limit)
    assert probe_inputs(["ab", "abcdef", "abc"], 3) == ["abcdef"] * 3


def test_cli_device_auto_and_batch_size_auto(tiny_models, shape_seeds, small_space, tmp_path, capsys):
    output = tmp_path / "run"
    flags = ["explore", str(tiny_models("image-classification")), "--seeds", str(shape_seeds), "--concepts", str(small_space),
             "--algorithm", "random", "--budget", "12", "--device", "auto", "--dtype", "auto", "--batch-size", "auto",
             "--confirm-top", "0", "--output", str(output), "--no-progress"]  # fmt: skip
    assert main(flags) == 0, capsys.readouterr().err
    meta = json.loads((output / "run.json").read_text())
    assert meta["target"]["device"] == "cpu" and meta["target"]["batch_size"] == CPU_BATCH_LIMIT
    assert meta["target"]["dtype"] == "float32" and meta["config"]["target"]["batch_size"] == "auto"
    capsys.readouterr()
    assert main([*flags[:-3], "--device", "cuda:0", "--output", str(tmp_path / "gpu"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --device cuda:0: no CUDA GPU is visible here; use --device auto or cpu"] or torch.cuda.is_available()
