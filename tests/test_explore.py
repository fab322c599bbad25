"""Exploration end to end on real tiny models: every algorithm and task, budget, resume, modes, confirmation."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from fade_hub.cli import main
from fade_hub.env import FailureEnv
from fade_hub.errors import BadConfig, ResumeMismatch
from fade_hub.explore.config import ExploreConfig
from fade_hub.explore.querier import Querier
from fade_hub.explore.runner import explore
from fade_hub.explore.sequential import walk
from fade_hub.judges import make_judge
from fade_hub.perturb import ConceptSpace, format_level
from fade_hub.seeds import SeedConfig, load_seeds
from fade_hub.store import RunStore
from fade_hub.targets import load_target
from fade_hub.demo.shapes import write_seed_folder

ALGORITHMS = ("ppo", "random", "epsilon-greedy", "bo", "covering", "grid")
TASKS = ("image-classification", "text-classification", "text-generation", "summarization", "text-to-image")
SPACES = {
    "image": {
        "modality": "image",
        "factors": [
            {"name": "rotation", "op": "rotate", "levels": [0, 15]},
            {"name": "brightness", "op": "brightness", "levels": [1.0, 0.3]},
        ],
    },
    "text": {
        "modality": "text",
        "factors": [
            {"name": "case", "op": "case", "levels": ["none", "upper"]},
            {"name": "typos", "op": "typos", "levels": [0, 0.3]},
        ],
    },
    "image3": {
        "modality": "image",
        "factors": [
            {"name": "rotation", "op": "rotate", "levels": [-15, 0, 15]},
            {"name": "brightness", "op": "brightness", "levels": [1.0, 0.6, 0.3]},
        ],
    },
    "prompt": {
        "modality": "prompt",
        "factors": [
            {"name": "descriptor", "op": "slot", "levels": ["unique", "cool"]},
            {"name": "profession", "op": "slot", "levels": ["scientist", "artist"]},
        ],
    },
}
MODALITY = {
    "image-classification": "image",
    "text-classification": "text",
    "text-generation": "text",
    "summarization": "text",
    "text-to-image": "prompt",
}
# a PPO step batch is num_generations (2) x 4 prompts = 8 completions
PPO = {"num_generations": 2, "num_iterations": 2}


@pytest.fixture(scope="module")
def shape_seeds(tmp_path_factory) -> Path:
    """12 shape images in LABEL/ folders; the 3x3 image space lies next to them (see ``image_config``)."""
    root = tmp_path_factory.mktemp("shapes")
    ConceptSpace.from_dict(SPACES["image3"]).to_yaml(root / "image3.yaml")
    return write_seed_folder(root / "seeds", per_class=3, seed=0)


def image3(shape_seeds: Path) -> str:
    """The 3x3 image space written next to the shape seeds."""
    return str(shape_seeds.parent / "image3.yaml")


@pytest.fixture(scope="module")
def short_docs(tmp_path_factory) -> Path:
    """Four short documents for the summarizer (a .jsonl seed file)."""
    path = tmp_path_factory.mktemp("docs") / "docs.jsonl"
    docs = ["the children play in the garden after school", "scientists found water on a distant planet last year",
            "the food is good but the service is slow", "we went to the city to see the old market"]
    path.write_text("".join(json.dumps({"text": doc}) + "\n" for doc in docs))
    return path


@pytest.fixture(scope="module")
def spaces(tmp_path_factory) -> dict[str, Path]:
    """The 2x2 space YAML of each modality."""
    folder = tmp_path_factory.mktemp("spaces")
    paths = {}
    for modality in ("image", "text", "prompt"):
        paths[modality] = folder / f"{modality}.yaml"
        ConceptSpace.from_dict(SPACES[modality]).to_yaml(paths[modality])
    return paths


def task_config(task: str, tiny_models, seeds: dict[str, Path], spaces: dict[str, Path], **overrides) -> ExploreConfig:
    """A small, quiet config for ``task``'s tiny model, its seeds, judge and 2x2 space."""
    settings: dict = dict(
        model=str(tiny_models(task)),
        space=str(spaces[MODALITY[task]]),
        num_seeds=4,
        batch_size=8,
        confirm_top=1,
        confirm_seeds=2,
        show_progress=False,
        seed=1,
        **PPO,
    )
    if task == "image-classification":
        settings["seeds"] = str(seeds["image"])
    elif task == "text-generation":
        settings.update(judge_regex=r"\w", max_new_tokens=3)
    elif task == "summarization":
        settings.update(seeds=str(seeds["docs"]), max_new_tokens=3)
    elif task == "text-to-image":
        settings.update(clip=str(tiny_models("clip")), num_inference_steps=2)
    settings.update(overrides)
    return ExploreConfig(**settings)


