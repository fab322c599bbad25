"""Turn a run's query log into what people read: its regions and cells, parquet configs, plots, card."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from .card import write_card
from .characterize import characterize_run
from .landscape import failure_modes, is_mode
from .options import recorded_options
from .perturb import ConceptSpace
from .store import DATA_FILES, FAILURES_FILE, LANDSCAPE_FILE, PLOTS_DIR, QUERIES_FILE, REGIONS_FILE, RunStore

logger = logging.getLogger(__name__)

FAILURE_COLUMNS = (
    "query_id", "phase", "seed_id", "context", "action_id", "input", "clean_input", "output", "expected",
    "expected_source", "severity", "trajectory", "judge_reason",
)
EXAMPLES_PER_MODE = 8


def summarize(store: RunStore) -> dict[str, Any]:
    """Write the ``queries``, ``failures``, ``landscape`` and ``regions`` configs, the plots and the card; return the
    metadata."""
    from .plots import examples_grid_png, heatmaps_png, marginals_png
    from .region_plots import region_png

    meta = store.read_meta()
    space = ConceptSpace.from_dict(meta["space"])
    queries = pd.DataFrame(store.read_queries())
    found = characterize_run(meta, queries, store.read_policy())
    landscape, regions = found.landscape, found.regions
    (store.root / "data").mkdir(exist_ok=True)
    landscape.to_parquet(store.root / LANDSCAPE_FILE, index=False)
    write_regions(regions, store.root / REGIONS_FILE)
    queries.to_parquet(store.root / QUERIES_FILE, index=False)
    write_failures(store, queries, space, meta)

    plots = store.root / PLOTS_DIR
    plots.mkdir(exist_ok=True)
    images: dict[str, str] = {}
    region_images = {str(row.region_id): _rel(store, region_png(landscape, row, found, plots / f"region_{int(row.rank)}.png"))
                     for row in regions.itertuples()}
    explore_rows = queries[queries["phase"] == "explore"] if len(queries) else queries
    if len(explore_rows):
        for path in heatmaps_png(explore_rows, space, plots):
            images[f"failure rate: {path.stem.replace('heatmap_', '').replace('_', ' × ')}"] = _rel(store, path)
        images["failure rate per factor"] = _rel(store, marginals_png(explore_rows, space, plots / "marginals.png"))
    modes = failure_modes(landscape, top_k=10)
    examples = mode_examples(store, queries, modes)
    if len(modes):
        top_cell = int(modes["action_id"].iloc[0])
        grid = [
            _example_item(store, row)
            for _, row in queries[(queries["action_id"] == top_cell) & queries["is_failure"]]
            .drop_duplicates("seed_id").head(EXAMPLES_PER_MODE).iterrows()
        ]
        if grid:
            levels = ", ".join(f"{k}={v}" for k, v in space.level_strings(space.action_from_id(top_cell)).items())
            path = examples_grid_png(grid, plots / "top_mode_examples.png", title=f"top failure-mode cell: {levels}")
            images["examples of the top failure-mode cell"] = _rel(store, path)

    failures = int(queries["is_failure"].sum()) if len(queries) else 0
    store.update_meta(
        queries=int(len(queries)),
        failures=failures,
        failure_cells=int((landscape["failures"] > 0).sum()),
        failure_modes=int(is_mode(landscape).sum()),
        regions=int(len(regions)),
        failure_regions=int(regions["is_mode"].sum()) if len(regions) else 0,
        clean=found.clean,
        data_files=dict(DATA_FILES),
        card_assets={"examples": {str(k): v for k, v in examples.items()}, "images": images, "regions": region_images},
    )
    return write_card(store)


def write_regions(regions: pd.DataFrame, path: Path) -> Path:
    """Write the ``regions`` config with explicit types (an empty table loads with the same columns)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"cells": pa.list_(pa.int64()), "classes": pa.list_(pa.string()), "region_id": pa.string(),
             "description": pa.string(), "factors": pa.string(), "class_rates": pa.string(),
             "confirm_test": pa.string(), "rank": pa.int64(), "num_cells": pa.int64(), "seeds": pa.int64(),
             "outside_seeds": pa.int64(), "clean_seeds": pa.int64(), "screened": pa.bool_(),
             "confirmed": pa.bool_(), "is_mode": pa.bool_()}
    schema = pa.schema([(name, types.get(name, pa.float64())) for name in regions.columns])
    table = pa.Table.from_pandas(regions, schema=schema, preserve_index=False)
    pq.write_table(table, path)
    return path


