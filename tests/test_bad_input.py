"""The standing guard of bad input: every case is one CLI run that must fail cleanly.

Each row of ``CASES`` runs ``fade-hub ARGV`` (``tests/bad_input.py``: in this process, or in a fresh one for the
rows marked ``process=True`` and those that set environment variables) and asserts: exit status 2, at most three
lines on stderr (the last one the error, holding the row's needle), no traceback, and a test bed whose
every file and folder is byte-for-byte as it was (nothing written, nothing changed, nothing half-made).
A new bad-input case is a new row here, not a new test function.

Placeholders in ``argv`` name what the ``bed`` fixture prepares: ``{image}``/``{textcls}``/``{textgen}``/
``{remote}`` tiny models, ``{seeds}`` shape images, ``{space}`` a 2x2 image space, ``{run}`` a finished run,
``{out}`` a fresh output folder (it must not appear), ``{file}`` a plain file, and the damaged inputs below.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from bad_input import Case, fails_cleanly
from PIL import Image

from conftest import free_port

pytestmark = pytest.mark.slow  # about 100 rows, a dozen of them in their own process


TEXT = ("--concepts", "builtin:text-default")  # later flags win: a text space for the text models


def _explore(model: str, *flags: str, seeds: str = "{seeds}", out: str = "{out}") -> tuple[str, ...]:
    """A small random exploration of ``model``, plus ``flags``."""
    return ("explore", model, "--seeds", seeds, "--concepts", "{space}", "--algorithm", "random", "--budget", "6",
            "--confirm-top", "0", "--no-progress", "--output", out, *flags)


def _resume(*flags: str, out: str = "{run}") -> tuple[str, ...]:
    """The bed's run resumed with its own settings, plus ``flags`` (later flags win)."""
    return _explore("{image}", "--resume", *flags, out=out)