def image_config(tiny_models, shape_seeds: Path, output: Path, **overrides) -> ExploreConfig:
    """A quiet config for the tiny image classifier on the shape seeds and a 3x3 space."""
    settings: dict = dict(
        model=str(tiny_models("image-classification")),
        seeds=str(shape_seeds),
        space=image3(shape_seeds),
        output=str(output),
        batch_size=8,
        confirm_top=2,
        confirm_seeds=2,
        show_progress=False,
        seed=3,
        **PPO,
    )
    settings.update(overrides)
    return ExploreConfig(**settings)


def explore_rows(rows: list[dict]) -> list[dict]:
    """The explore-phase records."""
    return [r for r in rows if r["phase"] == "explore"]


def signature(rows: list[dict]) -> list[tuple]:
    """What must match between two runs of the same settings (run ids differ)."""
    keys = ("query_id", "phase", "seed_id", "action_id", "is_failure")
    return [(*(r[key] for key in keys), round(r["severity"], 5)) for r in rows]


def assert_valid_actions(rows: list[dict], space: ConceptSpace) -> None:
    """Every record names levels of the space, and its action_id is the row-major index of those levels."""
    for r in rows:
        indices = []
        for factor in space.factors:
            texts = [format_level(level) for level in factor.levels]
            assert r[factor.name] in texts, (factor.name, r[factor.name])
            indices.append(texts.index(r[factor.name]))
        assert r["action_id"] == space.action_id(indices)


def assert_well_formed_run(run, space: ConceptSpace, budget: int) -> list[dict]:
    """Clean queries of every seed (but for prompts), exactly ``budget`` explore queries, consecutive unique ids,
    valid actions, held-out-only confirmation."""
    rows = RunStore(run.path).read_queries()
    explored = explore_rows(rows)
    cleaned = [r for r in rows if r["phase"] == "clean"]
    assert len(explored) == budget
    assert [r["query_id"] for r in rows] == list(range(len(rows)))
    assert [r["phase"] for r in rows] == ["clean"] * len(cleaned) + ["explore"] * budget + ["confirm"] * (
        len(rows) - budget - len(cleaned))
    assert bool(cleaned) == (space.modality != "prompt") and all(r["action_id"] == -1 for r in cleaned)
    assert_valid_actions(explored + [r for r in rows if r["phase"] == "confirm"], space)
    confirm_seeds = {r["seed_id"] for r in rows if r["phase"] == "confirm"}
    assert not confirm_seeds & {r["seed_id"] for r in explored}
    assert confirm_seeds <= {r["seed_id"] for r in cleaned} or space.modality == "prompt"
    assert run.meta["queries"] == len(rows) and run.meta["failures"] == sum(r["is_failure"] for r in rows)
    assert run.meta["status"] == "finished" and run.meta["budget"] == budget
    return rows


def assert_no_wasted_queries(rows: list[dict], explore_seeds: int) -> None:
    """No explore query repeats an answered (cell, seed) pair while that cell still had an unused seed."""
    asked: dict[int, set[str]] = defaultdict(set)
    for r in explore_rows(rows):
        cell = asked[r["action_id"]]
        assert r["seed_id"] not in cell or len(cell) == explore_seeds, (r["query_id"], r["action_id"], len(cell))
        cell.add(r["seed_id"])


# every algorithm on every task -----------------------------------------------------------------


# the fast tier runs each algorithm once and each task at least once (a diagonal); the rest of the matrix is slow
DIAGONAL = set(zip(ALGORITHMS, TASKS + TASKS))
MATRIX = [pytest.param(algorithm, task, id=f"{algorithm}-{task}",
                       marks=() if (algorithm, task) in DIAGONAL else pytest.mark.slow)
          for algorithm in ALGORITHMS for task in TASKS]