def write_failures(store: RunStore, queries: pd.DataFrame, space: ConceptSpace, meta: dict[str, Any] | None = None
                   ) -> Path:
    """Write the ``failures`` config: failing queries with their levels, texts and images; for an image run, each
    row's unperturbed seed too (``clean_image``, at the perturbed image's size), so that a pushed run shows the
    same evidence as its local folder. A seed source that cannot be read again leaves ``clean_image`` empty."""
    import datasets

    columns = (*FAILURE_COLUMNS[:5], *(factor.name for factor in space.factors), *FAILURE_COLUMNS[5:])
    rows = queries[queries["is_failure"]].to_dict("records") if len(queries) else []
    table: dict[str, list] = {name: [row.get(name, "") for row in rows] for name in columns}
    features = {name: datasets.Value("string") for name in columns}
    features.update(
        query_id=datasets.Value("int64"), action_id=datasets.Value("int64"), severity=datasets.Value("float64")
    )
    if space.inputs.media:  # the perturbed image, or the image generated from the prompt
        table["image"] = [_image_cell(store, row.get("media", "")) for row in rows]
        features["image"] = datasets.Image()
    if space.inputs.clean_media:  # the clean seed beside it (prompt runs have no unperturbed image)
        seeds = clean_seed_images(store, meta or store.read_meta(), {str(row.get("seed_id", "")) for row in rows})
        table["clean_image"] = [_clean_cell(seeds.get(str(row.get("seed_id", ""))), cell)
                                for row, cell in zip(rows, table["image"])]
        features["clean_image"] = datasets.Image()
    dataset = datasets.Dataset.from_dict(table, features=datasets.Features(features))
    path = store.root / FAILURES_FILE
    dataset.to_parquet(str(path))
    return path


def clean_seed_images(store: RunStore, meta: dict[str, Any], wanted: set[str]) -> dict[str, Any]:
    """The unperturbed seed images (PIL) of the ``wanted`` seed ids, read again from the run's seed source: straight
    from an image folder, else through the seed reader with the options the run recorded; ``{}`` (with a warning)
    when the source cannot be read any more."""
    from .errors import NETWORK_ERRORS, FadeHubError
    from .seeds.images import local_opener
    from .seeds.sources import MAX_DECODED_PIXELS, SeedConfig, read_seeds

    wanted = {seed_id for seed_id in wanted if seed_id}
    recorded = meta.get("seeds") or {}
    source = str((store.local_meta().get("seeds") or {}).get("source") or recorded.get("source") or "")
    if not wanted or not source:
        return {}
    options = recorded_options(meta)
    folder = Path(source)
    try:
        if folder.is_dir():
            root = folder.resolve()
            opener = local_opener(root, None, MAX_DECODED_PIXELS)
            paths = {seed_id: (root / seed_id).resolve() for seed_id in wanted}
            return {seed_id: opener(path) for seed_id, path in paths.items() if root in path.parents and path.is_file()}
        config = SeedConfig(
            source, split=str(recorded.get("split") or options.get("split") or "train"),
            num_seeds=recorded.get("num_seeds"), image_column=options.get("image_column"),
            label_column=options.get("label_column"), dataset_config=options.get("dataset_config"),
        )
        seeds, _ = read_seeds(config, "image")
    except (FadeHubError, OSError, ValueError, *NETWORK_ERRORS) as err:
        logger.warning("the clean seeds of this run could not be read again from %s (%s): its failures are stored "
                       "without them", source, str(err).splitlines()[0] if str(err) else type(err).__name__)
        return {}
    return {seed.seed_id: seed.input for seed in seeds if seed.seed_id in wanted}


def _clean_cell(image: Any, perturbed: dict[str, Any] | None) -> dict[str, Any] | None:
    """A clean seed image as a ``datasets.Image`` cell, shrunk to the size of the perturbed image beside it."""
    if image is None:
        return None
    from PIL import Image

    if perturbed is not None:
        with Image.open(io.BytesIO(perturbed["bytes"])) as shown:
            size = shown.size
        if image.width > size[0] or image.height > size[1]:
            image = image.copy()
            image.thumbnail(size)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def mode_examples(store: RunStore, queries: pd.DataFrame, modes: pd.DataFrame) -> dict[int, str]:
    """One short example per failure mode for the card: an image path or the model's output."""
    examples: dict[int, str] = {}
    if not len(queries):
        return examples
    failing = queries[queries["is_failure"]]
    for cell in modes["action_id"]:
        hits = failing[failing["action_id"] == cell]
        if not len(hits):
            continue
        first = hits.iloc[0]
        media = first.get("media", "")
        examples[int(cell)] = media if media else f"{first['output']} (expected: {first['expected']})"
    return examples


def _image_cell(store: RunStore, media: str) -> dict[str, Any] | None:
    if not media:
        return None
    path = store.root / media
    return {"bytes": path.read_bytes(), "path": path.name}


def _example_item(store: RunStore, row: pd.Series) -> dict[str, Any]:
    from PIL import Image

    caption = f"out: {row['output']}\nexp: {row['expected']}"
    if row.get("media"):
        with Image.open(io.BytesIO((store.root / row["media"]).read_bytes())) as image:
            return {"image": image.convert("RGB"), "caption": caption}
    return {"text": row.get("input") or row["output"], "caption": caption}


def _rel(store: RunStore, path: Path) -> str:
    return Path(path).relative_to(store.root).as_posix()
