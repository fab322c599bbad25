"""The demo: the whole loop on a small real model and an embedded Hub, offline, in minutes.

``run_demo`` takes the small image classifier that ships with the package (trained on generated shapes
whose training data never showed very dark *and* strongly rotated shapes), publishes it to a Hub (an embedded LocalHub unless
``hub_endpoint`` is given), explores it by its repo ID with ``ppo`` and pushes the run as a dataset.
A simulated reviewer then marks each confirmed failure region ``fix`` (one region verdict, which
applies to every cell of the region) through the feedback app's API, ``mitigate`` trains a LoRA
adapter on that feedback over every cell of the regions and measures it (the regions, the clean
seeds and the collateral cells never trained on, with intervals), publishes it as a mitigated
variant, and the variant is loaded back with stock peft to check that it gives the mitigated answers.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..cache import cache_root, note_legacy_roots
from ..config.output import OutputOptions
from ..errors import BadConfig
from ..explore.config import SearchOptions
from ..notices import library_notices_hidden
from ..options import ConfigTree, check_ranges, option, section

DEMO_SPACE = "demo-shapes"


@dataclass(init=False)
class DemoConfig(ConfigTree):
    """Settings of ``fade-hub demo``: the exploration's budget and random seed (``SearchOptions``), where the run and
    the adapter go (``OutputOptions``), and the demo's own options."""

    search: SearchOptions = section(SearchOptions, only=("budget", "seed"), group=None, helps={
        "budget": "Model queries for the exploration.",
        "seed": "Random seed (the same seed gives the same run)."}, budget=600)
    result: OutputOptions = section(OutputOptions, only=("output", "show_progress"), group=None, helps={
        "output": "Folder for the run (OUTPUT/run) and the adapter (OUTPUT/adapter); an earlier demo there is "
                  "replaced.",
        "show_progress": "Hide the progress bars."}, output="fade-runs/demo")
    cache_dir: str | None = option(None, help="Where the demo keeps its seed images and its embedded Hub "
                                   "(default: CACHE, that is $FADE_HUB_CACHE or HF_HOME/fade-hub).")
    seeds_per_class: int = option(24, low=2, help="Seed images per class: a third of them are held out to confirm "
                                  "the regions the exploration finds.")
    mitigation_steps: int = option(150, low=1, help="Optimizer steps of the LoRA training.")
    hub_endpoint: str | None = option(None, help="Use this Hub instead of the embedded one, e.g. https://huggingface.co.")
    hub_root: str | None = option(None, help="Folder of the embedded Hub (default CACHE/demo-hub).")
    namespace: str | None = option(None, help="User or org for the demo repos (default: the token's user).")
    flag_order = ("output", "cache_dir", "budget", "seed", "seeds_per_class", "mitigation_steps", "hub_endpoint",
                  "hub_root", "namespace", "show_progress")


@dataclass
class DemoResult:
    """Where the demo left its outputs."""

    run_dir: Path
    model_repo: str
    dataset_repo: str
    dataset_url: str
    endpoint: str
    hub_root: Path | None
    meta: dict = field(default_factory=dict)
    reviewed: list[str] = field(default_factory=list)  # the regions the simulated reviewer marked fix
    adapter_dir: Path | None = None
    adapter_repo: str | None = None
    adapter_url: str | None = None
    figures: dict = field(default_factory=dict)
    reloaded: tuple[int, int] = (0, 0)  # examples the stock-peft reload answered as the mitigated model did, of all


def cache_dir(config: DemoConfig) -> Path:
    """The demo's cache: ``--cache-dir``, else fade-hub's cache root."""
    if config.cache_dir:
        return Path(config.cache_dir)
    note_legacy_roots()
    return cache_root()


def run_demo(config: DemoConfig) -> DemoResult:
    """Run the whole demo and return its outputs."""
    check_ranges(config)
    _check_output(Path(config.output))
    cache = cache_dir(config)
    hub = None
    if config.hub_endpoint:
        os.environ["HF_ENDPOINT"] = config.hub_endpoint.rstrip("/")
    else:
        if any(name in sys.modules for name in ("huggingface_hub.constants", "datasets")):  # they read HF_ENDPOINT once
            raise BadConfig("the embedded Hub must start before huggingface_hub is imported; run the demo in a fresh process")
        from ..localhub import LocalHub

        hub_root = Path(config.hub_root or cache / "demo-hub")
        hub = LocalHub(hub_root).start()
        os.environ.update(HF_ENDPOINT=hub.endpoint, HF_HUB_DISABLE_XET="1")
        os.environ.setdefault("HF_TOKEN", "hf_local_demo")
    try:
        result = _explore_and_push(config, cache, hub)
        return _review_and_mitigate(config, cache, result)
    finally:
        if hub is not None:
            hub.stop()


def _check_output(output: Path) -> None:
    """BadConfig, before anything starts, when ``output`` exists and does not hold an earlier demo."""
    from ..store import RunStore

    if output.exists() and not RunStore(output / "run").exists():
        raise BadConfig(f"{output} exists and is not an earlier demo; pass another --output")


def _clear_previous_demo(output: Path, model_repo: str) -> None:
    """Remove an earlier demo in ``output``; refuse to touch anything else."""
    import shutil

    from ..store import RunStore

    if not output.exists():
        return
    _check_output(output)
    if RunStore(output / "run").read_meta().get("model_id") != model_repo:
        raise BadConfig(f"{output} exists and is not an earlier demo; pass another --output")
    shutil.rmtree(output)


