"""Queries per second of ``FailureEnv.evaluate`` against the raw batched model, side by side, on CPU or a GPU.

Builds a randomly initialised ViT classifier (``ViTConfig()`` defaults: ViT-base, 224x224, patch 16;
``--small`` for a tiny one) and a labelled image-folder of seeds in a temp dir, loads them through
fade-hub's real ``load_target`` / ``load_seeds``, and times:

* env: ``FailureEnv.evaluate`` on batches of (action, seed) pairs: perturb + preprocess + forward + judge;
* raw: the same model loaded with plain transformers, ``processor(images) + model(**inputs)`` under
  ``torch.inference_mode()`` on the same images already perturbed (the perturbation is not timed).
  The image processor counts as raw work: any caller of the model has to preprocess too.

Both run the same batches, interleaved batch by batch (which side goes first alternates, so load
drifts hit both); each repeat sums each side's time, and the medians over repeats are reported with
their ratio ``env / raw`` (target >= 0.8). Nothing reaches the network; everything but the results JSON
is written to a temp dir.

``--model causal-lm`` measures a ~1B-parameter Llama-shaped language model instead (``throughput_lm.py``:
generation on both sides). ``--device`` (auto, cpu, cuda, cuda:N) and ``--dtype`` place both sides alike;
``--batch-size auto`` lets the target find the largest batch that fits the device, and the raw side runs
the same batches. On a GPU, for example:

    python benchmarks/env_throughput.py --device cuda --dtype bfloat16 --batch-size auto
    python benchmarks/env_throughput.py --model causal-lm --device cuda --dtype bfloat16 --batch-size auto
    python benchmarks/env_throughput.py [--queries 128] [--batch-size 16] [--repeats 3] [--small]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import throughput_lm  # noqa: E402 - the sibling workload module (run as a script from benchmarks/)

from fade_hub.choices import DTYPE_CHOICES  # a leaf: importing it loads no Hugging Face library

logger = logging.getLogger("env_throughput")

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "env_throughput.json"
TARGET_RATIO = 0.8
LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SPACE = "builtin:image-default"
RAW_DEFINITION = (
    "image processor + model forward under torch.inference_mode(), same batches, on the images already "
    "perturbed (perturbation not timed); the processor counts as raw work because the target must preprocess too"
)
ENV_DEFINITION = "FailureEnv.evaluate: perturb + image processor + forward + softmax + judge, one call per batch"


@dataclass
class BenchConfig:
    """What to measure: model size, seeds, batches and repetitions."""

    queries: int = 128
    batch_size: int | str = 16
    repeats: int = 3
    small: bool = False
    model: str = "vit"
    device: str = "cpu"
    dtype: str | None = None
    num_seeds: int = 32
    seed: int = 0
    output: Path = DEFAULT_OUTPUT


@dataclass
class Timings:
    """Seconds per repetition for each side, plus the raw side's processor / forward split."""

    env: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    raw_processor: list[float] = field(default_factory=list)
    raw_forward: list[float] = field(default_factory=list)


def offline_env(tmp: Path) -> dict[str, str]:
    """Environment that keeps Hugging Face libraries off the network and their caches inside ``tmp``."""
    return {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HOME": str(tmp / "hf_home"),
        "FADE_HUB_CACHE": str(tmp / "fade_cache"),
        "MPLCONFIGDIR": str(tmp / "mpl"),
        "TORCHINDUCTOR_CACHE_DIR": str(tmp / "inductor"),
        "TOKENIZERS_PARALLELISM": "false",
    }


def vit_config(small: bool) -> Any:
    """ViT-base (``ViTConfig()`` defaults) or, with ``small``, a tiny ViT; 10 labels either way."""
    from transformers import ViTConfig

    id2label = dict(enumerate(LABELS))
    label2id = {name: i for i, name in id2label.items()}
    if small:
        return ViTConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            image_size=32, patch_size=8, id2label=id2label, label2id=label2id,
        )  # fmt: skip
    return ViTConfig(id2label=id2label, label2id=label2id)