@pytest.mark.parametrize(("algorithm", "task"), MATRIX)
def test_every_algorithm_on_every_task(algorithm, task, tiny_models, shape_seeds, short_docs, spaces, tmp_path):
    budget = None if algorithm == "grid" else (16 if algorithm == "ppo" else 8)
    seeds = {"image": shape_seeds, "docs": short_docs}
    output = str(tmp_path / "run")
    config = task_config(task, tiny_models, seeds, spaces, algorithm=algorithm, budget=budget, output=output)
    run = explore(config)
    space = ConceptSpace.from_dict(SPACES[MODALITY[task]])
    held_out = run.meta["seeds"]["held_out"]
    explore_seeds = run.meta["seeds"]["explore"]
    assert held_out >= 1 and explore_seeds + held_out == 4
    expected = space.num_cells * explore_seeds if algorithm == "grid" else budget
    rows = assert_well_formed_run(run, space, expected)
    assert all(r["run_id"] == run.meta["run_id"] and r["output"] is not None for r in rows)
    # only regions that pass screening are asked on the held-out seeds: one query per seed and region
    tested = (run.meta.get("confirmation") or {}).get("regions") or []
    confirm = [r for r in rows if r["phase"] == "confirm"]
    assert bool(confirm) == bool(tested) and len(confirm) <= len(tested) * held_out + held_out
    assert_no_wasted_queries(rows, explore_seeds)
    if algorithm == "grid":  # every cell on every explore seed, once
        pairs = {(r["seed_id"], r["action_id"]) for r in explore_rows(rows)}
        assert len(pairs) == expected and {a for _, a in pairs} == set(range(space.num_cells))
    policy = RunStore(run.path).read_policy()
    if algorithm == "ppo":
        assert len(policy) == space.num_cells and sum(policy) == pytest.approx(1.0, abs=1e-4)
        assert all(p > 0 for p in policy)
    else:
        assert policy is None
    if task == "text-generation":  # the regex judge matches any word character
        assert all(r["is_failure"] == bool(re.search(r"\w", r["output"])) for r in rows)
    if task == "text-to-image":
        assert all(r["media"] for r in rows if r["is_failure"])


# budget, validity, determinism ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "mode"),
    [(a, m) for a in ("random", "epsilon-greedy", "ppo") for m in ("single", "sequential")] + [("bo", "single")],
)
def test_budget_is_spent_exactly(algorithm, mode, tiny_models, shape_seeds, tmp_path):
    budget = 21  # not a multiple of the batch size, the PPO batch or the episode length
    config = image_config(
        tiny_models, shape_seeds, tmp_path / "run", algorithm=algorithm, mode=mode, budget=budget, max_steps=4,
        confirm_top=0,
    )
    run = explore(config)
    space = ConceptSpace.from_dict(run.meta["space"])
    rows = assert_well_formed_run(run, space, budget)
    assert {r["phase"] for r in rows} == {"clean", "explore"}  # confirmation off


@pytest.mark.slow  # end to end (a served app, a subprocess or timed requests): the slow tier
def test_same_seed_same_records_other_seed_other_records(tiny_models, shape_seeds, tmp_path):
    def records(name: str, algorithm: str, seed: int) -> list[tuple]:
        config = image_config(tiny_models, shape_seeds, tmp_path / name, algorithm=algorithm, budget=24, seed=seed)
        return signature(RunStore(explore(config).path).read_queries())

    first = records("random-a", "random", 5)
    assert records("random-b", "random", 5) == first
    assert records("random-c", "random", 6) != first
    assert records("ppo-a", "ppo", 5) == records("ppo-b", "ppo", 5)
    assert records("bo-a", "bo", 5) == records("bo-b", "bo", 5) != records("bo-c", "bo", 6)


@pytest.mark.parametrize("algorithm", [pytest.param("ppo", marks=pytest.mark.slow), "bo",
                                       pytest.param("random", marks=pytest.mark.slow)])
