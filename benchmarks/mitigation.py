"""Mitigation benchmark: how much a fade-hub LoRA adapter fades the targeted failure modes, and what it costs.

Five fixtures, each trained here:
- ``shapes``: the demo's image classifier (it never saw dark *and* rotated shapes), explored with ppo over the
  demo space; a simulated reviewer marks the confirmed modes ``fix``.
- ``sentiment``: a small text classifier with a cased tokenizer that never saw upper case, so it fails under
  upper and toggled case (label-preserving); explored with grid over typos x case; every mode marked ``fix``.
- ``generation``: a tiny chat model (``fade_hub.testing.generation``) that says a banned word to prompts with
  typos; explored through its chat template with the keyword judge over typos x case x punctuation; every mode
  marked ``fix``; mitigated with trl (``--objectives dpo kto sft`` compares the objectives on the same run).
- ``summarization``: a tiny BART (``fade_hub.testing.summaries``) that drops the key sentence of upper-cased
  articles; explored with the ROUGE judge against reference summaries over case x punctuation; every mode marked
  ``fix``; mitigated with ``Seq2SeqTrainer``.
- ``text-to-image``: a small Stable Diffusion pipeline trained to draw circles, squares and triangles, whose
  ``fancy`` shapes come out wrong (``fade_hub.testing.drawing``), judged by the demo's shapes classifier; explored
  with grid over descriptor x shape; every mode marked ``fix``; a UNet LoRA trained on (fix prompt, image) pairs.

For each, the base and the mitigated model answer the same held-out seeds (never explored, confirmed or trained
on, compared by content; at least 400 of them for the classifiers, so that one point of clean accuracy is
measurable; for text-to-image a quarter as many generated prompt templates, each at the six clean cells, so that 2
points of the clean pass rate are; for the chat fixture the 71 prompts of its 150 that are neither explored nor
trained on: rows measured before fade-hub compared seeds by content held repeated prompts, some of them trained on)
over the targeted cells, the clean inputs and the untargeted cells. Printed with 95 % Wilson intervals, and
written to ``benchmarks/results/mitigation.json`` (the rows of fixtures not run this time are kept, each row with
its settings). Targets: targeted failure rate down >= 80 %, clean accuracy down <= 1 point, untargeted failure
rate up <= 2 points; for the generative fixtures (issue 12), targeted failure rate down >= 70 % and clean
quality (the pass rate on clean prompts; ROUGE-L on clean articles) down <= 2 points.

    python benchmarks/mitigation.py [--fixtures shapes sentiment generation summarization text-to-image]
        [--eval-seeds 420] [--objectives auto dpo kto sft] [--quick]

On a small shared CPU, run it with ``OMP_NUM_THREADS=1``: the tiny models here thrash on more threads.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

RESULTS = Path(__file__).resolve().parent / "results" / "mitigation.json"
GENERATION_HELD_OUT = 71  # distinct prompts of the chat fixture that its run neither explores nor trains on
TEXT_SPACE = {"modality": "text", "factors": [
    {"name": "typos", "op": "typos", "levels": [0, 0.05, 0.1]},
    {"name": "case", "op": "case", "levels": ["none", "upper", "toggle"]},
]}
GENERATION_SPACE = {"modality": "text", "factors": [
    {"name": "typos", "op": "typos", "levels": [0, 0.05, 0.1]},
    {"name": "case", "op": "case", "levels": ["none", "upper"]},
    {"name": "punctuation", "op": "punctuation", "levels": [False, True]},
]}
SUMMARIZATION_SPACE = {"modality": "text", "factors": [
    {"name": "case", "op": "case", "levels": ["none", "upper"]},
    {"name": "punctuation", "op": "punctuation", "levels": [False, True]},
]}


def _review(run, folder: Path, cells: list[int]) -> Path:
    """A simulated reviewer's 'fix' verdicts on ``cells`` (through the same records the app writes)."""
    from fade_hub.feedback import FeedbackWriter, make_record

    writer = FeedbackWriter(folder)
    for cell in cells:
        writer.append(make_record(run.run_id, str(int(cell)), "fix", "", "", "simulated-reviewer"))
    return folder


