"""The restructure loops the mitigation tests run, shared with ``benchmarks/mitigation_seeds.py`` so that the
benchmark measures the very figures the tests assert on.

Each ``*_loop`` function explores a fixture model over a small space on the Hub that ``HF_ENDPOINT`` names (the
tests' LocalHub), pushes the run, reviews it through the feedback app's API and returns a dict: the run and its
repos, ``mitigation`` (the ``MitigateConfig`` settings the tests train with, every one but ``output`` and
``seed``) and ``reexplore`` (the ``ExploreConfig`` settings that explore a variant as the tests do). ``mitigate_loop``
then trains one adapter of the loop with a given seed.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

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


def image_loop(root: Path, shapes_model: Path, block_space: Path) -> dict[str, Any]:
    """The shapes classifier on the Hub, a grid run over the dark/rotated 2x2 space, pushed, its top region marked fix
    (one region verdict) and one failing example of its top mode corrected."""
    from fade_hub.demo.shapes import write_seed_folder
    from fade_hub.explore import ExploreConfig
    from fade_hub.explore.runner import explore
    from fade_hub.hub import push_run

    model_repo = upload(shapes_model, "shapes")
    seeds = write_seed_folder(root / "seeds", per_class=6, seed=7)
    run = explore(ExploreConfig(model=model_repo, seeds=str(seeds), space=str(block_space), algorithm="grid",
                                output=str(root / "run"), show_progress=False))
    mode = int(run.modes["action_id"].iloc[0])
    run_repo, feedback_repo = unique_repo("shapes-failures"), unique_repo("shapes-fb")
    push_run(run.path, run_repo)
    example = int(run.failures.loc[run.failures["action_id"] == mode, "query_id"].iloc[0])
    truth = run.failures.loc[run.failures["query_id"] == example, "expected"].iloc[0]
    region = str(run.regions["region_id"].iloc[0])
    review(run_repo, feedback_repo, {region: "fix"}, ((f"q{example}", "fix", truth),))
    mitigation = dict(run=run_repo, feedback=[feedback_repo], steps=60, batch_size=32,
                      train_seeds=[str(write_seed_folder(root / "train", per_class=10, seed=8))],
                      eval_seeds=str(write_seed_folder(root / "eval", per_class=10, seed=9)), show_progress=False)
    return {"root": root, "model": model_repo, "run": run, "run_repo": run_repo, "feedback": feedback_repo,
            "mode": mode, "modes": [mode], "region": region, "block_space": block_space, "seeds": seeds,
            "mitigation": mitigation,
            "reexplore": dict(seeds=str(seeds), algorithm="grid", space=str(block_space), show_progress=False,
                              confirm_seeds=2)}


def text_loop(root: Path, model: Path) -> dict[str, Any]:
    """A cased sentiment classifier that fails under upper case, explored from its folder, every mode marked fix."""
    from fade_hub.explore import ExploreConfig
    from fade_hub.explore.runner import explore
    from fade_hub.hub import push_run
    from fade_hub.testing.sentiment import write_seeds

    space = _space(root, TEXT_SPACE)
    seeds, train = write_seeds(root / "seeds.jsonl", 24, seed=1), write_seeds(root / "train.jsonl", 64, seed=2)
    run = explore(ExploreConfig(model=str(model), seeds=str(seeds), space=str(space), algorithm="grid",
                                output=str(root / "run"), show_progress=False, confirm_seeds=3))
    run_repo, feedback_repo = unique_repo("sentiment-failures"), unique_repo("sent-fb")
    push_run(run.path, run_repo)
    modes = [int(cell) for cell in run.modes["action_id"]]
    review(run_repo, feedback_repo, {str(cell): "fix" for cell in modes})
    # the run's own folder: a pushed run names its local model only relative to that folder (no absolute paths)
    mitigation = dict(run=str(run.path), feedback=[feedback_repo], steps=100, batch_size=32, learning_rate=3e-3,
                      train_seeds=[str(train)], show_progress=False,
                      eval_seeds=str(write_seeds(root / "eval.jsonl", 40, seed=3, avoid=[seeds, train])))
    return {"root": root, "model": model, "run": run, "modes": modes, "mitigation": mitigation,
            "reexplore": dict(seeds=str(seeds), algorithm="grid", space=str(space), show_progress=False,
                              confirm_seeds=3)}


def _generative_loop(root: Path, model: Path, name: str, space: dict, seeds: Path, preferred: str,
                     explore_options: dict, train_seeds: Path, eval_seeds: Path, **mitigation: Any) -> dict[str, Any]:
    """Upload the model, explore it, push the run, review it (every mode fix, one failing example with a preferred
    text)."""
    from fade_hub.explore import ExploreConfig
    from fade_hub.explore.runner import explore
    from fade_hub.hub import push_run

    model_repo = upload(model, name)
    space_file = _space(root, space)
    run = explore(ExploreConfig(model=model_repo, seeds=str(seeds), space=str(space_file), algorithm="grid",
                                output=str(root / "run"), show_progress=False, confirm_seeds=2, **explore_options))
    run_repo, feedback_repo = unique_repo(f"{name}-failures"), unique_repo(f"{name}-fb")
    push_run(run.path, run_repo)
    first = run.failures["action_id"] == int(run.modes["action_id"].iloc[0])
    example = f"q{int(run.failures.loc[first, 'query_id'].iloc[0])}"
    modes = [int(cell) for cell in run.modes["action_id"]]
    [record] = review(run_repo, feedback_repo, {str(cell): "fix" for cell in modes}, ((example, "fix", preferred),))
    return {"root": root, "model": model_repo, "model_dir": model, "run": run, "run_repo": run_repo,
            "feedback": feedback_repo, "example": example, "record": record, "modes": modes, "space": space_file,
            "seeds": seeds, "mitigation": dict(run=run_repo, feedback=[feedback_repo], train_seeds=[str(train_seeds)],
                                               eval_seeds=str(eval_seeds), show_progress=False, **mitigation),
            "reexplore": dict(seeds=str(seeds), algorithm="grid", space=str(space_file), show_progress=False,
                              confirm_seeds=2, **explore_options)}


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
    from fade_hub.explore import ExploreConfig
    from fade_hub.explore.runner import explore
    from fade_hub.hub import push_run
    from fade_hub.testing.drawing import GENERATION, SPACE, templates, write_prompt_seeds

    steps = GENERATION["num_inference_steps"]
    model, judge = upload(drawing_model, "drawing"), upload(shapes_model, "shapes-judge")
    pool = templates(seed=3)
    space = _space(root, SPACE)
    # the explored templates on the Hub too, so that the pushed run's seeds load again for training
    seeds = upload(write_prompt_seeds(root / "seeds" / "train.jsonl", pool[:12]).parent, "drawing-seeds", "dataset")
    run = explore(ExploreConfig(model=model, seeds=str(seeds), space=str(space), algorithm="grid", judge=judge,
                                num_inference_steps=steps, output=str(root / "run"), confirm_seeds=3,
                                show_progress=False))
    run_repo, feedback_repo = unique_repo("drawing-failures"), unique_repo("drawing-fb")
    push_run(run.path, run_repo)
    modes = [int(cell) for cell in run.modes["action_id"]]
    accepted, rejected = (f"q{int(q)}" for q in run.failures["query_id"].iloc[:2])
    review(run_repo, feedback_repo, {str(cell): "fix" for cell in modes},
           ((accepted, "acceptable", "accept"), (rejected, "fix", "reject")))
    mitigation = dict(run=run_repo, feedback=[feedback_repo], steps=150, batch_size=16, learning_rate=2.5e-4,
                      train_seeds=[str(write_prompt_seeds(root / "train.jsonl", pool[12:20]))],
                      eval_seeds=str(write_prompt_seeds(root / "eval.jsonl", pool[20:44])), show_progress=False)
    return {"root": root, "model": model, "judge": judge, "run": run, "run_repo": run_repo, "feedback": feedback_repo,
            "modes": modes, "space": space, "seeds": seeds, "mitigation": mitigation,
            "reexplore": dict(seeds=str(seeds), space=str(space), algorithm="grid", judge=judge,
                              num_inference_steps=steps, confirm_seeds=3, show_progress=False)}


def mitigate_loop(loop: dict[str, Any], output: Path, seed: int = 0, **changes: Any):
    """The loop's adapter trained with ``seed`` (and ``changes`` to its settings) into ``output``: a ``Mitigation``."""
    from fade_hub.mitigate import MitigateConfig, mitigate

    return mitigate(MitigateConfig(**{**loop["mitigation"], **changes}, output=str(output), seed=seed))


def reexplore(loop: dict[str, Any], adapter: str, output: Path):
    """The variant ``adapter`` (a folder or repo) explored as the loop's run was: its ``Run``."""
    from fade_hub.explore import ExploreConfig
    from fade_hub.explore.runner import explore

    return explore(ExploreConfig(model=adapter, **loop["reexplore"], output=str(output)))