def test_stop_when_converged_returns_the_rest_of_the_budget(algorithm, shapes_model, block_space, tmp_path, capsys):
    """The demo model fails in one region of the 2x2 block space: once the screened regions have stayed the same for
    a window of queries, the search stops, says so, and the regions it would confirm are those of its log."""
    from fade_hub.characterize import characterize
    from fade_hub.run import Run

    seeds = write_seed_folder(tmp_path / "seeds", 8, seed=5)
    budget, window = 600, 50
    flags = ["explore", str(shapes_model), "--seeds", str(seeds), "--concepts", str(block_space), "--algorithm",
             algorithm, "--random-seed", "3", "--batch-size", "16", "--confirm-top", "0", "--num-generations", "2",
             "--num-iterations", "2", "--no-progress"]  # fmt: skip
    assert main([*flags, "--budget", str(budget), "--stop-when-converged", "--convergence-window", str(window),
                 "--output", str(tmp_path / "run")]) == 0
    run = Run.open(tmp_path / "run")
    rows = RunStore(run.path).read_queries()
    explored = explore_rows(rows)
    converged = run.meta["converged"]
    assert converged["explore_queries"] == len(explored) < budget and converged["budget"] == budget
    assert converged["window"] == window and converged["regions"]
    assert (f"converged after {len(explored)} explore queries: the screened regions stayed the same for the last "
            f"{window}; {budget - len(explored)} of the budget of {budget} not spent") in capsys.readouterr().out
    space = ConceptSpace.from_dict(run.meta["space"])
    clean = [r for r in rows if r["phase"] == "clean"]
    for end in (len(explored) - window, len(explored)):  # the same screened regions at the window's start and end
        regions = characterize(clean + explored[:end], space, held_out=set()).regions
        assert sorted(regions.loc[regions["screened"], "region_id"]) == converged["regions"]
    assert main([*flags, "--budget", "40", "--output", str(tmp_path / "whole")]) == 0
    whole = Run.open(tmp_path / "whole")
    spent = sum(r["phase"] == "explore" for r in RunStore(whole.path).read_queries())
    assert spent == 40 and "converged" not in whole.meta  # without the flag: the whole budget


@pytest.mark.slow  # three PPO trainings; the fast tier trains PPO in the diagonal and the determinism test
def test_ppo_reward_failures_is_the_reward_before_coverage(tiny_models, shape_seeds, tmp_path):
    def records(name: str, reward: str) -> list[tuple]:
        config = image_config(tiny_models, shape_seeds, tmp_path / name, algorithm="ppo", budget=48, seed=2,
                              ppo_reward=reward, confirm_top=0)
        run = explore(config)
        assert run.meta["config"]["ppo"]["ppo_reward"] == reward
        return signature([r for r in RunStore(run.path).read_queries() if r["phase"] == "explore"])

    failures, coverage = records("failures", "failures"), records("coverage", "coverage")
    assert len(failures) == len(coverage) == 48
    assert failures[:8] == coverage[:8]  # the first batch comes from the same untrained policy
    assert failures != coverage  # after it, the two rewards train different policies
    assert records("failures-again", "failures") == failures


def test_queries_config_loads_with_datasets(tiny_models, shape_seeds, tmp_path):
    import datasets

    run = explore(image_config(tiny_models, shape_seeds, tmp_path / "run", algorithm="epsilon-greedy", budget=20))
    logged = RunStore(run.path).read_queries()
    cache = str(tmp_path / "cache")  # stale caches across runs are the subject of the next test
    loaded = datasets.load_dataset(str(run.path), "queries", split="train", cache_dir=cache)
    assert len(loaded) == len(logged) == run.meta["queries"]
    for column in ("run_id", "query_id", "phase", "seed_id", "rotation", "brightness", "action_id",
                   "output", "is_failure", "severity", "reward"):
        assert loaded[column] == [r[column] for r in logged], column
    failures = datasets.load_dataset(str(run.path), "failures", split="train", cache_dir=cache)
    assert len(failures) == sum(r["is_failure"] for r in logged)
    landscape = datasets.load_dataset(str(run.path), "landscape", split="train", cache_dir=cache)
    assert len(landscape) == 9 and sum(landscape["queries"]) == 20


def test_load_dataset_sees_the_current_rows_of_each_run(tiny_models, shape_seeds, tmp_path):
    import datasets

    cache = str(tmp_path / "cache")
    clean = 9  # every seed once, unperturbed
    first = explore(image_config(tiny_models, shape_seeds, tmp_path / "a" / "run", algorithm="random", budget=6,
                                 confirm_top=0))
    assert len(datasets.load_dataset(str(first.path), "queries", split="train", cache_dir=cache)) == clean + 6
    second = explore(image_config(tiny_models, shape_seeds, tmp_path / "b" / "run", algorithm="random", budget=9,
                                  confirm_top=0))
    assert len(datasets.load_dataset(str(second.path), "queries", split="train", cache_dir=cache)) == clean + 9
    shutil.rmtree(first.path)  # the user deletes a run and explores again into the same folder
    explore(image_config(tiny_models, shape_seeds, first.path, algorithm="random", budget=12, confirm_top=0))
    assert len(datasets.load_dataset(str(first.path), "queries", split="train", cache_dir=cache)) == clean + 12


