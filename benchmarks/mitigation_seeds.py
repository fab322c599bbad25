"""The spread of the mitigation tests' figures over training seeds, beside the thresholds the tests assert.

A test of a trained adapter passes on one machine and may fail on another: a CPU that sums floats in another order
trains another adapter, as another seed does. This script runs the tests' own loops (``fade_hub.testing.loops``:
the same fixtures, runs, feedback and settings) on a LocalHub of its own, trains each loop's adapter with several
``--random-seed`` values, and reports every figure a test compares with a threshold: its values, their range, the
threshold and the margin left (the smallest distance to the threshold, in the figure's units; negative: a seed
would fail the test). The thread count changes float sums too: run it once per ``OMP_NUM_THREADS`` (the tests use
1); each run writes its block under ``seed_spread`` in ``benchmarks/results/mitigation.json`` (the other rows and
blocks are kept).

    OMP_NUM_THREADS=1 python benchmarks/mitigation_seeds.py [--loops image text multi-process generation
        objectives summarization t2i] [--seeds 0 1 2 3 4] [--fixture-seed 0] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "mitigation.json"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment(work: Path) -> None:
    """The tests' environment (conftest.py), set before any Hugging Face library is imported."""
    os.environ.update({
        "HF_ENDPOINT": f"http://127.0.0.1:{_free_port()}", "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": "hf_benchmark",
        "HF_HOME": str(work / "hf_home"), "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "MPLCONFIGDIR": str(work / "mpl"), "FADE_HUB_CACHE": str(work / "fade_cache"),
        "TOKENIZERS_PARALLELISM": "false", "GRADIO_ANALYTICS_ENABLED": "False",
    })


def _rate(figures: dict, part: str, when: str) -> float:
    return figures[part][when]["rate"] or 0.0


def _reexplored_ratio(loop: dict, adapter: Path, work: Path, pooled: bool) -> float:
    """The re-explored variant's failure rate at the loop's modes over the run's (pooled, or the worst mode's ratio)."""
    from fade_hub.testing.loops import reexplore

    again = reexplore(loop, str(adapter), work)
    before = loop["run"].landscape.set_index("action_id")["failure_rate"]
    after = again.landscape.set_index("action_id")["failure_rate"]
    modes = loop["modes"]
    if pooled:
        return float(after.loc[modes].mean() / before.loc[modes].mean())
    return float(max(after[cell] / before[cell] for cell in modes))


def _examples(adapter: Path):
    import pandas as pd

    return pd.read_parquet(adapter / "eval" / "examples.parquet")


# Each check: the figure's name, how it is computed from (loop, figures, adapter folder, scratch), the threshold,
# and whether the test wants the figure at least ("min") or at most ("max") the threshold.
def _image_checks() -> list:
    return [
        ("mode before rate", lambda lp, f, a, w: f["modes"][0]["before"]["rate"], 0.3, "min"),
        ("region before rate", lambda lp, f, a, w: f["regions"][0]["before"]["rate"], 0.5, "min"),
        ("targeted drop", lambda lp, f, a, w: f["targeted"]["drop"], 0.7, "min"),
        ("clean failures after - before", lambda lp, f, a, w:
            f["clean"]["after"]["failures"] - f["clean"]["before"]["failures"], 1, "max"),
        ("re-explored mode rate after / before", lambda lp, f, a, w: _reexplored_ratio(lp, a, w, True), 1.0, "max<"),
    ]


def _generative_checks(reexplore_limit: float = 0.3) -> list:
    return [
        ("targeted before rate", lambda lp, f, a, w: _rate(f, "targeted", "before"), 0.8, "min"),
        ("targeted drop", lambda lp, f, a, w: f["targeted"]["drop"], 0.7, "min"),
        ("re-explored worst mode after / before", lambda lp, f, a, w: _reexplored_ratio(lp, a, w, False),
         reexplore_limit, "max"),
    ]


