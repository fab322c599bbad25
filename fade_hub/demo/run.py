"""The demo: a small real model, an embedded Hub, a ppo exploration, a pushed run — offline, in minutes.

``run_demo`` trains (once, then cached) a small image classifier on generated shapes whose
training data never showed dark *and* rotated shapes, publishes it to a Hub (an embedded
LocalHub unless ``hub_endpoint`` is given), explores it by its repo ID with ``ppo``, pushes the
run as a dataset and returns what to look at.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..cache import cache_root
from ..errors import BadConfig
from ..options import MAX_SEED, check_ranges, option

DEMO_MODEL_VERSION = "shapes-resnet-v1"
DEMO_SPACE = "demo-shapes"


@dataclass
class DemoConfig:
    """Settings of ``fade-hub demo``."""

    output: str = option("fade-runs/demo", help="Run directory (an earlier demo run there is replaced).")
    cache_dir: str | None = option(None, help="Where the demo model is cached (default: CACHE, that is "
                                   "$FADE_HUB_CACHE or HF_HOME/fade-hub).")
    budget: int = option(600, low=1, help="Model queries for the exploration.")
    seed: int = option(0, low=0, high=MAX_SEED, help="Random seed (the same seed gives the same run).")
    seeds_per_class: int = option(16, low=2, help="Seed images per class for the exploration.")
    hub_endpoint: str | None = option(None, help="Use this Hub instead of the embedded one, e.g. https://huggingface.co.")
    hub_root: str | None = option(None, help="Folder of the embedded Hub (default CACHE/demo-hub).")
    namespace: str | None = option(None, help="User or org for the demo repos (default: the token's user).")
    show_progress: bool = option(True, flag="--no-progress", help="Hide the progress bars.")


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


def cache_dir(config: DemoConfig) -> Path:
    """The demo's cache: ``--cache-dir``, else fade-hub's cache root."""
    return Path(config.cache_dir) if config.cache_dir else cache_root()


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
        return _explore_and_push(config, cache, hub)
    finally:
        if hub is not None:
            hub.stop()


def _check_output(output: Path) -> None:
    """BadConfig, before anything starts, when ``output`` exists and is not a run folder."""
    from ..store import RunStore

    if output.exists() and not RunStore(output).exists():
        raise BadConfig(f"{output} exists and is not an earlier demo run; pass another --output")


def _clear_previous_demo_run(output: Path, model_repo: str) -> None:
    """Remove an earlier demo run in ``output``; refuse to touch anything else."""
    import shutil

    from ..store import RunStore

    if not output.exists():
        return
    _check_output(output)
    if RunStore(output).read_meta().get("model_id") != model_repo:
        raise BadConfig(f"{output} exists and is not an earlier demo run; pass another --output")
    shutil.rmtree(output)


def _explore_and_push(config: DemoConfig, cache: Path, hub) -> DemoResult:
    from huggingface_hub import HfApi, constants

    from ..explore.config import ExploreConfig
    from ..explore.runner import explore
    from ..hub import push_run
    from .shapes import train_shape_classifier, write_seed_folder

    model_dir = train_shape_classifier(cache / DEMO_MODEL_VERSION, seed=config.seed)
    seeds_dir = write_seed_folder(cache / f"{DEMO_MODEL_VERSION}-seeds", config.seeds_per_class, seed=1000 + config.seed)
    api = HfApi()
    namespace = config.namespace or api.whoami()["name"]
    model_repo = f"{namespace}/fade-hub-demo-shapes"
    dataset_repo = f"{namespace}/fade-hub-demo-shapes-failures"
    api.create_repo(model_repo, exist_ok=True)
    api.upload_folder(repo_id=model_repo, folder_path=model_dir, commit_message="fade-hub demo: shapes classifier")
    _clear_previous_demo_run(Path(config.output), model_repo)
    run = explore(
        ExploreConfig(
            model=model_repo,
            seeds=str(seeds_dir),
            space=f"builtin:{DEMO_SPACE}",
            algorithm="ppo",
            budget=config.budget,
            seed=config.seed,
            batch_size=32,
            output=str(config.output),
            show_progress=config.show_progress,
        )
    )
    url = push_run(run.path, dataset_repo)
    return DemoResult(
        run_dir=run.path,
        model_repo=model_repo,
        dataset_repo=dataset_repo,
        dataset_url=url,
        endpoint=constants.ENDPOINT,
        hub_root=hub.root if hub is not None else None,
        meta=run.meta,
    )