def _explore_and_push(config: DemoConfig, cache: Path, hub) -> DemoResult:
    from huggingface_hub import HfApi, constants

    from ..assembly import quiet_library_bars
    from ..explore.config import ExploreConfig
    from ..explore.runner import explore
    from ..hub import push_run
    from .shapes import SHIPPED_MODEL, shipped_model_dir, write_seed_folder

    model_dir = shipped_model_dir()
    seeds_dir = write_seed_folder(cache / f"{SHIPPED_MODEL}-seeds-{config.seeds_per_class}-{config.seed}",
                                  config.seeds_per_class, seed=1000 + config.seed)
    api = HfApi()
    namespace = config.namespace or api.whoami()["name"]
    model_repo = f"{namespace}/fade-hub-demo-shapes"
    dataset_repo = f"{namespace}/fade-hub-demo-shapes-failures"
    api.create_repo(model_repo, exist_ok=True)
    quiet_library_bars(config.show_progress)
    with _hub_warnings_hidden():  # an earlier demo's upload makes this one a no-op, which huggingface_hub warns of
        api.upload_folder(repo_id=model_repo, folder_path=model_dir, commit_message="fade-hub demo: shapes classifier")
    _clear_previous_demo(Path(config.output), model_repo)
    run = explore(
        ExploreConfig(
            model=model_repo, seeds=str(seeds_dir), space=f"builtin:{DEMO_SPACE}", algorithm="ppo",
            budget=config.budget, seed=config.seed, batch_size=32, output=str(Path(config.output) / "run"),
            show_progress=config.show_progress,
        )
    )
    url = push_run(run.path, dataset_repo)
    return DemoResult(
        run_dir=run.path, model_repo=model_repo, dataset_repo=dataset_repo, dataset_url=url,
        endpoint=constants.ENDPOINT, hub_root=hub.root if hub is not None else None, meta=run.meta,
    )


@contextmanager
def _hub_warnings_hidden() -> Iterator[None]:
    """Keep huggingface_hub's warnings (e.g. "No files have been modified since last commit") out of the block."""
    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hub_logger.setLevel(level)


def _review_and_mitigate(config: DemoConfig, cache: Path, result: DemoResult) -> DemoResult:
    """The simulated reviewer's verdicts, the mitigation, the published variant and its stock-peft reload."""
    from ..feedback.app import AppConfig, FeedbackApp
    from ..mitigate import MitigateConfig, mitigate
    from ..run import Run
    from .shapes import SHIPPED_MODEL, write_seed_folder

    run = Run.open(result.run_dir)
    confirmed = run.regions[run.regions["confirmed"].astype(bool)]
    if confirmed.empty:
        return result
    feedback_repo = f"{result.model_repo}-feedback"
    app = FeedbackApp(AppConfig(failures=result.dataset_repo, feedback_repo=feedback_repo))
    try:
        for region_id in confirmed["region_id"]:  # one verdict per region: it applies to every cell of the region
            app.submit(str(region_id), "fix", note="simulated reviewer (fade-hub demo)")
    finally:
        app.close()
    adapter_dir, adapter_repo = Path(config.output) / "adapter", f"{result.model_repo}-faded"
    mitigation = mitigate(MitigateConfig(
        run=result.dataset_repo, feedback=[feedback_repo], output=str(adapter_dir), steps=config.mitigation_steps,
        train_seeds=[str(write_seed_folder(cache / f"{SHIPPED_MODEL}-train-{config.seed}", 20, seed=2000 + config.seed))],
        eval_seeds=str(write_seed_folder(cache / f"{SHIPPED_MODEL}-eval-{config.seed}", 12, seed=3000 + config.seed)),
        seed=config.seed, show_progress=config.show_progress, recheck=True, push_to_hub=adapter_repo,
    ))
    result.adapter_url = mitigation.url
    result.reviewed = list(confirmed["region_id"])
    result.adapter_dir, result.adapter_repo = adapter_dir, adapter_repo
    result.figures = mitigation.figures
    result.reloaded = reload_with_peft(result.model_repo, adapter_repo)
    return result


def reload_with_peft(model_repo: str, adapter_repo: str) -> tuple[int, int]:
    """Load the published variant with stock peft; count its evaluation examples it answers as ``mitigate`` did."""
    import io

    import pandas as pd
    import torch
    from huggingface_hub import hf_hub_download
    from peft import PeftModel
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    examples = pd.read_parquet(hf_hub_download(adapter_repo, "eval/examples.parquet"))
    images = [Image.open(io.BytesIO(cell["bytes"])).convert("RGB") for cell in examples["image"]]
    with library_notices_hidden():  # peft reads transformers' deprecated `is_gradient_checkpointing`
        model = PeftModel.from_pretrained(AutoModelForImageClassification.from_pretrained(model_repo), adapter_repo)
    processor = AutoImageProcessor.from_pretrained(model_repo)
    with torch.inference_mode():
        labels = model.eval()(**processor(images=images, return_tensors="pt")).logits.argmax(-1).tolist()
    answers = [model.config.id2label[label] for label in labels]
    return sum(a == b for a, b in zip(answers, examples["mitigated_output"])), len(answers)
