"""The restructure loops the mitigation tests run, shared with ``benchmarks/mitigation_seeds.py`` so that the
benchmark measures the very figures the tests assert on.

``closed_loop`` is the loop itself: it explores a fixture model over a small space on the Hub that ``HF_ENDPOINT``
names (the tests' LocalHub), pushes the run, reviews it through the feedback app's API and returns a dict: the run
and its repos, ``mitigation`` (the ``MitigateConfig`` settings the tests train with, every one but ``output`` and
``seed``) and ``reexplore`` (the ``ExploreConfig`` settings that explore a variant as the tests do). Each ``*_loop``
function is one task's model, space, seeds, review and settings given to it. ``mitigate_loop`` then trains one
adapter of the loop with a given seed.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Callable

import yaml

# A 2x2 space with a cell the demo's shapes classifier really fails: dark *and* rotated past its training (it saw
# the darkest shapes only near upright, rotations up to 35 degrees), so that runs over it have a significant failure
# mode: 0.64 of seeds fail there, 0.09 at (40, 1.0), 0.01 at (0, 0.2), none clean.
BLOCK_2X2 = {
    "modality": "image",
    "factors": [
        {"name": "rotation", "op": "rotate", "levels": [0, 40]},
        {"name": "brightness", "op": "brightness", "levels": [1.0, 0.2]},
    ],
}
TEXT_SPACE = {"modality": "text", "factors": [
    {"name": "typos", "op": "typos", "levels": [0, 0.1]},
    {"name": "case", "op": "case", "levels": ["none", "upper"]},
]}
GENERATION_SPACE = TEXT_SPACE
SUMMARIZATION_SPACE = {"modality": "text", "factors": [
    {"name": "case", "op": "case", "levels": ["none", "upper"]},
    {"name": "punctuation", "op": "punctuation", "levels": [False, True]},
]}
PREFERRED = "here is a friendly answer."


def unique_repo(prefix: str, namespace: str = "local-user") -> str:
    """A repo id no other loop uses."""
    return f"{namespace}/{prefix}-{uuid.uuid4().hex[:8]}"


def upload(folder: Path, prefix: str, repo_type: str = "model") -> str:
    """A new repo holding ``folder``."""
    from huggingface_hub import HfApi

    repo = unique_repo(prefix)
    HfApi().create_repo(repo, repo_type=repo_type)
    HfApi().upload_folder(repo_id=repo, folder_path=folder, repo_type=repo_type)
    return repo


def review(run_repo: str, feedback_repo: str, verdicts: dict[str, str],
           corrections: tuple[tuple[str, str, str], ...] = ()) -> list[dict]:
    """Verdicts (target -> verdict) and corrections (target, verdict, correction) given through the feedback app's
    API, as its HTTP endpoint does, then pushed; the records of the corrections."""
    from fade_hub.feedback.app import AppConfig, FeedbackApp

    app = FeedbackApp(AppConfig(failures=run_repo, feedback_repo=feedback_repo))
    try:
        for target, verdict in verdicts.items():
            app.submit(target, verdict)
        return [app.submit(*correction) for correction in corrections]
    finally:
        app.close()


def _space(root: Path, spec: dict) -> Path:
    path = root / "space.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


Review = Callable[[Any], tuple[dict[str, str], tuple[tuple[str, str, str], ...]]]


def closed_loop(root: Path, model: str | Path, name: str, space: Path, seeds: str | Path, review_as: Review,
                explore_options: dict[str, Any], mitigation: dict[str, Any], *, upload_model: bool = True,
                reexplore_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Explore → push → review, the part of the loop every loop shares: ``model`` (uploaded to the Hub as a new repo
    unless ``upload_model`` is false) explored by a grid over ``space`` from ``seeds`` with ``explore_options``, the
    run pushed, reviewed through the feedback app as ``review_as(run)`` says (verdicts, corrections).

    Returns the loop: ``root``, ``model`` (what was explored), ``run``, ``run_repo``, ``feedback``, ``records`` (of the
    corrections), ``modes``, ``space``, ``seeds``, ``mitigation`` (``MitigateConfig`` settings: ``mitigation`` on the
    pushed run, or on the run's folder when the model is a local folder, whose name a pushed run keeps only relative
    to that folder) and ``reexplore`` (the settings that explore a variant as the run was, or with
    ``reexplore_options`` instead of ``explore_options``); ``mitigate_loop`` then trains the adapter."""
    from fade_hub.explore import ExploreConfig
    from fade_hub.explore.runner import explore
    from fade_hub.hub import push_run

    model_id = upload(Path(model), name) if upload_model else str(model)
    grid = dict(seeds=str(seeds), space=str(space), algorithm="grid", show_progress=False)
    run = explore(ExploreConfig(model=model_id, **grid, output=str(root / "run"), **explore_options))
    run_repo, feedback_repo = unique_repo(f"{name}-failures"), unique_repo(f"{name}-fb")
    push_run(run.path, run_repo)
    records = review(run_repo, feedback_repo, *review_as(run))
    return {"root": root, "model": model_id, "run": run, "run_repo": run_repo, "feedback": feedback_repo,
            "records": records, "modes": [int(cell) for cell in run.modes["action_id"]], "space": space,
            "seeds": seeds,
            "mitigation": dict(run=run_repo if upload_model else str(run.path), feedback=[feedback_repo],
                               show_progress=False, **mitigation),
            "reexplore": {**grid, **(explore_options if reexplore_options is None else reexplore_options)}}