def shapes(work: Path, eval_seeds: int, quick: bool) -> dict:
    """The demo fixture: explore, review the confirmed modes, mitigate, measure."""
    from fade_hub.demo.shapes import train_shape_classifier, write_seed_folder
    from fade_hub.explore import ExploreConfig
    from fade_hub.explore.runner import explore
    from fade_hub.mitigate import MitigateConfig, mitigate

    model = train_shape_classifier(work / "shapes-model")
    run = explore(ExploreConfig(model=str(model), seeds=str(write_seed_folder(work / "seeds", 16, seed=1000)),
                                space="builtin:demo-shapes", algorithm="ppo", budget=200 if quick else 600,
                                batch_size=32, output=str(work / "shapes-run"), show_progress=False))
    cells = run.modes.loc[run.modes["confirmed"].astype(bool), "action_id"].tolist() or run.modes["action_id"].tolist()
    per_class = max(eval_seeds // 3, 2)
    result = mitigate(MitigateConfig(
        run=str(run.path), feedback=[str(_review(run, work / "shapes-feedback", cells))],
        output=str(work / "shapes-adapter"), steps=20 if quick else 150,
        train_seeds=[str(write_seed_folder(work / "shapes-train", 20, seed=2000))],
        eval_seeds=str(write_seed_folder(work / "shapes-eval", per_class, seed=3000)), show_progress=False,
    ))
    return result.figures


def sentiment(work: Path, eval_seeds: int, quick: bool) -> dict:
    """The text fixture: explore, review every mode, mitigate, measure."""
    from fade_hub.explore import ExploreConfig
    from fade_hub.explore.runner import explore
    from fade_hub.mitigate import MitigateConfig, mitigate
    from fade_hub.testing.sentiment import train_sentiment_classifier, write_seeds

    model = train_sentiment_classifier(work / "sentiment-model", negation=False, cased=True,
                                       steps=60 if quick else None)
    space = work / "text-space.yaml"
    space.write_text(yaml.safe_dump(TEXT_SPACE))
    seeds, train = write_seeds(work / "seeds.jsonl", 24, seed=1), write_seeds(work / "train.jsonl", 96, seed=2)
    run = explore(ExploreConfig(model=str(model), seeds=str(seeds), space=str(space), algorithm="grid",
                                output=str(work / "sentiment-run"), show_progress=False))
    result = mitigate(MitigateConfig(
        run=str(run.path), feedback=[str(_review(run, work / "sentiment-feedback", run.modes["action_id"].tolist()))],
        output=str(work / "sentiment-adapter"), steps=20 if quick else 300, learning_rate=2e-3,
        train_seeds=[str(train)], show_progress=False,
        eval_seeds=str(write_seeds(work / "eval.jsonl", eval_seeds, seed=3, avoid=[seeds, train])),
    ))
    return result.figures


def _explore_and_review(work: Path, name: str, model: Path, space: dict, seeds: Path, **options):
    """Explore ``model`` with grid over ``space`` once per work dir (later calls reuse the run), and mark every mode
    ``fix``: the run and its feedback folder."""
    from fade_hub.explore import ExploreConfig
    from fade_hub.explore.runner import explore
    from fade_hub.run import Run

    run_dir, space_file = work / f"{name}-run", work / f"{name}-space.yaml"
    if not (run_dir / "data" / "landscape.parquet").exists():
        space_file.write_text(yaml.safe_dump(space))
        explore(ExploreConfig(model=str(model), seeds=str(seeds), space=str(space_file), algorithm="grid",
                              batch_size=64, output=str(run_dir), show_progress=False, **options))
    run, feedback = Run.open(run_dir), work / f"{name}-feedback"
    if not feedback.exists():
        _review(run, feedback, run.modes["action_id"].tolist())
    return run, feedback


def generation(work: Path, eval_seeds: int, quick: bool, objective: str = "auto") -> dict:
    """The chat fixture (typo'd prompts make it say a banned word): explore through its chat template, review every
    mode, mitigate with ``objective``, measure."""
    from fade_hub.mitigate import MitigateConfig, mitigate
    from fade_hub.testing.generation import BANNED, SYSTEM, train_chat_model, write_prompts

    model = train_chat_model(work / "chat-model", steps=80 if quick else 300)
    seeds, train = write_prompts(work / "prompts.jsonl", 24, seed=1), write_prompts(work / "prompts-train.jsonl", 96,
                                                                                    seed=2)
    run, feedback = _explore_and_review(work, "generation", model, GENERATION_SPACE, seeds, judge_keywords=[BANNED],
                                        system_prompt=SYSTEM, max_new_tokens=12)
    # the fixture has 150 distinct prompts, 79 of them explored or trained on: at most 71 are held out
    held_out = write_prompts(work / "prompts-eval.jsonl", min(eval_seeds, GENERATION_HELD_OUT), seed=3,
                             avoid=[seeds, train])
    return mitigate(MitigateConfig(
        run=str(run.path), feedback=[str(feedback)], output=str(work / f"generation-adapter-{objective}"),
        objective=objective, steps=20 if quick else 150, learning_rate=1e-3, train_seeds=[str(train)],
        eval_seeds=str(held_out), show_progress=False,
    )).figures


def summarization(work: Path, eval_seeds: int, quick: bool) -> dict:
    """The summarizer fixture (it drops the key sentence of upper-cased articles): explore, review every mode,
    mitigate with Seq2SeqTrainer, measure ROUGE-L against the reference summaries."""
    from fade_hub.mitigate import MitigateConfig, mitigate
    from fade_hub.testing.summaries import train_summarizer, write_articles

    model = train_summarizer(work / "summarizer-model", steps=100 if quick else 600)
    seeds, train = write_articles(work / "articles.jsonl", 24, seed=1), write_articles(work / "articles-train.jsonl",
                                                                                       96, seed=2)
    run, feedback = _explore_and_review(work, "summarization", model, SUMMARIZATION_SPACE, seeds)
    return mitigate(MitigateConfig(
        run=str(run.path), feedback=[str(feedback)], output=str(work / "summarization-adapter"),
        steps=20 if quick else 150, learning_rate=1e-3, train_seeds=[str(train)], show_progress=False,
        eval_seeds=str(write_articles(work / "articles-eval.jsonl", eval_seeds, seed=3, avoid=[seeds, train])),
    )).figures


def text_to_image(work: Path, eval_seeds: int, quick: bool) -> dict:
    """The drawing fixture: explore with the shapes classifier as judge, review every mode, mitigate, measure."""
    from fade_hub.demo.shapes import train_shape_classifier
    from fade_hub.explore import ExploreConfig
    from fade_hub.explore.runner import explore
    from fade_hub.mitigate import MitigateConfig, mitigate
    from fade_hub.testing.drawing import GENERATION, SPACE, templates, train_drawing_pipeline, write_prompt_seeds

    model = train_drawing_pipeline(work / "drawing-model", steps=150 if quick else 500)
    judge = train_shape_classifier(work / "shapes-model")
    pool, held_out = templates(seed=11), max(eval_seeds // 4, 2)
    space = work / "drawing-space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    run = explore(ExploreConfig(model=str(model), seeds=str(write_prompt_seeds(work / "drawing-seeds.jsonl", pool[:16])),
                                space=str(space), algorithm="grid", judge=str(judge), output=str(work / "drawing-run"),
                                num_inference_steps=GENERATION["num_inference_steps"], show_progress=False))
    result = mitigate(MitigateConfig(
        run=str(run.path), feedback=[str(_review(run, work / "drawing-feedback", run.modes["action_id"].tolist()))],
        output=str(work / "drawing-adapter"), steps=20 if quick else 150, batch_size=16, learning_rate=2.5e-4,
        train_seeds=[str(write_prompt_seeds(work / "drawing-train.jsonl", pool[16:24]))],
        eval_seeds=str(write_prompt_seeds(work / "drawing-eval.jsonl", pool[24 : 24 + held_out])), show_progress=False,
    ))
    return result.figures