def test_confirmation_asks_each_held_out_seed_once_per_screened_region(shapes_model, block_space, tmp_path):
    """24 shape seeds: 12 held out, 4 per class; the dark rotated cell is a region, confirmed on its classes' seeds."""
    seeds = write_seed_folder(tmp_path / "seeds", 8, seed=5)
    config = ExploreConfig(model=str(shapes_model), seeds=str(seeds), space=str(block_space), algorithm="grid",
                           seed=3, output=str(tmp_path / "run"), show_progress=False, batch_size=16)
    run = explore(config)
    rows = RunStore(run.path).read_queries()
    confirmation = run.meta["confirmation"]
    held = set(confirmation["held_out"])
    assert len(held) == 12 and {s.split("/")[0] for s in held} == {"circle", "square", "triangle"}
    assert sum(s.startswith("square/") for s in held) == 4  # balanced across classes
    assert confirmation["test"] == "pooled" and confirmation["clean_rate"] == 0.0
    confirm = [r for r in rows if r["phase"] == "confirm"]
    assert {r["seed_id"] for r in explore_rows(rows)}.isdisjoint(held) and {r["seed_id"] for r in confirm} <= held
    region = run.regions.iloc[0]
    assert confirmation["regions"][0] == region["region_id"] and region["confirmed"]
    assert region["description"].startswith("rotation 40")  # (40, 1.0) fails too on squares and triangles
    classes = region["classes"] if len(region["classes"]) else ["circle", "square", "triangle"]
    eligible = [s for s in held if s.split("/")[0] in classes]
    assert sorted(r["seed_id"] for r in confirm) == sorted(eligible)  # each eligible seed once
    assert {r["action_id"] for r in confirm} <= set(region["cells"]) and all(r["episode"] == -1 for r in confirm)
    assert region["confirm_seeds"] == len(eligible)


@pytest.mark.parametrize("algorithm", [
    pytest.param(algorithm, marks=() if algorithm == "covering" else pytest.mark.slow)
    for algorithm in ("random", "epsilon-greedy", "bo", "covering", "ppo")])
def test_every_explorer_spends_no_query_on_an_answered_pair(algorithm, tiny_models, shape_seeds, tmp_path):
    """With more budget than (cell, seed) pairs, each explorer's repeats wait until a cell's seeds are used up."""
    config = image_config(tiny_models, shape_seeds, tmp_path / algorithm, algorithm=algorithm, budget=96,
                          confirm_top=0)
    run = explore(config)
    rows = RunStore(run.path).read_queries()
    assert_no_wasted_queries(rows, run.meta["seeds"]["explore"])
    pairs = {(r["action_id"], r["seed_id"]) for r in explore_rows(rows)}
    repeats = 96 - len(pairs)
    assert run.meta.get("repeated_pairs", 0) == repeats


# sequential (microscopic) mode --------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["random", pytest.param("ppo", marks=pytest.mark.slow)])
def test_sequential_episodes_stop_at_first_failure(algorithm, tiny_models, shape_seeds, tmp_path):
    max_steps = 5
    config = image_config(tiny_models, shape_seeds, tmp_path / "run", algorithm=algorithm, mode="sequential",
                          budget=60, max_steps=max_steps, confirm_top=0)
    run = explore(config)
    space = ConceptSpace.from_dict(run.meta["space"])
    rows = explore_rows(RunStore(run.path).read_queries())
    assert len(rows) == 60
    episodes = defaultdict(list)
    for r in rows:
        episodes[r["episode"]].append(r)
    start = [1, 0]  # the neutral cell: rotation 0, brightness 1.0
    budget_cut = 0
    for steps in episodes.values():
        steps.sort(key=lambda r: r["step"])
        assert [r["step"] for r in steps] == list(range(1, len(steps) + 1))
        assert len({r["seed_id"] for r in steps}) == 1
        assert not any(r["is_failure"] for r in steps[:-1])  # nothing after a failure
        if not steps[-1]["is_failure"] and len(steps) < max_steps:
            budget_cut += 1
        assert len(steps) <= max_steps
        for r in steps:
            cells = json.loads(r["trajectory"])
            assert len(cells) == r["step"] + 1 and cells[0] == start
            assert space.action_id(cells[-1]) == r["action_id"]
            for before, after in zip(cells, cells[1:]):
                assert sum(abs(a - b) for a, b in zip(before, after)) <= 1  # one small move per step
        for earlier, later in zip(steps, steps[1:]):
            assert json.loads(later["trajectory"])[:-1] == json.loads(earlier["trajectory"])
    assert budget_cut <= 8  # only the last batch of episodes may be cut by the budget
    assert any(r["is_failure"] for r in rows)