def _every_mode_fix(run: Any, *corrections: tuple[str, str, str]) -> tuple[dict[str, str], tuple]:
    """Review: every failure mode of the run marked fix, and ``corrections``."""
    return {str(int(cell)): "fix" for cell in run.modes["action_id"]}, corrections


def _first_failure(run: Any) -> int:
    """The query id of the first failing example of the run's top failure mode."""
    top = run.failures["action_id"] == int(run.modes["action_id"].iloc[0])
    return int(run.failures.loc[top, "query_id"].iloc[0])


def image_loop(root: Path, shapes_model: Path, block_space: Path) -> dict[str, Any]:
    """The shapes classifier on the Hub, a grid run over the dark/rotated 2x2 space, pushed, its top region marked fix
    (one region verdict) and one failing example of its top mode corrected."""
    from fade_hub.demo.shapes import write_seed_folder

    def review_as(run: Any) -> tuple[dict[str, str], tuple]:
        example = _first_failure(run)
        truth = run.failures.loc[run.failures["query_id"] == example, "expected"].iloc[0]
        return {str(run.regions["region_id"].iloc[0]): "fix"}, ((f"q{example}", "fix", truth),)

    seeds = write_seed_folder(root / "seeds", per_class=6, seed=7)
    mitigation = dict(steps=60, batch_size=32,
                      train_seeds=[str(write_seed_folder(root / "train", per_class=10, seed=8))],
                      eval_seeds=str(write_seed_folder(root / "eval", per_class=10, seed=9)))
    loop = closed_loop(root, shapes_model, "shapes", block_space, seeds, review_as, {}, mitigation,
                       reexplore_options=dict(confirm_seeds=2))
    return {**loop, "mode": loop["modes"][0], "modes": loop["modes"][:1], "block_space": block_space,
            "region": str(loop["run"].regions["region_id"].iloc[0])}


def text_loop(root: Path, model: Path) -> dict[str, Any]:
    """A cased sentiment classifier that fails under upper case, explored from its folder, every mode marked fix."""
    from fade_hub.testing.sentiment import write_seeds

    seeds, train = write_seeds(root / "seeds.jsonl", 24, seed=1), write_seeds(root / "train.jsonl", 64, seed=2)
    mitigation = dict(steps=100, batch_size=32, learning_rate=3e-3, train_seeds=[str(train)],
                      eval_seeds=str(write_seeds(root / "eval.jsonl", 40, seed=3, avoid=[seeds, train])))
    return closed_loop(root, model, "sentiment", _space(root, TEXT_SPACE), seeds, _every_mode_fix,
                       dict(confirm_seeds=3), mitigation, upload_model=False)