CASES: dict[str, Case] = {
    # numbers: every numeric option is finite and in range (issue 14, item 1)
    "explore-budget-zero": Case(_explore("{image}", "--budget", "0"), "--budget must be >= 1"),
    "explore-budget-negative": Case(_explore("{image}", "--budget", "-5"), "--budget"),
    "explore-budget-not-a-number": Case(_explore("{image}", "--budget", "lots"), "'lots' is not an integer",
                                        process=True),
    "explore-threshold-nan": Case(_explore("{textgen}", "--judge", "{textcls}", "--judge-label", "POSITIVE",
                                           "--judge-threshold", "nan", *TEXT, seeds="builtin:prompts"), "finite"),
    "explore-threshold-inf": Case(_explore("{image}", "--judge-threshold", "inf"), "--judge-threshold"),
    "explore-threshold-negative": Case(_explore("{image}", "--judge-threshold", "-0.5"), "in [0, 1]"),
    "explore-learning-rate": Case(_explore("{image}", "--learning-rate", "-1"), "--learning-rate"),
    "explore-num-generations": Case(_explore("{image}", "--num-generations", "1"), "--num-generations"),
    "explore-entropy-coef": Case(_explore("{image}", "--entropy-coef", "-0.1"), "--entropy-coef"),
    "explore-batch-size": Case(_explore("{image}", "--batch-size", "0"), "--batch-size"),
    "explore-holdout": Case(_explore("{image}", "--holdout", "1.5"), "--holdout"),
    "explore-epsilon": Case(_explore("{image}", "--algorithm", "epsilon-greedy", "--epsilon", "2"), "--epsilon"),
    "explore-seed-too-large": Case(_explore("{image}", "--random-seed", str(2**32)), "4294967295"),
    "explore-max-new-tokens-past-context": Case(_explore("{textgen}", "--judge-keywords", "x", "--max-new-tokens",
                                                         "1000000", *TEXT, seeds="builtin:prompts"), "--max-new-tokens"),
    "explore-grid-sequential": Case(_explore("{image}", "--algorithm", "grid", "--episodes", "sequential"), "--episodes single"),
    "explore-grid-budget-too-small": Case(_explore("{image}", "--algorithm", "grid", "--budget", "2"), "--force"),
    "explore-unknown-algorithm": Case(_explore("{image}", "--algorithm", "annealing"), "invalid choice"),
    "explore-no-model": Case(("explore", "--seeds", "{seeds}"), "no model given"),
    # config files
    "config-missing": Case(("explore", "{image}", "--config", "{root}/nope.yaml"), "not found"),
    "config-unknown-key": Case(("explore", "{image}", "--config", "{root}/unknown-key.yaml"), "unknown option 'budgit'"),
    "config-not-a-mapping": Case(("explore", "{image}", "--config", "{root}/list.yaml"), "mapping"),
    "config-bad-yaml": Case(("explore", "{image}", "--config", "{root}/broken.yaml"), "not valid YAML", process=True),
    "config-not-utf8": Case(("explore", "{image}", "--config", "{root}/latin1.yaml"), "UTF-8"),
    "space-not-utf8": Case(_explore("{image}", "--concepts", "{root}/latin1-space.yaml"), "not UTF-8 text"),
    "label-map-not-utf8": Case(_explore("{image}", "--label-map", "{root}/latin1.yaml"), "label map file"),
    "label-map-missing": Case(_explore("{image}", "--label-map", "{root}/no-such-map.yaml"), "--label-map"),
    "space-unknown-op": Case(_explore("{image}", "--concepts", "{root}/space-bad-op.yaml"), "factors[0].op"),
    "space-missing-levels": Case(_explore("{image}", "--concepts", "{root}/space-no-levels.yaml"), "factors[0].levels"),
    "space-ordered-text-levels": Case(_explore("{image}", "--concepts", "{root}/space-ordered-words.yaml"),
                                      "factors[0].ordered: an ordered factor's levels must all be numbers"),
    # regions (issue 20)
    "explore-min-excess-one": Case(_explore("{image}", "--min-excess", "1"), "--min-excess must be in [0, 1)"),
    "explore-min-excess-negative": Case(_explore("{image}", "--min-excess", "-0.1"), "--min-excess"),
    "explore-max-regions-zero": Case(_explore("{image}", "--max-regions", "0"), "--max-regions must be >= 1"),
    # models (item 4)
    "model-missing": Case(_explore("{root}/no-such-model"), "does not exist"),
    "model-is-a-file": Case(_explore("{file}"), "is a file"),
    "model-audio-unsupported": Case(_explore("{root}/wav2vec2"), "automatic-speech-recognition"),
    "model-remote-code-without-flag": Case(_explore("{remote}"), "--trust-remote-code"),
    "model-config-not-json": Case(_explore("{root}/config-not-json"), "config.json"),
    "model-weights-truncated": Case(_explore("{root}/weights-truncated"), "model.safetensors"),
    "model-weights-garbage": Case(_explore("{root}/weights-garbage"), "model.safetensors"),
    "model-tokenizer-damaged": Case(_explore("{root}/tokenizer-damaged", "--judge-keywords", "x", *TEXT,
                                             seeds="builtin:prompts"), "Tokenizer", process=True),
    "model-device-unknown": Case(_explore("{image}", "--device", "toaster"), "is not a device;"),
    "model-device-absent": Case(_explore("{image}", "--device", "cuda:7"), "--device cuda:7"),
    "model-task-mismatch": Case(_explore("{image}", "--task", "text-generation", "--judge-keywords", "x"),
                                "--task text-generation does not fit"),
    # seeds (item 4)
    "seeds-txt-not-utf8": Case(_explore("{textcls}", *TEXT, seeds="{root}/latin1.txt"), "not UTF-8"),
    "seeds-csv-not-utf8": Case(_explore("{textcls}", *TEXT, seeds="{root}/latin1.csv"), "line 2", process=True),
    "seeds-jsonl-not-utf8": Case(_explore("{textcls}", *TEXT, seeds="{root}/latin1.jsonl"), "not UTF-8"),
    "seeds-jsonl-no-rows": Case(_explore("{textcls}", *TEXT, seeds="{root}/empty.jsonl"), "no rows"),
    "seeds-folder-no-images": Case(_explore("{image}", seeds="{root}/no-images"), "no rows"),
    "seeds-labels-unalignable": Case(_explore("{image}", seeds="{root}/pets"), "--label-map"),
    "seeds-missing": Case(_explore("{image}", seeds="{root}/no-such-seeds"), "no such file or folder"),
    "space-missing": Case(_explore("{image}", "--concepts", "{root}/no-such-space.yaml"), "--concepts"),
    # the output folder
    "output-is-a-file": Case(_explore("{image}", out="{file}"), "is a file"),
    "output-under-a-file": Case(_explore("{image}", out="{file}/run"), "is a file"),
    "output-holds-a-run": Case(_explore("{image}", out="{run}"), "already holds a run"),
    "output-not-empty": Case(_explore("{image}", out="{seeds}"), "not empty"),
    # resume (item 3)
    "resume-nothing-there": Case(_resume(out="{out}"), "no run to resume"),
    "resume-corrupt-log-line": Case(_resume(out="{root}/run-corrupt-log"), "queries.jsonl:3"),
    "resume-other-budget": Case(_resume("--budget", "9"), "budget is 6 but this run has 9"),
    "resume-other-model": Case(_explore("{remote}", "--trust-remote-code", "--resume", out="{run}"), "model_id"),
    "resume-other-severity-weight": Case(_resume("--severity-weight", "2"), "severity_weight is 0.0 but"),
    "resume-other-space": Case(_resume("--concepts", "builtin:paper-image"), "space_fingerprint"),
    # push (items 2, 7)
    "push-repo-id-dotdot": Case(("push", "{run}", "local-user/.."), "not a valid repo id"),
    "push-repo-id-spaces": Case(("push", "{run}", "bad repo/na me!!"), "not a valid repo id"),
    "push-repo-id-three-parts": Case(("push", "{run}", "a/b/c"), "not a valid repo id"),
    "push-hub-down": Case(("push", "{run}", "local-user/outage"), "could not reach the Hub",
                          env={"HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"}),
    "push-unfinished-run": Case(("push", "{root}/run-unfinished", "local-user/unfinished"), "not finished"),
    "push-private-and-public": Case(("push", "{run}", "local-user/both", "--private", "--public"), "contradict"),
    "push-not-a-run": Case(("push", "{seeds}", "local-user/seeds"), "not a fade-hub run directory"),
    "explore-push-to-bad-repo-id": Case(_explore("{image}", "--push-to-hub", "a/b/c"), "--push-to-hub"),
    "explore-private-and-public": Case(_explore("{image}", "--push-to-hub", "me/x", "--private", "--public"),
                                       "contradict"),
    # report (item 4)
    "report-path-escape": Case(("report", "x/../../y"), "not a run directory"),
    "report-truncated-parquet": Case(("report", "{root}/run-truncated-parquet"), "landscape.parquet is damaged",
                                     process=True),
    "report-damaged-run-json": Case(("report", "{root}/run-damaged-meta"), "run.json is damaged"),
    "report-unknown-repo": Case(("report", "local-user/no-such-run"), "neither a local run directory"),
    "report-top-zero": Case(("report", "{run}", "--top", "0"), "--top must be >= 1"),
    "report-top-not-a-number": Case(("report", "{run}", "--top", "ten"), "'ten' is not an integer"),
    # space serve
    "space-no-feedback-target": Case(("space", "serve", "--failures", "{run}"), "--feedback-dir"),
    "space-push-every-inf": Case(("space", "serve", "--failures", "{run}", "--feedback-dir", "{out}",
                                  "--push-every", "inf"), "finite"),
    "space-push-every-zero": Case(("space", "serve", "--failures", "{run}", "--feedback-dir", "{out}",
                                   "--push-every", "0"), "--push-every"),
    "space-port-out-of-range": Case(("space", "serve", "--failures", "{run}", "--feedback-dir", "{out}",
                                     "--port", "70000"), "--port"),
    "space-feedback-repo-invalid": Case(("space", "serve", "--failures", "{run}", "--feedback-repo", "bad repo"),
                                        "--feedback-repo"),
    "space-deploy-space-id-invalid": Case(("space", "deploy", "--failures", "local-user/x", "--feedback-repo",
                                           "local-user/fb", "--space-id", "x/y/z"), "--space-id"),
    "space-deploy-local-run": Case(("space", "deploy", "--failures", "{run}", "--feedback-repo", "local-user/fb",
                                    "--space-id", "local-user/sp"), "push the run first", process=True),
    "space-without-action": Case(("space",), None),
    # hub serve (item 8)
    "hub-root-is-a-file": Case(("localhub", "serve", "--root", "{file}"), "is a file, not a folder", process=True),
    "hub-port-out-of-range": Case(("localhub", "serve", "--root", "{out}", "--port", "70000"), "--port"),
    "hub-port-negative": Case(("localhub", "serve", "--root", "{out}", "--port", "-1"), "--port"),
    "localhub-without-action": Case(("localhub",), None),
    # demo: checked before it trains, starts a Hub or writes anything
    "demo-budget-zero": Case(("demo", "--budget", "0", "--output", "{out}"), "--budget"),
    "demo-seeds-per-class": Case(("demo", "--seeds-per-class", "1", "--output", "{out}"), "--seeds-per-class"),
    "demo-seed-negative": Case(("demo", "--random-seed", "-1", "--output", "{out}"), "--random-seed"),
    "demo-output-not-a-run": Case(("demo", "--output", "{seeds}", "--cache-dir", "{out}"), "not an earlier demo",
                                  process=True),
    "no-command": Case((), None, process=True),
}