def test_walk_reward_is_score_minus_alpha_per_step(tiny_models, shape_seeds, tmp_path):
    target = load_target(str(tiny_models("image-classification")), device="cpu")
    seeds = load_seeds(SeedConfig(str(shape_seeds)), "image", target.id2label)
    space = ConceptSpace.from_dict(SPACES["image"])
    alpha = 0.1
    env = FailureEnv(target, make_judge(target.task, None, target), space, seeds, mode="sequential", max_steps=3,
                     step_penalty=alpha, severity_weight=0.5)
    store = RunStore(tmp_path / "run")
    store.create({"run_id": "r"})
    querier = Querier(env, store, run_id="r", budget=100, show_progress=False)
    ids = [s.seed_id for s in seeds]
    episodes = walk(querier, ids, first_episode=0, choose=lambda i, cell, t: (i + t) % 4)
    for seed_index, episode in enumerate(episodes):
        last = episode.outcomes[-1]
        score = (1 + 0.5 * last.severity) if last.is_failure else 0.0
        assert episode.reward == pytest.approx(score - alpha * len(episode.outcomes))
        # the gymnasium env gives the same return, step by step
        env.reset(options={"seed_index": seed_index})
        total, t = 0.0, 0
        while True:
            _, reward, terminated, truncated, _ = env.step((seed_index + t) % 4)
            total, t = total + reward, t + 1
            if terminated or truncated:
                break
        assert t == len(episode.outcomes) and total == pytest.approx(episode.reward)
    assert querier.spent == sum(len(e.outcomes) for e in episodes)


# resume after a crash ---------------------------------------------------------------------------


def _kill_mid_run(args: list[str], log: Path, min_lines: int, cwd: Path, sig: int) -> tuple[int, int]:
    """Start ``fade-hub ARGS`` in a subprocess, signal it once the log has ``min_lines`` lines.

    Returns the exit status and the number of lines in the log after it ended.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "fade_hub.cli", *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if log.exists() and log.read_bytes().count(b"\n") >= min_lines:
                process.send_signal(sig)
                break
            if process.poll() is not None:
                pytest.fail(f"the run ended before it could be interrupted: {process.stderr.read().decode()[-2000:]}")
            time.sleep(0.01)
        else:
            pytest.fail("the run wrote no queries in time")
        status = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    return status, log.read_bytes().count(b"\n")


STOP = ["--stop-when-converged", "--convergence-window", "24"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The ``signature`` of an uninterrupted run of the CLI flags given (their ``--output`` aside), each run once per
    module: tests that interrupt the same run in different ways compare with one reference."""
    runs: dict[tuple[str, ...], list[tuple]] = {}

    def reference(flags: list[str]) -> list[tuple]:
        at = flags.index("--output") + 1
        key = (*flags[:at], *flags[at + 1:])
        if key not in runs:
            output = tmp_path_factory.mktemp("reference") / "run"
            assert main([*flags[:at], str(output), *flags[at + 1:]]) == 0
            runs[key] = signature(RunStore(output).read_queries())
        return runs[key]

    return reference


