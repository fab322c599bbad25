"""Test bed: an isolated environment, one LocalHub per session, and tiny local models.

Environment variables are set here, before any Hugging Face library is imported, because
huggingface_hub and datasets read ``HF_ENDPOINT`` and ``HF_HUB_DISABLE_XET`` at import time.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import tempfile
import uuid
from pathlib import Path

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="fade-hub-tests-"))
# everything a session writes (hub, models, caches: about 200 MB) goes when its process ends; each pytest-xdist worker
# imports this module, so each has a folder (and a LocalHub port) of its own
atexit.register(shutil.rmtree, _SESSION_DIR, ignore_errors=True)
# one folder for the whole test run, shared by its pytest-xdist workers: the first process to import this module (the
# controller) makes it, names it in the environment its workers inherit, and removes it when it ends; the fixture
# models trained in the run go there, once for all workers
_SHARED_VARIABLE = "FADE_HUB_TESTS_SHARED_DIR"
if _SHARED_VARIABLE not in os.environ:
    os.environ[_SHARED_VARIABLE] = tempfile.mkdtemp(prefix="fade-hub-tests-shared-")
    atexit.register(shutil.rmtree, os.environ[_SHARED_VARIABLE], ignore_errors=True)
SHARED_DIR = Path(os.environ[_SHARED_VARIABLE])


def free_port() -> int:
    """A TCP port that is free right now on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unique_repo(prefix: str, namespace: str = "tester") -> str:
    """A repo id no other test uses."""
    return f"{namespace}/{prefix}-{uuid.uuid4().hex[:8]}"


# A 2x2 image concept space: small enough for grids, with one cell that really darkens and rotates.
IMAGE_2X2 = {
    "modality": "image",
    "factors": [
        {"name": "rotation", "op": "rotate", "levels": [0, 15]},
        {"name": "brightness", "op": "brightness", "levels": [1.0, 0.3]},
    ],
}

HUB_PORT = free_port()
TEST_ENV = {
    "HF_ENDPOINT": f"http://127.0.0.1:{HUB_PORT}",
    "HF_HUB_DISABLE_XET": "1",
    "HF_TOKEN": "hf_dummy_test_token",
    "HF_HOME": str(_SESSION_DIR / "hf_home"),
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TORCHINDUCTOR_CACHE_DIR": str(_SESSION_DIR / "inductor"),
    "GRADIO_ANALYTICS_ENABLED": "False",
    "MPLCONFIGDIR": str(_SESSION_DIR / "mpl"),
    "FADE_HUB_CACHE": str(_SESSION_DIR / "fade_cache"),
    "TOKENIZERS_PARALLELISM": "false",
    # tiny models run faster on one thread, and two cores shared with subprocesses thrash otherwise
    "OMP_NUM_THREADS": "1",
}
os.environ.update(TEST_ENV)
# A suite started in the background by a non-interactive shell (`cmd &`, as some CI runners do) inherits SIGINT
# ignored (POSIX), and so would every CLI it starts: Ctrl-C could reach no process as it reaches a user's in a
# terminal. The Ctrl-C tests need what a user has, Python's own handler (its children then start with the default).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
# the library cache folders set above; a test of what a user's process writes under HOME unsets them, as a user has none
LIBRARY_DIRS = ("MPLCONFIGDIR", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "TORCH_HOME", "HF_DATASETS_CACHE")

import pytest  # noqa: E402

from fade_hub.testing.loops import BLOCK_2X2  # noqa: E402


# The longest test files of each tier and their seconds (a whole file on one of 2 busy cores, --durations, s13). With
# `--dist loadfile` a worker takes the next file when it is nearly done with its own: starting the longest files first
# leaves the short ones for the end, so that neither worker runs a long file alone while the other has finished
# (pytest-xdist's own order, by number of tests, started the one-test demo and discovery smoke last).
FILE_SECONDS = {
    "fast": {"test_space_review.py": 20, "test_space.py": 13, "test_explore.py": 10, "test_remote_targets.py": 8,
             "test_space_variants.py": 6, "test_localhub.py": 5, "test_structure.py": 4, "test_grpo.py": 4,
             "test_compare.py": 3, "test_space_judge.py": 3},
    "slow": {"test_benchmark_discovery.py": 110, "test_mitigate.py": 110, "test_demo.py": 100,
             "test_mitigate_t2i.py": 90, "test_space_browser.py": 80, "test_explore_kill.py": 58, "test_pull.py": 57,
             "test_explore.py": 53, "test_feedback_queue.py": 53, "test_mitigate_generative.py": 50,
             "test_characterize.py": 45, "test_space.py": 44, "test_remote_explore.py": 31, "test_space_review.py": 30,
             "test_benchmarks.py": 28, "test_bad_input.py": 27, "test_explore_pipeline.py": 26,
             "test_judges_llm.py": 20, "test_publish.py": 15},
}