CHECKS = {
    "image": _image_checks(),
    "multi-process": [
        ("targeted drop", lambda lp, f, a, w: f["targeted"]["drop"], 0.7, "min"),
        ("clean failures after - before", lambda lp, f, a, w:
            f["clean"]["after"]["failures"] - f["clean"]["before"]["failures"], 1, "max"),
    ],
    "text": [
        ("targeted drop", lambda lp, f, a, w: f["targeted"]["drop"], 0.6, "min"),
        ("clean rate after - before", lambda lp, f, a, w: _rate(f, "clean", "after") - _rate(f, "clean", "before"),
         0.05, "max"),
    ],
    "generation": [
        *_generative_checks(),
        ("clean failures after - before", lambda lp, f, a, w:
            f["clean"]["after"]["failures"] - f["clean"]["before"]["failures"], 1, "max"),
        ("failing examples' share after mitigation", lambda lp, f, a, w:
            float(_examples(a)["mitigated_failure"].mean()), 0.3, "max"),
    ],
    "objectives": [
        ("kto targeted after - before", None, 0.0, "max<"),
        ("sft targeted after - before", None, 0.0, "max<"),
    ],
    "summarization": [
        *_generative_checks(),
        ("clean ROUGE-L change", lambda lp, f, a, w: f["clean"]["quality"]["change"], -0.02, "min"),
    ],
    "t2i": [
        ("targeted before rate", lambda lp, f, a, w: _rate(f, "targeted", "before"), 0.8, "min"),
        ("targeted drop", lambda lp, f, a, w: f["targeted"]["drop"], 0.75, "min"),
        ("clean rate after - before", lambda lp, f, a, w: _rate(f, "clean", "after") - _rate(f, "clean", "before"),
         0.03, "max"),
        ("examples base - mitigated failure share", lambda lp, f, a, w:
            float(_examples(a)["base_failure"].mean() - _examples(a)["mitigated_failure"].mean()), 0.0, "min>"),
        ("re-explored modes after / before (pooled)", lambda lp, f, a, w: _reexplored_ratio(lp, a, w, True), 0.3,
         "max"),
    ],
}


def _build(name: str, work: Path, models: dict) -> dict:
    """The loop of ``name`` (explored, pushed and reviewed once)."""
    from fade_hub.testing import loops

    root = work / name
    root.mkdir(parents=True, exist_ok=True)
    if name in ("image", "multi-process"):
        return loops.image_loop(root, models["shapes"](), models["block_space"]())
    if name == "text":
        return loops.text_loop(root, models["sentiment"]())
    if name in ("generation", "objectives"):
        return loops.generation_loop(root, models["chat"]())
    if name == "summarization":
        return loops.summarization_loop(root, models["summarizer"]())
    return loops.t2i_loop(root, models["drawing"](), models["shapes"]())


def _models(work: Path, seed: int) -> dict:
    """Each fixture model trained once with ``seed``, when a loop first needs it (as the tests' session fixtures do
    with seed 0)."""
    from fade_hub.demo.shapes import shipped_model_dir, train_shape_classifier
    from fade_hub.perturb import ConceptSpace
    from fade_hub.testing.drawing import train_drawing_pipeline
    from fade_hub.testing.generation import train_chat_model
    from fade_hub.testing.loops import BLOCK_2X2
    from fade_hub.testing.sentiment import train_sentiment_classifier
    from fade_hub.testing.summaries import train_summarizer

    made: dict = {}

    def once(key, build):
        def get():
            if key not in made:
                made[key] = build()
            return made[key]
        return get

    def block_space():  # as conftest's block_space fixture writes it
        path = work / "models" / "block-2x2.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        ConceptSpace.from_dict(BLOCK_2X2).to_yaml(path)
        return path

    models = work / "models"
    def shapes():  # the tests' shapes classifier is the one the package ships; another fixture seed trains one
        return shipped_model_dir() if seed == 0 else train_shape_classifier(models / "shapes", seed=seed)

    return {
        "shapes": once("shapes", shapes),
        "block_space": once("block", block_space),
        "sentiment": once("sentiment", lambda: train_sentiment_classifier(models / "sentiment-cased", negation=False,
                                                                          cased=True, seed=seed)),
        "chat": once("chat", lambda: train_chat_model(models / "chat-typos", seed=seed)),
        "summarizer": once("summarizer", lambda: train_summarizer(models / "summarizer-upper", seed=seed)),
        "drawing": once("drawing", lambda: train_drawing_pipeline(models / "drawing", seed=seed)),
    }