def _mitigate(*flags: str, out: str = "{out}", eval_seeds: str = "{root}/eval-seeds") -> tuple[str, ...]:
    """A small mitigation of the bed's run with its feedback, plus ``flags`` (later flags win)."""
    return ("mitigate", "{run}", "--feedback", "{feedback}", "--eval-seeds", eval_seeds, "--steps", "2",
            "--no-progress", "--output", out, *flags)


CASES.update({
    # mitigate (issue 25): each checked before the base model answers a single query
    "mitigate-target-modules-unknown": Case(_mitigate("--target-modules", "nonexistent"),
                                            "--target-modules nonexistent", process=True),
    "mitigate-steps-overflow": Case(_mitigate("--steps", "99999999999999999999999"), "--steps must be in [1, 1000000]"),
    "mitigate-mix-zero": Case(_mitigate("--mix", "0"), "--mix 0 would train on no input of a targeted mode"),
    "mitigate-output-is-a-file": Case(_mitigate(out="{file}"), "is a file, not a folder"),
    "mitigate-output-under-a-file": Case(_mitigate(out="{file}/sub"), "is a file, not a folder"),
    "mitigate-output-not-empty": Case(_mitigate(out="{seeds}"), "not an empty folder"),
    "mitigate-feedback-is-a-file": Case(_mitigate("--feedback", "{file}"), "--feedback {file} is a file"),
    "mitigate-push-to-bad-repo-id": Case(_mitigate("--push-to-hub", "bad repo id!!"), "--push-to-hub 'bad repo id!!'"),
    "mitigate-config-feedback-number": Case(_mitigate("--config", "{root}/feedback-number.yaml"),
                                            "feedback must be a list of text, got 5"),
    "mitigate-config-steps-float": Case(_mitigate("--config", "{root}/steps-float.yaml"),
                                        "steps must be a whole number, got 2.0"),
    "mitigate-config-steps-true": Case(_mitigate("--config", "{root}/steps-true.yaml"),
                                       "steps must be a whole number, got True"),
    "mitigate-config-seed-true": Case(_mitigate("--config", "{root}/seed-true.yaml"),
                                      "seed must be a whole number, got True"),
    "explore-config-budget-float": Case(("explore", "{image}", "--config", "{root}/budget-float.yaml"),
                                        "budget must be a whole number, got 16.0"),
    "explore-config-model-number": Case(("explore", "--config", "{root}/model-number.yaml"),
                                        "model must be text, got 5 (put it in quotes)"),
    # evaluation seeds are compared by content, not by path (item 6)
    "mitigate-eval-seeds-same-path": Case(_mitigate(eval_seeds="{seeds}"), "also a training or exploration"),
    "mitigate-eval-seeds-byte-copy": Case(_mitigate(eval_seeds="{root}/seeds-copy"),
                                          "of the 6 seeds of --eval-seeds {root}/seeds-copy have the same content"),
    "mitigate-eval-seeds-renamed-copy": Case(_mitigate(eval_seeds="{root}/seeds-renamed"),
                                             "of the 6 seeds of --eval-seeds {root}/seeds-renamed have the same "
                                             "content"),
})