def pytest_configure(config) -> None:
    """Workers take test files in the order ``pytest_collection_modifyitems`` leaves them (not by number of tests)."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def _run_order(item) -> tuple[bool, int]:
    """The fast tier first, then the slow end-to-end tests; in each, the longest files first."""
    slow = item.get_closest_marker("slow") is not None
    return slow, -FILE_SECONDS["slow" if slow else "fast"].get(item.path.name, 0)


def pytest_collection_modifyitems(session, config, items) -> None:
    """The fast tier first, then the slow end-to-end tests (a failure in the fast tier is seen in minutes); in each
    tier the longest files first, the others in their order."""
    items.sort(key=_run_order)


def built_once(name: str) -> Path:
    """Fixture model ``name`` (``shipped_models.RECIPES``) in ``SHARED_DIR / "models"``, once for the whole run: each
    worker waits on a file lock, and takes the folder as the first placed it (the shipped bytes, or trained when they
    are stale)."""
    import fcntl

    from shipped_models import place

    folder = SHARED_DIR / "models" / name
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = folder.parent / f"{name}.done"
        if not done.exists():
            place(name, folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def session_dir() -> Path:
    """A temp folder shared by the whole test session."""
    return _SESSION_DIR


@pytest.fixture(scope="session")
def hub(session_dir):
    """The session's LocalHub, serving ``HF_ENDPOINT``."""
    from fade_hub.localhub import LocalHub

    with LocalHub(root=session_dir / "hub", port=HUB_PORT) as server:
        yield server


@pytest.fixture(scope="session")
def tiny_models(session_dir):
    """Factory of tiny local models, built once per session: ``tiny_models("image-classification")``."""
    from fade_hub.testing import tiny

    built: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in built:
            built[kind] = tiny.build(kind, session_dir / "models" / kind)
        return built[kind]

    return get


@pytest.fixture(scope="session")
def shape_seeds(session_dir) -> Path:
    """Six generated shape images, two per class, in the LABEL/NNN.png layout ``--seeds`` reads."""
    from fade_hub.demo.shapes import write_seed_folder

    return write_seed_folder(session_dir / "shape-seeds", per_class=2, seed=1)


def mitigate_cli(options: dict, output: Path, hash_seed: str = "7") -> Path:
    """Run ``fade-hub mitigate`` with the ``MitigateConfig`` settings ``options`` (a loop's ``mitigation``) into
    ``output``, in a fresh process (another ``PYTHONHASHSEED``, an untouched global RNG); return ``output``."""
    import subprocess
    import sys

    argv = [options["run"], "--output", str(output), "--no-progress"]
    for name, value in options.items():
        if name not in ("run", "show_progress"):
            argv += [f"--{name.replace('_', '-')}", ",".join(value) if isinstance(value, list) else str(value)]
    done = subprocess.run([sys.executable, "-m", "fade_hub.cli", "mitigate", *argv], capture_output=True, text=True,
                          timeout=1200, env={**os.environ, "PYTHONHASHSEED": hash_seed})
    assert done.returncode == 0, done.stderr[-3000:]
    return Path(output)


def assert_same_weights(first: Path, second: Path, name: str = "adapter_model.safetensors") -> None:
    """The two adapter folders hold the same weights file: every tensor bit for bit, and the same metadata (compared
    as a mapping: safetensors writes its metadata keys in an order of its own)."""
    from safetensors import safe_open

    one, two = (Path(folder) / name for folder in (first, second))
    with safe_open(one, "pt") as a, safe_open(two, "pt") as b:
        assert a.metadata() == b.metadata(), (a.metadata(), b.metadata())
        assert sorted(a.keys()) == sorted(b.keys())
        gaps = {}
        for key in a.keys():
            x, y = a.get_tensor(key), b.get_tensor(key)
            if x.dtype != y.dtype or x.shape != y.shape or not x.equal(y):
                gaps[key] = float((x.double() - y.double()).abs().max()) if x.shape == y.shape else "shape"
        assert not gaps, f"{one} and {two} differ: {sorted(gaps.items(), key=lambda item: str(item[1]))[-3:]}"


def space_file(folder: Path, name: str, space: dict) -> Path:
    """A concept space written as ``folder/spaces/NAME.yaml`` (checked by loading it)."""
    from fade_hub.perturb import ConceptSpace

    path = folder / "spaces" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    ConceptSpace.from_dict(space).to_yaml(path)
    return path


@pytest.fixture(scope="session")
def small_space(session_dir) -> Path:
    """``IMAGE_2X2`` as a concept-space YAML file."""
    return space_file(session_dir, "image-2x2", IMAGE_2X2)