@pytest.mark.parametrize(
    ("algorithm", "sig", "budget", "extra"),
    [
        # the fast tier resumes a stopped run in tests/test_remote_explore.py; killing a process is slow
        pytest.param("random", signal.SIGKILL, 200, [], marks=pytest.mark.slow),
        pytest.param("random", signal.SIGINT, 200, [], marks=pytest.mark.slow),
        pytest.param("bo", signal.SIGKILL, 400, STOP, marks=pytest.mark.slow),
        pytest.param("ppo", signal.SIGKILL, 160, [], marks=pytest.mark.slow),
    ],
    ids=["random-sigkill", "random-sigint", "bo-stop-sigkill", "ppo-sigkill"],
)
def test_resume_after_interrupt_matches_uninterrupted_run(
    algorithm, sig, budget, extra, tiny_models, shape_seeds, tmp_path, capsys, uninterrupted
):
    model = str(tiny_models("image-classification"))
    output = tmp_path / "run"
    flags = [
        "explore", model, "--seeds", str(shape_seeds), "--algorithm", algorithm, "--budget", str(budget),
        "--batch-size", "2", "--random-seed", "11", "--confirm-top", "2", "--confirm-seeds", "2", "--num-generations", "2",
        "--num-iterations", "2", "--concepts", image3(shape_seeds), "--output", str(output),
        "--no-progress", *extra,
    ]
    status, written = _kill_mid_run(flags, output / "logs" / "queries.jsonl", 8, tmp_path, sig)
    assert 8 <= written < budget
    assert status == (-signal.SIGKILL if sig == signal.SIGKILL else 130)  # Ctrl-C: the CLI's own exit status
    log = output / "logs" / "queries.jsonl"
    if sig == signal.SIGKILL:  # a crash in the middle of a write leaves half a line: resume must cut it
        with log.open("ab") as handle:
            handle.write(b'{"run_id": "x", "query_id": ')
    assert RunStore(output).read_meta()["status"] == "running"

    assert main([*flags, "--resume"]) == 0, capsys.readouterr().err
    resumed = RunStore(output).read_queries()
    ids = [r["query_id"] for r in resumed]
    explored = len(explore_rows(resumed))
    assert (explored < budget) if extra else (explored == budget)  # a converged search returns the rest
    assert len(ids) == len(set(ids)) == ids[-1] + 1
    assert RunStore(output).read_meta()["status"] == "finished"

    assert signature(resumed) == uninterrupted(flags)


# bad input --------------------------------------------------------------------------------------


def cli_error(capsys, argv: list[str]) -> str:
    """Run the CLI, expect exit 2 with a single ``error:`` line, return that line."""
    capsys.readouterr()  # drop what building the tiny model printed
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("budget", ["0", "-5"])
def test_budget_must_be_positive(budget, capsys, tiny_models, shape_seeds, tmp_path):
    line = cli_error(capsys, ["explore", str(tiny_models("image-classification")), "--seeds", str(shape_seeds),
                              "--budget", budget, "--output", str(tmp_path / "run"), "--no-progress"])
    assert "--budget" in line and budget in line
    assert not (tmp_path / "run").exists()
    with pytest.raises(BadConfig, match="budget"):
        ExploreConfig(model="m", budget=int(budget)).validate()


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--algorithm", "grid", "--episodes", "sequential"], "--episodes single"),
        (["--algorithm", "bo", "--episodes", "sequential"], "--episodes single"),
        (["--algorithm", "grid", "--stop-when-converged"], "--stop-when-converged"),
        (["--convergence-window", "0"], "--convergence-window"),
        (["--novelty-bonus", "-1"], "--novelty-bonus"),
        (["--coverage-power", "0"], "--coverage-power"),
        (["--algorithm", "epsilon-greedy", "--epsilon", "2"], "--epsilon"),
        (["--learning-rate", "-1"], "--learning-rate"),
        (["--num-generations", "1"], "--num-generations"),
        (["--entropy-coef", "-0.1"], "--entropy-coef"),
        (["--batch-size", "0"], "--batch-size"),
        (["--holdout", "1.5"], "--holdout"),
    ],
    ids=["grid-sequential", "bo-sequential", "stop-grid", "convergence-window", "novelty-bonus", "coverage-power",
         "epsilon", "learning-rate", "num-generations", "entropy-coef", "batch-size", "holdout"],
)
def test_bad_options_fail_before_the_run_directory_exists(flags, needle, capsys, tiny_models, shape_seeds, tmp_path):
    output = tmp_path / "run"
    line = cli_error(capsys, ["explore", str(tiny_models("image-classification")), "--seeds", str(shape_seeds),
                              "--output", str(output), "--no-progress", *flags])
    assert needle in line
    assert not output.exists()  # fixing the flag and rerunning needs no cleanup