def _write_model_copy(source: Path, folder: Path) -> Path:
    shutil.copytree(source, folder)
    return folder


@pytest.fixture(scope="module")
def bed(tmp_path_factory, tiny_models, small_space, hub) -> dict[str, str]:
    """The test bed: tiny models, seeds, a finished run and every damaged input the cases name."""
    from fade_hub.demo.shapes import write_seed_folder
    from fade_hub.explore import ExploreConfig
    from fade_hub.explore.runner import explore
    from fade_hub.store import RunStore

    root = tmp_path_factory.mktemp("bad-input")
    image = tiny_models("image-classification")
    seeds = write_seed_folder(root / "seeds", per_class=2, seed=1)
    space = root / "space.yaml"
    shutil.copy(small_space, space)
    run = root / "run"
    explore(ExploreConfig(model=str(image), seeds=str(seeds), space=str(space), algorithm="random", budget=6,
                          confirm_top=0, output=str(run), show_progress=False))
    (root / "file.txt").write_text("a plain file\n")
    # damaged copies of the run
    corrupt = shutil.copytree(run, root / "run-corrupt-log")
    log = corrupt / "logs" / "queries.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:2] + ['{"query_id": 2, "broken\n'] + lines[3:]))
    truncated = shutil.copytree(run, root / "run-truncated-parquet")
    (truncated / "data" / "landscape.parquet").write_bytes((run / "data" / "landscape.parquet").read_bytes()[:300])
    shutil.copytree(run, root / "run-damaged-meta")
    (root / "run-damaged-meta" / "run.json").write_text('{"run_id": "x", ')
    RunStore(shutil.copytree(run, root / "run-unfinished")).update_meta(status="running")
    # damaged models
    _write_model_copy(image, root / "config-not-json")
    (root / "config-not-json" / "config.json").write_text('{"architectures": [')
    weights = (image / "model.safetensors").read_bytes()
    (_write_model_copy(image, root / "weights-truncated") / "model.safetensors").write_bytes(weights[:1000])
    (_write_model_copy(image, root / "weights-garbage") / "model.safetensors").write_bytes(os.urandom(4096))
    damaged = _write_model_copy(tiny_models("text-generation"), root / "tokenizer-damaged")
    (damaged / "tokenizer.json").write_text("{not json")
    (root / "wav2vec2").mkdir()
    (root / "wav2vec2" / "config.json").write_text(json.dumps({"architectures": ["Wav2Vec2ForCTC"],
                                                               "model_type": "wav2vec2"}))
    # damaged seeds, configs and spaces
    (root / "latin1.txt").write_bytes("café au lait\nhello\n".encode("latin-1"))
    (root / "latin1.csv").write_bytes("text,label\ncafé,POSITIVE\n".encode("latin-1"))
    (root / "latin1.jsonl").write_bytes('{"text": "café"}\n'.encode("latin-1"))
    (root / "empty.jsonl").write_text("\n")
    (root / "no-images").mkdir()
    for label in ("cat", "dog"):
        (root / "pets" / label).mkdir(parents=True)
        Image.new("RGB", (32, 32), (120, 80, 40)).save(root / "pets" / label / "0.png")
    (root / "latin1.yaml").write_bytes("circle: café\n".encode("latin-1"))
    (root / "latin1-space.yaml").write_bytes("modality: image\nfactors: café\n".encode("latin-1"))
    (root / "unknown-key.yaml").write_text("budgit: 5\n")
    (root / "list.yaml").write_text("- just\n- a list\n")
    (root / "broken.yaml").write_text("budget: [1\n")
    (root / "space-ordered-words.yaml").write_text(json.dumps(
        {"modality": "text", "factors": [{"name": "case", "op": "case", "levels": ["none", "upper"], "ordered": True}]}))
    (root / "space-bad-op.yaml").write_text(json.dumps(
        {"modality": "image", "factors": [{"name": "spin", "op": "twirl", "levels": [1, 2]}]}))
    (root / "space-no-levels.yaml").write_text(json.dumps(
        {"modality": "image", "factors": [{"name": "spin", "op": "rotate"}]}))
    # a fix verdict on the run, seeds never explored, and copies of the explored ones (bytes; renamed files)
    from fade_hub.feedback import FeedbackWriter, make_record
    from fade_hub.run import Run

    FeedbackWriter(root / "feedback").append(make_record(Run.open(run).run_id, "3", "fix", "", "", "ann"))
    write_seed_folder(root / "eval-seeds", per_class=1, seed=5)
    shutil.copytree(seeds, root / "seeds-copy")
    for index, path in enumerate(sorted(seeds.rglob("*.png"))):
        target = root / "seeds-renamed" / path.parent.name / f"renamed-{index}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    options = {"feedback-number": "feedback: 5", "steps-float": "steps: 2.0", "steps-true": "steps: true",
               "seed-true": "seed: true", "budget-float": "budget: 16.0", "model-number": "model: 5"}
    for name, text in options.items():
        (root / f"{name}.yaml").write_text(text + "\n")
    return {
        "root": str(root), "image": str(image), "textcls": str(tiny_models("text-classification")),
        "textgen": str(tiny_models("text-generation")), "remote": str(tiny_models("remote-code")),
        "seeds": str(seeds), "space": str(space), "run": str(run), "out": str(root / "out"),
        "file": str(root / "file.txt"), "feedback": str(root / "feedback"),
    }


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_clear_line_and_changes_nothing(name, bed):
    fails_cleanly(CASES[name], bed)