@pytest.fixture(scope="session")
def shapes_model() -> Path:
    """The demo's shapes classifier (a small ResNet shipped with the package: the same bytes on every machine)."""
    from fade_hub.demo.shapes import shipped_model_dir

    return shipped_model_dir()


@pytest.fixture(scope="session")
def block_space(session_dir) -> Path:
    """``BLOCK_2X2`` as a concept-space YAML file."""
    return space_file(session_dir, "block-2x2", BLOCK_2X2)


@pytest.fixture
def served(tiny_models):
    """Factory of local inference servers over tiny models: ``served("text-classification", faults=Faults(...))``.

    Each server is a real pipeline behind the routes ``InferenceClient`` calls; all are stopped at teardown.
    """
    from fade_hub.testing.inference_server import PipelineBackend, serve

    servers = []

    def start(kind: str, faults=None, *, task: str | None = None, token: str | None = None, **backend):
        backend.setdefault("model_id", f"tester/served-{kind}")
        server = serve(PipelineBackend(task or kind, tiny_models(kind), **backend), faults, token=token)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def chat_model() -> Path:
    """The tiny chat model with the planted typo failure (``fade_hub.testing.generation``)."""
    return built_once("chat-typos")


@pytest.fixture(scope="session")
def judge_model() -> Path:
    """The tiny chat model that judges the chat model's answers (``fade_hub.testing.judge_model``)."""
    return built_once("judge")


@pytest.fixture(scope="session")
def sampling_model() -> Path:
    """The chat fixture that says the banned word on about 30 % of its samples on typo'd prompts only."""
    return built_once("chat-typos-sampled")


@pytest.fixture(scope="session")
def summarizer_model() -> Path:
    """The tiny summarizer that fails on upper-case articles (``fade_hub.testing.summaries``)."""
    return built_once("summarizer-upper")


@pytest.fixture(scope="session")
def cased_sentiment_model() -> Path:
    """A cased sentiment classifier that never saw upper case (``fade_hub.testing.sentiment``)."""
    return built_once("sentiment-cased")


@pytest.fixture(scope="session")
def negation_sentiment(session_dir) -> dict[str, Path]:
    """Two small sentiment classifiers: one trained on negated sentences too (``reads``), one that never saw negation
    (``ignores``); and 16 ``seeds``."""
    from fade_hub.testing.sentiment import write_seeds

    return {
        "reads": built_once("sentiment-reads-negation"),
        "ignores": built_once("sentiment-ignores-negation"),
        "seeds": write_seeds(session_dir / "sentiment-seeds.jsonl", 16, seed=5),
    }


@pytest.fixture(scope="session")
def drawing_model() -> Path:
    """The drawing pipeline whose ``fancy`` shapes come out wrong (``fade_hub.testing.drawing``)."""
    return built_once("drawing")


@pytest.fixture(scope="session")
def image_loop(hub, shapes_model, block_space, session_dir):
    """The shapes classifier on the Hub, a grid run over the dark/rotated 2x2 space, pushed, reviewed
    (``fade_hub.testing.loops.image_loop``), mitigated with seed 0 and ``--recheck``, the adapter pushed as
    ``adapter``: built once for the mitigation and the re-check tests."""
    from fade_hub.mitigate import MitigateConfig, mitigate
    from fade_hub.testing import loops

    loop = loops.image_loop(session_dir / "image-loop", shapes_model, block_space)
    loop["adapter"] = unique_repo("shapes-faded", "local-user")
    loop["result"] = mitigate(MitigateConfig(**loop["mitigation"], output=str(loop["root"] / "adapter"), seed=0,
                                             recheck=True, push_to_hub=loop["adapter"]))
    return loop


# failure runs pushed to the session LocalHub, built once (tests/space_runs.py) ------------------------------


@pytest.fixture(scope="session")
def image_run(hub, session_dir, shapes_model, block_space):
    """(run dir, repo id) of the pushed image run."""
    from space_runs import build_image_run

    return build_image_run(session_dir, shapes_model, block_space)


@pytest.fixture(scope="session")
def review_run(hub, session_dir, shapes_model):
    """(run dir, repo id) of the pushed 4x4 run with several failure modes."""
    from space_runs import build_review_run

    return build_review_run(session_dir, shapes_model)


@pytest.fixture(scope="session")
def planted_image_run(hub, session_dir):
    """(run dir, repo id) of the pushed image run with three planted regions."""
    from space_runs import build_planted_run

    return build_planted_run(session_dir, "image")


@pytest.fixture(scope="session")
def planted_text_run(hub, session_dir):
    """(run dir, repo id) of the pushed text-classification run with three planted regions."""
    from space_runs import build_planted_run

    return build_planted_run(session_dir, "text")


@pytest.fixture(scope="session")
def hostile_run(hub, session_dir):
    """(run dir, repo id) of the pushed hostile text run."""
    from space_runs import build_hostile_text_run

    return build_hostile_text_run(session_dir)