def _generative_loop(root: Path, model: Path, name: str, space: dict, seeds: Path, preferred: str,
                     explore_options: dict, train_seeds: Path, eval_seeds: Path, **mitigation: Any) -> dict[str, Any]:
    """The model on the Hub, explored, pushed, reviewed: every mode fix, one failing example with a preferred text."""
    def review_as(run: Any) -> tuple[dict[str, str], tuple]:
        return _every_mode_fix(run, (f"q{_first_failure(run)}", "fix", preferred))

    loop = closed_loop(root, model, name, _space(root, space), seeds, review_as,
                       dict(confirm_seeds=2, **explore_options),
                       dict(train_seeds=[str(train_seeds)], eval_seeds=str(eval_seeds), **mitigation))
    [record] = loop["records"]
    return {**loop, "model_dir": model, "example": f"q{_first_failure(loop['run'])}", "record": record}


def generation_loop(root: Path, model: Path) -> dict[str, Any]:
    """The chat fixture on the Hub, explored through its template with the keyword judge, reviewed."""
    from fade_hub.testing.generation import BANNED, SYSTEM, write_prompts

    seeds, train = write_prompts(root / "seeds.jsonl", 16, seed=1), write_prompts(root / "train.jsonl", 24, seed=2)
    return _generative_loop(root, model, "chat", GENERATION_SPACE, seeds, PREFERRED,
                            {"judge_keywords": [BANNED], "system_prompt": SYSTEM, "max_new_tokens": 12}, train,
                            write_prompts(root / "eval.jsonl", 40, seed=3, avoid=[seeds, train]), steps=40,
                            batch_size=16)


def summarization_loop(root: Path, model: Path) -> dict[str, Any]:
    """The summarizer fixture on the Hub, explored with the ROUGE judge, reviewed with a preferred summary."""
    from fade_hub.testing.summaries import write_articles

    seeds, train = write_articles(root / "seeds.jsonl", 16, seed=1), write_articles(root / "train.jsonl", 32, seed=2)
    return _generative_loop(root, model, "summarizer", SUMMARIZATION_SPACE, seeds,
                            "anna painted the fence in the garden.", {}, train,
                            write_articles(root / "eval.jsonl", 40, seed=3, avoid=[seeds, train]), steps=60,
                            batch_size=16)


def t2i_loop(root: Path, drawing_model: Path, shapes_model: Path) -> dict[str, Any]:
    """The drawing pipeline on the Hub, explored over descriptor x shape with the shapes classifier as judge, pushed;
    every mode marked fix, one generated image accepted and another rejected."""
    from fade_hub.testing.drawing import GENERATION, SPACE, templates, write_prompt_seeds

    def review_as(run: Any) -> tuple[dict[str, str], tuple]:
        accepted, rejected = (f"q{int(q)}" for q in run.failures["query_id"].iloc[:2])
        return _every_mode_fix(run, (accepted, "acceptable", "accept"), (rejected, "fix", "reject"))

    judge = upload(shapes_model, "shapes-judge")
    pool = templates(seed=3)
    # the explored templates on the Hub too, so that the pushed run's seeds load again for training
    seeds = upload(write_prompt_seeds(root / "seeds" / "train.jsonl", pool[:12]).parent, "drawing-seeds", "dataset")
    mitigation = dict(train_seeds=[str(write_prompt_seeds(root / "train.jsonl", pool[12:20]))],  # mitigate's defaults
                      eval_seeds=str(write_prompt_seeds(root / "eval.jsonl", pool[20:44])))
    loop = closed_loop(root, drawing_model, "drawing", _space(root, SPACE), seeds, review_as,
                       dict(judge=judge, num_inference_steps=GENERATION["num_inference_steps"], confirm_seeds=3),
                       mitigation)
    return {**loop, "judge": judge}


def mitigate_loop(loop: dict[str, Any], output: Path, seed: int = 0, **changes: Any):
    """The loop's adapter trained with ``seed`` (and ``changes`` to its settings) into ``output``: a ``Mitigation``."""
    from fade_hub.mitigate import MitigateConfig, mitigate

    return mitigate(MitigateConfig(**{**loop["mitigation"], **changes}, output=str(output), seed=seed))


def reexplore(loop: dict[str, Any], adapter: str, output: Path):
    """The variant ``adapter`` (a folder or repo) explored as the loop's run was: its ``Run``."""
    from fade_hub.explore import ExploreConfig
    from fade_hub.explore.runner import explore

    return explore(ExploreConfig(model=adapter, **loop["reexplore"], output=str(output)))