def build_model(folder: Path, small: bool, seed: int) -> dict[str, Any]:
    """Save a randomly initialised ViT classifier and its image processor to ``folder``; returns its shape."""
    import torch
    from transformers import ViTForImageClassification, ViTImageProcessor

    config = vit_config(small)
    torch.manual_seed(seed)
    model = ViTForImageClassification(config)
    model.save_pretrained(folder, safe_serialization=True)
    size = config.image_size
    ViTImageProcessor(size={"height": size, "width": size}).save_pretrained(folder)
    return {
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers,
        "image_size": size,
        "patch_size": config.patch_size,
        "num_labels": config.num_labels,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def build_seed_folder(folder: Path, count: int, image_size: int, seed: int) -> tuple[int, int]:
    """Write ``count`` labelled PNGs (``LABEL/NNN.png``, a little larger than the model input); returns their size."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    width, height = round(image_size * 1.15), round(image_size * 1.05)
    ys, xs = np.mgrid[0:height, 0:width]
    for i in range(count):
        label = LABELS[i % len(LABELS)]
        base = rng.uniform(0, 255, 3) * (xs[..., None] / width) + rng.uniform(0, 255, 3) * (ys[..., None] / height)
        pixels = np.clip(base / 2 + rng.normal(0, 24, (height, width, 3)), 0, 255).astype(np.uint8)
        (folder / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, mode="RGB").save(folder / label / f"{i:03d}.png")
    return width, height


def query_pairs(space: Any, seed_ids: list[str], count: int, seed: int) -> list[tuple[tuple[int, ...], str]]:
    """``count`` (action, seed id) pairs: uniformly random cells, seeds taken round-robin."""
    import numpy as np

    rng = np.random.default_rng(seed)
    cells = rng.integers(0, space.shape, size=(count, len(space.shape)))
    return [(tuple(int(v) for v in cell), seed_ids[i % len(seed_ids)]) for i, cell in enumerate(cells)]


def chunks(items: list, size: int) -> list[list]:
    """Consecutive chunks of at most ``size`` items."""
    return [items[start : start + size] for start in range(0, len(items), size)]


def time_env(env: Any, batch: list[tuple[tuple[int, ...], str]]) -> float:
    """Seconds for one ``env.evaluate`` call on a batch of (action, seed id) pairs."""
    start = time.perf_counter()
    env.evaluate([action for action, _ in batch], [seed_id for _, seed_id in batch])
    return time.perf_counter() - start


def time_raw(model: Any, processor: Any, images: list[Any], device: str) -> tuple[float, float]:
    """Seconds for the processor and for the forward pass (answers back on the CPU) on one batch of images."""
    import torch

    with torch.inference_mode():
        t0 = time.perf_counter()
        inputs = processor(images=images, return_tensors="pt")
        t1 = time.perf_counter()
        model(pixel_values=inputs["pixel_values"].to(device, model.dtype)).logits.argmax(dim=-1).cpu()
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def run_repeat(
    env: Any, raw: Callable[[list[Any]], tuple[float, float]], env_batches: list, raw_batches: list, rep: int,
    timings: Timings,
) -> None:
    """One pass over all batches, env and raw interleaved batch by batch, the first side alternating."""
    env_s = processing = forward = 0.0
    for i, (env_batch, images) in enumerate(zip(env_batches, raw_batches, strict=True)):
        for side in ("env", "raw") if (rep + i) % 2 == 0 else ("raw", "env"):
            if side == "env":
                env_s += time_env(env, env_batch)
            else:
                p, f = raw(images)
                processing, forward = processing + p, forward + f
    timings.env.append(env_s)
    timings.raw.append(processing + forward)
    timings.raw_processor.append(processing)
    timings.raw_forward.append(forward)


def machine_info() -> dict[str, Any]:
    """Versions and CPU facts that the figures depend on."""
    from importlib.metadata import version

    import torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "transformers": version("transformers"),
        "pillow": version("pillow"),
        "fade_hub": version("fade-hub"),
    }


@dataclass
class Bench:
    """Everything one measurement needs: the env, the raw side (one batch -> its seconds), and the query batches."""

    env: Any
    raw: Callable[[list[Any]], tuple[float, float]]
    env_batches: list[list[tuple[tuple[int, ...], str]]]
    raw_batches: list[list[Any]]
    perturb_ms: float
    setup: dict[str, Any]
    definitions: tuple[str, str] = (ENV_DEFINITION, RAW_DEFINITION)


def build_bench(config: BenchConfig, tmp: Path) -> Bench:
    """Model and seeds in ``tmp``, the env through fade-hub's loaders, the raw model and pre-perturbed batches."""
    from fade_hub.env import FailureEnv, perturbation_seed
    from fade_hub.judges import JudgeConfig, make_judge
    from fade_hub.perturb import load_space
    from fade_hub.seeds import SeedConfig, load_seeds
    from fade_hub.targets import load_target

    model_dir, seed_dir = tmp / "model", tmp / "seeds"
    lm = config.model == "causal-lm"
    if lm:
        model_info, seed_source, space_name = throughput_lm.build_causal_lm(model_dir, config.small, config.seed), \
            throughput_lm.SEEDS, throughput_lm.SPACE  # fmt: skip
        judge = JudgeConfig(kind="keywords", keywords=list(throughput_lm.KEYWORDS))
    else:
        model_info, space_name, judge = build_model(model_dir, config.small, config.seed), SPACE, None
        image_size = build_seed_folder(seed_dir, config.num_seeds, model_info["image_size"], config.seed)
        model_info["seed_image_size"], seed_source = list(image_size), str(seed_dir)

    target = load_target(
        str(model_dir), task="text-generation" if lm else "image-classification", device=config.device,
        dtype=config.dtype, batch_size=config.batch_size,
        generation_kwargs={"max_new_tokens": throughput_lm.MAX_NEW_TOKENS} if lm else None,
    )  # fmt: skip
    space = load_space(space_name)
    seeds = load_seeds(SeedConfig(seed_source, num_seeds=config.num_seeds), target.modality, target.id2label)
    if target.batch_pending:
        target.find_batch_size([s.input for s in seeds])
    batch = target.batch_size
    env = FailureEnv(target, make_judge(target.task, judge, target), space, seeds, seed=config.seed)

    pairs = query_pairs(space, [s.seed_id for s in seeds], batch + config.queries, config.seed)
    start = time.perf_counter()
    perturbed = [
        space.apply(env.seed_by_id[sid].input, cell, seed=perturbation_seed(config.seed, sid, space.action_id(cell)))
        for cell, sid in pairs
    ]
    perturb_ms = 1000 * (time.perf_counter() - start) / len(pairs)
    if lm:
        model_name = "small Llama-shaped LM" if config.small else "~1B-parameter Llama-shaped LM (TinyLlama shape)"
    else:
        model_name = "small ViT" if config.small else "ViT-base (ViTConfig() defaults)"
    setup = {
        "model": model_name + ", random init",
        **model_info,
        "device": target.device,
        "dtype": target.dtype,
        "space": space_name,
        "space_cells": space.num_cells,
        "seeds": len(seeds),
        "queries": config.queries,
        "batch_size": batch,
        "batch_size_requested": config.batch_size,
        "warmup_queries": batch,
        "repeats": config.repeats,
        "statistic": "median over repeats; env and raw interleaved batch by batch, alternating which goes first",
    }
    return Bench(
        env=env,
        raw=raw_side(model_dir, lm, target.device, target.model.dtype),
        env_batches=chunks(pairs, batch),
        raw_batches=chunks(perturbed, batch),
        perturb_ms=perturb_ms,
        setup=setup,
        definitions=(throughput_lm.ENV_DEFINITION, throughput_lm.RAW_DEFINITION) if lm else (ENV_DEFINITION, RAW_DEFINITION),
    )


def raw_side(model_dir: Path, lm: bool, device: str, dtype: Any) -> Callable[[list[Any]], tuple[float, float]]:
    """The same model loaded with plain transformers on the target's device and dtype, as one batch -> seconds."""
    if lm:
        model, tokenizer = throughput_lm.load_raw(model_dir, device, dtype)
        return lambda prompts: throughput_lm.time_raw(model, tokenizer, prompts, device)
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(model_dir, dtype=dtype).to(device).eval()
    processor = AutoImageProcessor.from_pretrained(model_dir)
    return lambda images: time_raw(model, processor, images, device)


def run(bench: Bench, repeats: int) -> Timings:
    """One warm-up batch on each side, then ``repeats`` interleaved passes over the remaining batches."""
    time_env(bench.env, bench.env_batches[0])
    bench.raw(bench.raw_batches[0])
    timings = Timings()
    for rep in range(repeats):
        run_repeat(bench.env, bench.raw, bench.env_batches[1:], bench.raw_batches[1:], rep, timings)
        logger.info("repeat %d: env %.2f s, raw %.2f s", rep + 1, timings.env[-1], timings.raw[-1])
    return timings


def summarise(bench: Bench, timings: Timings, queries: int) -> dict[str, Any]:
    """The result record: median throughputs, their ratio, per-repeat figures, breakdown, setup and machine."""
    env_qps = [queries / s for s in timings.env]
    raw_qps = [queries / s for s in timings.raw]
    ratio = statistics.median(env_qps) / statistics.median(raw_qps)
    return {
        "env_qps": round(statistics.median(env_qps), 3),
        "raw_qps": round(statistics.median(raw_qps), 3),
        "ratio": round(ratio, 4),
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio >= TARGET_RATIO,
        "env_qps_runs": [round(q, 3) for q in env_qps],
        "raw_qps_runs": [round(q, 3) for q in raw_qps],
        "ratio_runs": [round(e / r, 4) for e, r in zip(env_qps, raw_qps)],
        "breakdown_ms_per_query": {
            "perturb": round(bench.perturb_ms, 3),
            "raw_processor": round(1000 * statistics.median(timings.raw_processor) / queries, 3),
            "raw_forward": round(1000 * statistics.median(timings.raw_forward) / queries, 3),
            "env_total": round(1000 * statistics.median(timings.env) / queries, 3),
        },
        "env_definition": bench.definitions[0],
        "raw_definition": bench.definitions[1],
        "setup": bench.setup,
        "machine": machine_info(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def report(result: dict[str, Any]) -> str:
    """The figures as a few plain lines for stdout."""
    setup, parts = result["setup"], result["breakdown_ms_per_query"]
    return "\n".join(
        [
            f"model: {setup['model']}, {setup['parameters'] / 1e6:.2f}M params, {setup['dtype']} on {setup['device']}; "
            f"{setup['queries']} queries, batch {setup['batch_size']} (asked: {setup['batch_size_requested']}), "
            f"{setup['repeats']} repeats, "
            f"{result['machine']['torch_threads']} torch threads / {result['machine']['cpu_count']} CPUs",
            f"env (FailureEnv.evaluate):        {result['env_qps']:.2f} queries/s  runs {result['env_qps_runs']}",
            f"raw (preprocess + model):         {result['raw_qps']:.2f} queries/s  runs {result['raw_qps_runs']}",
            f"per query: perturb {parts['perturb']:.2f} ms, raw processor {parts['raw_processor']:.2f} ms, "
            f"raw forward {parts['raw_forward']:.2f} ms, env total {parts['env_total']:.2f} ms",
            f"ratio env / raw: {result['ratio']:.3f} (target >= {result['target_ratio']}: "
            f"{'met' if result['meets_target'] else 'NOT met'}; per repeat {result['ratio_runs']})",
        ]
    )


def batch_size_arg(text: str) -> int | str:
    """``--batch-size``: a whole number or ``auto``."""
    return "auto" if text.strip().lower() == "auto" else int(text)


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    """Command-line flags as a ``BenchConfig``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=BenchConfig.queries, help="timed queries per repeat")
    parser.add_argument("--batch-size", type=batch_size_arg, default=BenchConfig.batch_size,
                        help="queries per batch, or auto: the largest batch that fits the device")
    parser.add_argument("--repeats", type=int, default=BenchConfig.repeats, help="alternating repetitions")
    parser.add_argument("--model", choices=("vit", "causal-lm"), default="vit", help="the workload")
    parser.add_argument("--small", action="store_true", help="a tiny model instead of the real-size one (smoke run)")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N (both sides)")
    parser.add_argument("--dtype", choices=DTYPE_CHOICES, default=None, help="weights dtype (default float32)")
    parser.add_argument("--num-seeds", type=int, default=BenchConfig.num_seeds, help="seed inputs to use")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the results JSON")
    args = parser.parse_args(argv)
    for name in ("queries", "batch_size", "repeats", "num_seeds"):
        if getattr(args, name) != "auto" and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    output = args.output
    if args.model == "causal-lm" and output == DEFAULT_OUTPUT:
        output = DEFAULT_OUTPUT.with_name("env_throughput_causal_lm.json")
    return BenchConfig(
        queries=args.queries, batch_size=args.batch_size, repeats=args.repeats, small=args.small, model=args.model,
        device=args.device, dtype=args.dtype, num_seeds=args.num_seeds, output=output,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the figures and write the results JSON."""
    config = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("fade_hub").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="fade-hub-bench-") as tmp:
        os.environ.update(offline_env(Path(tmp)))
        bench = build_bench(config, Path(tmp))
        result = summarise(bench, run(bench, config.repeats), config.queries)
    print(report(result))
    config.output.parent.mkdir(parents=True, exist_ok=True)
    config.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {config.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