FIXTURES = {"shapes": shapes, "sentiment": sentiment, "generation": generation, "summarization": summarization,
            "text-to-image": text_to_image}
GENERATIVE_TARGETS = {"drop": 0.7, "clean": 2.0, "untargeted": 2.0}  # issue 12's; else the classifiers'
TARGETS = {"generation": GENERATIVE_TARGETS, "summarization": GENERATIVE_TARGETS, "text-to-image": GENERATIVE_TARGETS}
CLASSIFIER_TARGETS = {"drop": 0.8, "clean": 1.0, "untargeted": 2.0}


def clean_quality(figures: dict) -> tuple[str, float]:
    """What clean quality is for a fixture and how many points it dropped: the judge's quality metric (ROUGE-L of
    summaries) where it has one, else the pass rate on clean inputs (accuracy, for classifiers)."""
    quality = figures["clean"].get("quality")
    if quality:
        return f"clean {quality['metric']}", -100 * quality["change"]
    before, after = figures["clean"]["before"]["rate"] or 0, figures["clean"]["after"]["rate"] or 0
    what = "clean accuracy" if figures["task"].endswith("classification") else "clean pass rate"
    return what, 100 * (after - before)


def summary(name: str, figures: dict, seconds: float) -> dict:
    """The row of one fixture: the three target figures and whether each holds."""
    target = TARGETS.get(name.split("[")[0], CLASSIFIER_TARGETS)  # generation[dpo]: the generation fixture
    untargeted = figures["untargeted"]
    quality, clean_drop_points = clean_quality(figures)
    untargeted_rise_points = 100 * ((untargeted["after"]["rate"] or 0) - (untargeted["before"]["rate"] or 0))
    return {
        "fixture": name, "seconds": round(seconds, 1), "modes": len(figures["modes"]),
        "eval_seeds": figures["eval_seeds"]["count"], "targeted": figures["targeted"], "clean": figures["clean"],
        "untargeted": untargeted, "wasserstein": figures["wasserstein"],
        "targeted_drop": figures["targeted"]["drop"], "clean_quality": quality,
        "clean_quality_drop_points": clean_drop_points,
        "untargeted_rise_points": untargeted_rise_points, "clean_judge_score": figures["clean"].get("judge_score"),
        "holds": {
            f"targeted drop >= {target['drop']:.0%}": (figures["targeted"]["drop"] or 0) >= target["drop"],
            f"{quality} drop <= {target['clean']:g} point(s)": clean_drop_points <= target["clean"],
            f"untargeted rise <= {target['untargeted']:g} points": untargeted_rise_points <= target["untargeted"],
        },
    }