def test_grid_too_large_needs_force(capsys, tiny_models, shape_seeds, tmp_path):
    big = tmp_path / "big.yaml"
    ConceptSpace.from_dict({
        "modality": "image",
        "factors": [
            {"name": "rotation", "op": "rotate", "levels": list(range(-35, 35, 5))},
            {"name": "brightness", "op": "brightness", "levels": [round(0.3 + 0.05 * i, 2) for i in range(14)]},
            {"name": "contrast", "op": "contrast", "levels": [round(0.3 + 0.05 * i, 2) for i in range(14)]},
        ],
    }).to_yaml(big)
    base = ["explore", str(tiny_models("image-classification")), "--seeds", str(shape_seeds), "--concepts", str(big),
            "--algorithm", "grid", "--no-progress", "--confirm-top", "0"]
    line = cli_error(capsys, [*base, "--output", str(tmp_path / "a")])
    assert "--force" in line and "2744 cells x 9 seeds" in line  # 24696 queries, over the 20000 limit
    line = cli_error(capsys, [*base, "--budget", "12", "--output", str(tmp_path / "b")])
    assert "--force" in line
    assert main([*base, "--budget", "12", "--force", "--output", str(tmp_path / "c")]) == 0
    rows = explore_rows(RunStore(tmp_path / "c").read_queries())
    assert [r["action_id"] for r in rows] == list(range(12))  # row-major order, cut at the budget
    assert len({r["seed_id"] for r in rows}) == 1


def test_resume_on_another_model_or_space(capsys, tiny_models, shape_seeds, tmp_path):
    output = tmp_path / "run"
    base = ["--seeds", str(shape_seeds), "--algorithm", "random", "--budget", "6", "--confirm-top", "0",
            "--no-progress", "--output", str(output), "--concepts", image3(shape_seeds)]
    assert main(["explore", str(tiny_models("image-classification")), *base]) == 0
    before = (output / "logs" / "queries.jsonl").read_bytes()
    line = cli_error(capsys, ["explore", str(tiny_models("remote-code")), "--trust-remote-code", *base, "--resume"])
    assert "model_id" in line and "cannot resume" in line
    line = cli_error(capsys, ["explore", str(tiny_models("image-classification")), *base, "--concepts",
                              "builtin:paper-image", "--resume"])
    assert "space_fingerprint" in line
    budget = base.index("--budget") + 1
    line = cli_error(capsys, ["explore", str(tiny_models("image-classification")), *base[:budget], "9",
                              *base[budget + 1:], "--resume"])
    assert "budget is 6 but this run has 9" in line  # another budget would replay other decisions
    line = cli_error(capsys, ["explore", str(tiny_models("image-classification")), *base, "--severity-weight", "2",
                              "--resume"])
    assert "severity_weight is 0.0 but this run has 2.0" in line  # rewards would mix two settings
    assert (output / "logs" / "queries.jsonl").read_bytes() == before  # refused runs leave the log alone
    with pytest.raises(ResumeMismatch):
        explore(image_config(tiny_models, shape_seeds, output, algorithm="random", budget=6, confirm_top=0,
                             seed=0, space="builtin:paper-image", resume=True))


def test_resume_on_empty_or_missing_dir(capsys, tiny_models, shape_seeds, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for output in (empty, tmp_path / "missing"):
        line = cli_error(capsys, ["explore", str(tiny_models("image-classification")), "--seeds", str(shape_seeds),
                                  "--budget", "4", "--output", str(output), "--resume", "--no-progress"])
        assert "--resume" in line and "no run" in line
    assert not any(empty.iterdir()) and not (tmp_path / "missing").exists()


def test_output_holding_a_run_needs_resume(capsys, tiny_models, shape_seeds, tmp_path):
    output = tmp_path / "run"
    base = ["explore", str(tiny_models("image-classification")), "--seeds", str(shape_seeds), "--algorithm", "random",
            "--budget", "6", "--confirm-top", "0", "--no-progress", "--concepts", image3(shape_seeds),
            "--output", str(output)]
    assert main(base) == 0
    before = (output / "logs" / "queries.jsonl").read_bytes()
    line = cli_error(capsys, base)
    assert "already holds a run" in line and "--resume" in line
    assert (output / "logs" / "queries.jsonl").read_bytes() == before
    line = cli_error(capsys, [*base[:-1], str(shape_seeds)])  # a folder that is not a run
    assert "not empty" in line