def _multi_process(loop: dict, output: Path, seed: int) -> dict:
    """test_multi_process_mitigation's run: the image loop's settings, batch 16, two processes."""
    import subprocess

    options = {**loop["mitigation"], "batch_size": 16, "seed": seed}
    argv = [options.pop("run"), "--output", str(output), "--no-progress", "--num-processes", "2"]
    options.pop("show_progress")
    for key, value in options.items():
        argv += [f"--{key.replace('_', '-')}", ",".join(value) if isinstance(value, list) else str(value)]
    done = subprocess.run([sys.executable, "-m", "fade_hub.cli", "mitigate", *argv], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads((output / "fade_eval.json").read_text())


def _values(name: str, loop: dict, seed: int, work: Path) -> dict[str, float]:
    """Every checked figure of one loop trained with ``seed``."""
    from fade_hub.testing.loops import mitigate_loop

    out = work / f"{name}-seed{seed}"
    if name == "objectives":
        found = {}
        for objective in ("kto", "sft"):  # test_kto_and_sft_objectives_train_on_the_same_feedback's settings
            from fade_hub.testing.generation import write_prompts

            held_out = write_prompts(work / "objectives-eval.jsonl", 12, 4, avoid=[loop["seeds"]])
            figures = mitigate_loop(loop, out / objective, seed, run=str(loop["run"].path), train_seeds=[], steps=30,
                                    objective=objective, eval_seeds=str(held_out)).figures
            found[f"{objective} targeted after - before"] = (_rate(figures, "targeted", "after")
                                                             - _rate(figures, "targeted", "before"))
        return found
    if name == "multi-process":
        figures, adapter = _multi_process(loop, out, seed), out
    else:
        result = mitigate_loop(loop, out, seed)
        figures, adapter = result.figures, result.path
    return {label: float(compute(loop, figures, adapter, work / f"{name}-seed{seed}-rerun"))
            for label, compute, _, _ in CHECKS[name]}


def _summary(values: list[float], threshold: float, side: str) -> dict:
    """The range of a figure over seeds and its margin to the test's threshold (negative: some seed fails)."""
    low, high = min(values), max(values)
    margin = low - threshold if side.startswith("min") else threshold - high
    return {"values": [round(v, 4) for v in values], "min": round(low, 4), "max": round(high, 4),
            "threshold": threshold, "test_wants": {"min": ">=", "min>": ">", "max": "<=", "max<": "<"}[side],
            "margin": round(margin, 4)}


def main(argv: list[str] | None = None) -> int:
    """Build the chosen loops, train each with every seed, print the spreads and write them to the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loops", nargs="+", choices=list(CHECKS), default=list(CHECKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--fixture-seed", type=int, default=0, help="Train the fixture models with this seed (the "
                        "tests use 0, and the shapes classifier the package ships): another machine trains other "
                        "fixtures, as another seed does.")
    parser.add_argument("--work", type=Path, default=None, help="Scratch folder (default: a new temp folder).")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="fade-mitigation-seeds-"))
    _environment(work)
    import torch

    from fade_hub.localhub import LocalHub

    threads = torch.get_num_threads()
    key = f"threads={threads}" + (f",fixture_seed={args.fixture_seed}" if args.fixture_seed else "")
    block: dict = {"threads": threads, "fixture_seed": args.fixture_seed, "seeds": args.seeds, "loops": {}}
    started = time.perf_counter()
    with LocalHub(root=work / "hub", port=int(os.environ["HF_ENDPOINT"].rsplit(":", 1)[1])):
        models = _models(work, args.fixture_seed)
        for name in args.loops:
            loop_started = time.perf_counter()
            loop = _build(name, work, models)
            per_seed = [_values(name, loop, seed, work) for seed in args.seeds]
            block["loops"][name] = {
                label: _summary([values[label] for values in per_seed], threshold, side)
                for label, _, threshold, side in CHECKS[name]
            }
            block["loops"][name]["seconds"] = round(time.perf_counter() - loop_started, 1)
            for label, row in block["loops"][name].items():
                if isinstance(row, dict):
                    print(f"{name:14} {label:42} {row['min']:+.3f} .. {row['max']:+.3f}  test {row['test_wants']} "
                          f"{row['threshold']:+.3f}  margin {row['margin']:+.3f}", flush=True)
            _write(args.output, key, block)  # after each loop: a long run keeps what it measured
    block["seconds"] = round(time.perf_counter() - started, 1)
    _write(args.output, key, block)
    return 0


def _write(path: Path, key: str, block: dict) -> None:
    """Put ``block`` under ``seed_spread[KEY]`` of the results JSON (``threads=N``, with ``,fixture_seed=S`` unless
    0), keeping its other content (loops of the same key measured in another run stay unless measured again)."""
    data = json.loads(path.read_text()) if path.is_file() else {}
    spread = data.setdefault("seed_spread", {})
    old = spread.get(key, {})
    merged = {**block, "loops": {**old.get("loops", {}), **block["loops"]}}
    merged["note"] = ("the mitigation tests' figures over training seeds (--random-seed), each loop as the tests build it "
                      "(fade_hub.testing.loops); margin = distance of the worst seed to the test's threshold")
    spread[key] = merged
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")


if __name__ == "__main__":
    sys.exit(main())