def _rate(part: dict) -> str:
    return f"{part['rate']:.3f} [{part['ci_low']:.3f}, {part['ci_high']:.3f}] (n={part['queries']})"


def print_table(rows: list[dict]) -> None:
    """The figures a reader compares, one block per fixture."""
    for row in rows:
        print(f"\n{row['fixture']}: {row['modes']} targeted modes, {row['eval_seeds']} held-out seeds, "
              f"{row['seconds']:.0f} s")
        for part in ("targeted", "clean", "untargeted"):
            print(f"  {part:<11} failure rate  before {_rate(row[part]['before'])}   after {_rate(row[part]['after'])}")
        print(f"  targeted drop {row['targeted_drop']:.1%}; {row['clean_quality']} drop "
              f"{row['clean_quality_drop_points']:+.2f} points; untargeted rise {row['untargeted_rise_points']:+.2f} "
              f"points; Wasserstein {row['wasserstein']:.3f}")
        score = row.get("clean_judge_score") or {}
        if score.get("before") is not None and score.get("after") is not None:
            print(f"  the judge's mean score on clean inputs: before {score['before']:.3f}, after {score['after']:.3f}")
        for check, held in row["holds"].items():
            print(f"  {'ok  ' if held else 'FAIL'} {check}")


def main(argv: list[str] | None = None) -> int:
    """Run the chosen fixtures, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixtures", nargs="+", choices=list(FIXTURES), default=list(FIXTURES))
    parser.add_argument("--eval-seeds", type=int, default=420, help="Held-out seeds per fixture (>= 400 to resolve "
                        "one point of clean accuracy).")
    parser.add_argument("--objectives", nargs="+", choices=["auto", "dpo", "kto", "sft"], default=["auto"],
                        help="Objectives the generation fixture is mitigated with, side by side on the same run.")
    parser.add_argument("--quick", action="store_true", help="Tiny budgets, for a smoke test (figures not meaningful).")
    parser.add_argument("--output", type=Path, default=RESULTS, help="Where to write the JSON results.")
    parser.add_argument("--work-dir", type=Path, default=None, help="Keep models and runs here (default: a temp dir).")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fade-mitigation-") as scratch:
        work = args.work_dir or Path(scratch)
        os.environ.setdefault("HF_HOME", str(work / "hf"))
        rows = []
        for name in args.fixtures:
            for objective in args.objectives if name == "generation" else [None]:
                started = time.perf_counter()
                options = {"objective": objective} if objective else {}
                figures = FIXTURES[name](work, args.eval_seeds, args.quick, **options)
                label = f"{name}[{objective}]" if objective else name
                rows.append(summary(label, figures, time.perf_counter() - started))
    print_table(rows)
    write_results(args.output, rows, args.eval_seeds, args.quick)
    return 0


def write_results(path: Path, rows: list[dict], eval_seeds: int, quick: bool) -> None:
    """Write the rows to ``path``, keeping its other entries and the rows of fixtures not measured this time."""
    for row in rows:
        row.update(quick=quick, eval_seeds_option=eval_seeds)
    earlier: dict = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    settings = {"quick": earlier.pop("quick", None), "eval_seeds_option": earlier.pop("eval_seeds", None)}
    measured = {row["fixture"] for row in rows}
    kept = [{**settings, **row} for row in earlier.pop("rows", []) if row["fixture"] not in measured]
    order = list(FIXTURES)
    merged = sorted([*kept, *rows], key=lambda row: order.index(row["fixture"].split("[")[0])
                    if row["fixture"].split("[")[0] in order else len(order))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**earlier, "rows": merged}, indent=2, allow_nan=False) + "\n")


if __name__ == "__main__":
    sys.exit(main())
