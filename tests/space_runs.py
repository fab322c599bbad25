"""Failure runs and app helpers shared by the Space tests: real explorations of the demo's shapes classifier
pushed to the session LocalHub (a 2x2 space with one failure mode, a 4x4 space with several), planted-region runs, a
hand-made run whose outputs are HTML injections; starting, reaching and stopping the feedback app. The fixtures
that hand these runs to tests live in conftest.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import textwrap
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from conftest import free_port, unique_repo

XSS = "<img src=x onerror=alert(1)>"
CHECKOUT = Path(__file__).resolve().parents[1]


# runs ---------------------------------------------------------------------------------------------


def _grid_run(session_dir: Path, name: str, shapes_model: Path, space: Path) -> tuple[Path, str]:
    """A grid exploration of the shapes classifier over ``space``, pushed once per session; (run dir, repo id)."""
    run_dir = session_dir / "space-runs" / name
    marker = run_dir.parent / f"{name}-repo.txt"
    if marker.exists():
        return run_dir, marker.read_text()
    from fade_hub.demo.shapes import write_seed_folder
    from fade_hub.explore.config import ExploreConfig
    from fade_hub.explore.runner import explore
    from fade_hub.hub import push_run

    seeds = write_seed_folder(session_dir / "space-runs" / "seeds", per_class=6, seed=0)
    explore(ExploreConfig(model=str(shapes_model), seeds=str(seeds), space=str(space), algorithm="grid",
                          output=str(run_dir), show_progress=False))
    repo = unique_repo(f"failures-{name}")
    push_run(run_dir, repo)
    marker.write_text(repo)
    return run_dir, repo


def build_image_run(session_dir: Path, shapes_model: Path, block_space: Path) -> tuple[Path, str]:
    """The 2x2 block space (one failure mode), pushed once per session; (run dir, repo id)."""
    return _grid_run(session_dir, "image", shapes_model, block_space)


# Rotations past the classifier's training and darker lighting: several significant failure modes.
REVIEW_4X4 = {
    "modality": "image",
    "factors": [
        {"name": "rotation", "op": "rotate", "levels": [0, 30, 45, 60]},
        {"name": "brightness", "op": "brightness", "levels": [1.0, 0.5, 0.3, 0.15]},
    ],
}


def build_review_run(session_dir: Path, shapes_model: Path) -> tuple[Path, str]:
    """``REVIEW_4X4`` (several failure modes), pushed once per session; (run dir, repo id)."""
    from fade_hub.perturb import ConceptSpace

    space = session_dir / "space-runs" / "review-4x4.yaml"
    if not space.exists():
        space.parent.mkdir(parents=True, exist_ok=True)
        ConceptSpace.from_dict(REVIEW_4X4).to_yaml(space)
    return _grid_run(session_dir, "review", shapes_model, space)


def build_hostile_text_run(session_dir: Path) -> tuple[Path, str]:
    """A text-generation run whose outputs and inputs carry HTML / Markdown, pushed once; (run dir, repo id)."""
    run_dir = session_dir / "space-runs" / "hostile"
    marker = run_dir.parent / "hostile-repo.txt"
    if marker.exists():
        return run_dir, marker.read_text()
    from fade_hub.hub import push_run
    from fade_hub.perturb import load_space
    from fade_hub.store import RunStore
    from fade_hub.summarize import summarize

    space = load_space("text-default")
    store = RunStore(run_dir)
    store.create({"run_id": "hostile01", "model_id": "tester/echo-model", "task": "text-generation",
                  "space": space.to_dict(), "space_name": space.name, "algorithm": "random", "mode": "single",
                  "budget": 12, "seed": 0})
    records = []
    for query_id in range(12):
        cell = (5, 9, 21)[query_id % 3]
        failing = query_id % 3 != 2 or query_id == 2
        output = XSS if cell == 5 else f"**bold** reply {query_id} <script>alert(2)</script>"
        records.append({
            "run_id": "hostile01", "query_id": query_id, "phase": "explore", "episode": query_id, "step": 0,
            "seed_id": f"prompts/{query_id:02d}", "context": "", **space.level_strings(space.action_from_id(cell)),
            "action_id": cell, "input": f"Say [hi](javascript:alert(3)) #{query_id}",
            "clean_input": f"Say hi #{query_id}", "output": output if failing else "hi",
            "expected": "a friendly greeting", "is_failure": failing, "severity": 2.0 if cell == 5 else 1.0,
            "reward": float(failing), "trajectory": "", "media": "",
            "judge_reason": f"not a greeting {XSS}" if failing else "",  # what an LLM judge says, run text too
        })
    clean = {name: "" for name in space.level_strings(space.action_from_id(0))}
    records += [{
        "run_id": "hostile01", "query_id": 12 + i, "phase": "clean", "episode": -1, "step": 0,
        "seed_id": f"prompts/{i:02d}", "context": "", **clean, "action_id": -1, "input": f"Say hi #{i}",
        "clean_input": "", "output": "hi", "expected": "a friendly greeting", "is_failure": False, "severity": 0.0,
        "reward": 0.0, "trajectory": "", "media": "",
    } for i in range(8)]  # the model greets on clean prompts, so the failing cells are failure modes
    store.append(records)
    store.update_meta(status="finished")
    summarize(store)
    repo = unique_repo("failures-hostile")
    push_run(run_dir, repo)
    marker.write_text(repo)
    return run_dir, repo


# Planted runs: three failure regions each, answers written by hand (a model that fails there), inputs perturbed with
# the space's real ops, the summary and the pushed dataset made by the real code. (region, classes, failure rate)
PLANTED = {
    "image": {
        "space": "demo-shapes", "task": "image-classification", "labels": ["circle", "square", "triangle"],
        "regions": [({"rotation": {"-30", "30"}, "brightness": {"0.2"}}, {"square", "triangle"}, 0.9),
                    ({"brightness": {"0.4"}, "saturation": {"0.0"}}, set(), 0.7),
                    ({"rotation": {"-15"}, "brightness": {"1.0"}}, {"circle"}, 0.85)],
    },
    "text": {
        "space": "text-default", "task": "text-classification", "labels": ["NEGATIVE", "POSITIVE"],
        "regions": [({"case": {"upper"}, "punctuation": {"true"}}, set(), 0.85),
                    ({"typos": {"0.2"}}, {"POSITIVE"}, 0.8),
                    ({"negate": {"true"}, "typos": {"0.1"}}, set(), 0.75)],
    },
}
SENTENCES = {
    "POSITIVE": ["the {n} was wonderful and we loved it", "what a lovely {n}, truly great", "our {n} was excellent",
                 "a brilliant {n} that made us happy", "the {n} worked perfectly all week"],
    "NEGATIVE": ["the {n} was awful and we hated it", "what a dreadful {n}, truly bad", "our {n} was terrible",
                 "a boring {n} that made us angry", "the {n} broke after one day"],
}
NOUNS = ["film", "hotel", "phone", "book", "meal", "show"]


def _planted_fails(spec: dict, levels: dict, label: str, seed_id: str, phase: str) -> bool:
    import random

    for factors, classes, rate in spec["regions"]:
        if all(str(levels[name]) in allowed for name, allowed in factors.items()) and (not classes or label in classes):
            return random.Random(f"{phase}|{seed_id}|{sorted(levels.items())}").random() < rate
    return random.Random(f"{phase}|{seed_id}|{sorted(levels.items())}|bg").random() < 0.02


def build_planted_run(session_dir: Path, kind: str) -> tuple[Path, str]:
    """A run with the three ``PLANTED[kind]`` regions (confirmed on held-out seeds), summarized and pushed once per
    session; (run dir, repo id). Image runs keep their seeds in a local folder, as ``--seeds FOLDER`` does."""
    import random

    run_dir = session_dir / "space-runs" / f"planted-{kind}"
    marker = run_dir.parent / f"planted-{kind}-repo.txt"
    if marker.exists():
        return run_dir, marker.read_text()
    from fade_hub.characterize import characterize
    from fade_hub.hub import push_run
    from fade_hub.perturb import load_space
    from fade_hub.store import RunStore
    from fade_hub.summarize import summarize

    spec = PLANTED[kind]
    space = load_space(spec["space"])
    rng = random.Random(7)
    if kind == "image":
        from fade_hub.demo.shapes import write_seed_folder
        from PIL import Image

        folder = write_seed_folder(run_dir.parent / "planted-seeds", per_class=12, seed=3)
        seeds = [(path.relative_to(folder).as_posix(), path.parent.name, Image.open(path).convert("RGB"))
                 for path in sorted(folder.rglob("*.png"))]
        source = str(folder)
    else:
        seeds = [(f"reviews.jsonl/{i:05d}", label, SENTENCES[label][i % 5].format(n=NOUNS[i % 6]))
                 for i, label in enumerate(["POSITIVE", "NEGATIVE"] * 15)]
        source = "reviews.jsonl"
    held_out = {seed_id for seed_id, _, _ in seeds[2::3]}
    store = RunStore(run_dir)
    store.create({"run_id": f"planted{kind}", "model_id": f"tester/{kind}-model", "task": spec["task"],
                  "space": space.to_dict(), "space_name": space.name, "algorithm": "random", "mode": "single",
                  "budget": 0, "seed": 0, "target": {"labels": spec["labels"], "task": spec["task"]},
                  "judge": {"name": "label", "reference": "the seed's label"},
                  "seeds": {"source": source, "split": "train", "num_seeds": None, "holdout": 0.33,
                            "explore": len(seeds) - len(held_out), "held_out": len(held_out)}})
    query_id = 0

    def record(phase: str, seed: tuple, action: tuple | None) -> dict:
        nonlocal query_id
        seed_id, label, item = seed
        levels = space.level_strings(action) if action is not None else {f.name: "" for f in space.factors}
        fails = action is not None and _planted_fails(spec, levels, label, seed_id, phase)
        perturbed = space.apply(item, action, seed=query_id) if action is not None else item
        wrong = spec["labels"][(spec["labels"].index(label) + 1) % len(spec["labels"])]
        expected = wrong if kind == "text" and levels.get("negate") == "true" else label
        out = {"run_id": f"planted{kind}", "query_id": query_id, "phase": phase, "episode": query_id, "step": 0,
               "seed_id": seed_id, "context": label, **levels,
               "action_id": space.action_id(action) if action is not None else -1,
               "input": perturbed if kind == "text" else "", "clean_input": item if kind == "text" and fails else "",
               "output": (label if expected != label else wrong) if fails else expected, "expected": expected,
               "expected_source": "the seed's label", "judged": True, "is_failure": fails,
               "severity": 12.0 if fails else 0.0, "reward": float(fails), "trajectory": "", "media": ""}
        if fails and kind == "image":
            out["media"] = store.save_image(query_id, perturbed)
        query_id += 1
        return out

    cells = [space.action_from_id(i) for i in range(space.num_cells)]
    explore = [seed for seed in seeds if seed[0] not in held_out]
    records = [record("clean", seed, None) for seed in seeds]
    records += [record("explore", seed, action) for seed in explore for action in rng.sample(cells, min(48, len(cells)))]
    found = characterize(records, space)
    regions = list(found.regions["region_id"][:3])
    for seed in (seed for seed in seeds if seed[0] in held_out):
        for region_id in regions:
            region_cells = found.grid.parse(region_id).cells(space.shape)
            records.append(record("confirm", seed, space.action_from_id(rng.choice(region_cells))))
    store.append(records)
    store.update_meta(status="finished", confirmation={"test": "pooled", "regions": regions,
                                                       "held_out": sorted(held_out), "clean_rate": 0.0})
    summarize(store)
    repo = unique_repo(f"failures-planted-{kind}")
    push_run(run_dir, repo)
    marker.write_text(repo)
    return run_dir, repo



# the app ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def served_app(config):
    """A FeedbackApp launched in this process on a free port; yields (app, url)."""
    from fade_hub.feedback.app import FeedbackApp

    app = FeedbackApp(config)
    try:
        _, url, _ = app.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True)
        yield app, url
    finally:
        app.close()


def app_client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False)


def submit(client, target, verdict, correction="", note=""):
    return client.predict(target, verdict, correction, note, api_name="/submit_feedback")


def withdraw(client, target):
    return client.predict(target, api_name="/withdraw_feedback")


def top_cell(run_dir: Path) -> tuple[str, str, list[str]]:
    """(top failure mode's action id, one of its failing examples, the labels seen) read from the run's files."""
    landscape = pd.read_parquet(run_dir / "data" / "landscape.parquet")
    failures = pd.read_parquet(run_dir / "data" / "failures.parquet")
    top = int(landscape.sort_values("rank").iloc[0]["action_id"])
    example = int(failures[failures["action_id"] == top]["query_id"].iloc[0])
    labels = sorted(set(failures["expected"]) | set(failures["output"]))
    return str(top), f"q{example}", labels


def run_id_of(run_dir: Path) -> str:
    return json.loads((run_dir / "run.json").read_text())["run_id"]


def wait_for_app(url: str, process: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the app exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"the app did not serve {url} within {timeout} s:\n{log.read_text()[-3000:]}")


def start_app(args: list[str], log: Path, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    handle = log.open("ab")
    return subprocess.Popen(args, cwd=cwd, env=env or dict(os.environ), stdout=handle, stderr=subprocess.STDOUT)


def stop_app(process: subprocess.Popen, log: Path) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        assert process.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()


BOOTSTRAP = textwrap.dedent(
    """
    import importlib.util, runpy, sys
    checkout = sys.argv[1]
    # drop the checkout (but not a virtualenv that lives inside it, as CI's does) and the editable finder
    in_checkout = lambda p: p.startswith(checkout) and "site-packages" not in p
    sys.path[:] = [p for p in sys.path if p and not in_checkout(p) and "__editable__" not in p]
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path_hooks[:] = [h for h in sys.path_hooks if "editable" not in repr(h).lower()]
    sys.path_importer_cache.clear()
    assert importlib.util.find_spec("fade_hub") is None, "the checkout is still importable"
    sys.path.insert(0, ".")
    runpy.run_path("app.py", run_name="__main__")
    """
)


