"""Mitigation benchmark: how much a fade-hub LoRA adapter fades the targeted failure regions, and what it costs.

A simulated reviewer gives one ``fix`` verdict per region of each run (its confirmed regions, else all of them), as
the Space does; ``mitigate`` trains on every cell of the regions, holds a share of the untargeted cells out of
training (collateral on unseen perturbations) and measures before and after on the same held-out seeds, every
figure with a 95 % interval from a paired bootstrap over seeds. Five fixtures:
- ``shapes``: the demo's image classifier as the package ships it (it never saw dark *and* rotated shapes),
  explored with ppo over the demo space.
- ``sentiment``: a small text classifier with a cased tokenizer that never saw upper case, so it fails under
  upper and toggled case (label-preserving); explored with grid over typos x case.
- ``generation``: a tiny chat model (``fade_hub.testing.generation``) that says a banned word to prompts with
  typos; explored through its chat template with the keyword judge over typos x case x punctuation; mitigated
  with trl (``--objectives dpo kto sft`` compares the objectives on the same run).
- ``summarization``: a tiny BART (``fade_hub.testing.summaries``) that drops the key sentence of upper-cased
  articles; explored with the ROUGE judge against reference summaries over case x punctuation; mitigated with
  ``Seq2SeqTrainer``.
- ``text-to-image``: a small Stable Diffusion pipeline trained to draw circles, squares and triangles, whose
  ``fancy`` shapes come out wrong (``fade_hub.testing.drawing``), judged by the demo's shapes classifier; explored
  with grid over descriptor x shape; a UNet LoRA trained on (fix prompt, image) pairs.

For each, the base and the mitigated model answer the same held-out seeds (never explored, confirmed or trained
on, compared by content; at least 400 of them for the classifiers, so that one point of clean accuracy is
measurable; for text-to-image every one of the fixture's 224 prompt templates that is neither explored nor trained
on, up to half as many as the seeds (200 at ``--eval-seeds 420``), each at the three targeted and the six clean
cells, so that 2 points of the clean pass rate are; for the chat fixture the 71 prompts of its 150 that are neither
explored nor trained on: rows measured before fade-hub compared seeds by content held repeated prompts, some of them
trained on) over the targeted regions, the clean inputs, the collateral cells and the untargeted cells trained on.
Printed with their 95 % intervals, and written to ``benchmarks/results/mitigation.json`` after each fixture (the
rows of fixtures not run this time are kept, each row with its settings). Targets, read from interval bounds (issue
22): for the classifiers, targeted failures down >= 90 % with the interval's lower bound >= 80 %, the upper bound of
the clean accuracy loss <= 1 point and of the collateral rise on unseen perturbations <= 2 points; for the generative
fixtures, the drop's lower bound >= 70 % and the upper bounds of the clean quality loss (the pass rate on clean
prompts; ROUGE-L on clean articles) and of the collateral rise <= 2 points.

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
DRAWING_TRAINED = 24  # prompt templates of the drawing fixture explored (16) or added for training (8)
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


def _review(run, folder: Path) -> Path:
    """A simulated reviewer's 'fix' verdict on each confirmed region of ``run`` (on every region when none is
    confirmed), through the same records the Space writes."""
    from fade_hub.feedback import FeedbackWriter, make_record

    regions = run.regions
    confirmed = regions[regions["confirmed"].astype(bool)] if len(regions) else regions
    chosen = confirmed if len(confirmed) else regions
    if chosen.empty:
        raise RuntimeError(f"run {run.run_id} found no failure region to review")
    writer = FeedbackWriter(folder)
    for region_id in chosen["region_id"]:
        writer.append(make_record(run.run_id, str(region_id), "fix", "", "", "simulated-reviewer"))
    return folder


def shapes(work: Path, eval_seeds: int, quick: bool) -> dict:
    """The demo fixture: explore the shipped model, review its regions, mitigate, measure."""
    from fade_hub.demo.shapes import shipped_model_dir, write_seed_folder
    from fade_hub.explore import ExploreConfig
    from fade_hub.explore.runner import explore
    from fade_hub.mitigate import MitigateConfig, mitigate

    run = explore(ExploreConfig(model=str(shipped_model_dir()), seeds=str(write_seed_folder(work / "seeds", 16, seed=1000)),
                                space="builtin:demo-shapes", algorithm="ppo", budget=200 if quick else 600,
                                batch_size=32, output=str(work / "shapes-run"), show_progress=False))
    per_class = max(eval_seeds // 3, 2)
    result = mitigate(MitigateConfig(
        run=str(run.path), feedback=[str(_review(run, work / "shapes-feedback"))],
        output=str(work / "shapes-adapter"), steps=20 if quick else 150,
        train_seeds=[str(write_seed_folder(work / "shapes-train", 20, seed=2000))],
        eval_seeds=str(write_seed_folder(work / "shapes-eval", per_class, seed=3000)), show_progress=False,
    ))
    return result.figures


def sentiment(work: Path, eval_seeds: int, quick: bool) -> dict:
    """The text fixture: explore, review its regions, mitigate, measure."""
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
        run=str(run.path), feedback=[str(_review(run, work / "sentiment-feedback"))],
        output=str(work / "sentiment-adapter"), steps=20 if quick else 300, learning_rate=2e-3,
        train_seeds=[str(train)], show_progress=False,
        eval_seeds=str(write_seeds(work / "eval.jsonl", eval_seeds, seed=3, avoid=[seeds, train])),
    ))
    return result.figures


def _explore_and_review(work: Path, name: str, model: Path, space: dict, seeds: Path, **options):
    """Explore ``model`` with grid over ``space`` once per work dir (later calls reuse the run), and review its
    regions: the run and its feedback folder."""
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
        _review(run, feedback)
    return run, feedback


def generation(work: Path, eval_seeds: int, quick: bool, objective: str = "auto") -> dict:
    """The chat fixture (typo'd prompts make it say a banned word): explore through its chat template, review its
    regions, mitigate with ``objective``, measure."""
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
    """The summarizer fixture (it drops the key sentence of upper-cased articles): explore, review its regions,
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
    """The drawing fixture: explore with the shipped shapes classifier as judge, review its regions, mitigate,
    measure."""
    from fade_hub.demo.shapes import shipped_model_dir
    from fade_hub.explore import ExploreConfig
    from fade_hub.explore.runner import explore
    from fade_hub.mitigate import MitigateConfig, mitigate
    from fade_hub.testing.drawing import GENERATION, SPACE, templates, train_drawing_pipeline, write_prompt_seeds

    model = train_drawing_pipeline(work / "drawing-model", steps=150 if quick else 500)
    judge = shipped_model_dir()
    pool = templates(seed=11)  # 16 explored, 8 more trained on, the rest held out
    held_out = pool[DRAWING_TRAINED:][: max(eval_seeds // 2, 2)]
    space = work / "drawing-space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    run = explore(ExploreConfig(model=str(model), seeds=str(write_prompt_seeds(work / "drawing-seeds.jsonl", pool[:16])),
                                space=str(space), algorithm="grid", judge=str(judge), output=str(work / "drawing-run"),
                                num_inference_steps=GENERATION["num_inference_steps"], show_progress=False))
    result = mitigate(MitigateConfig(
        run=str(run.path), feedback=[str(_review(run, work / "drawing-feedback"))],
        output=str(work / "drawing-adapter"), **({"steps": 20} if quick else {}),  # mitigate's defaults otherwise
        train_seeds=[str(write_prompt_seeds(work / "drawing-train.jsonl", pool[16:DRAWING_TRAINED]))],
        eval_seeds=str(write_prompt_seeds(work / "drawing-eval.jsonl", held_out)), show_progress=False,
    ))
    return result.figures


FIXTURES = {"shapes": shapes, "sentiment": sentiment, "generation": generation, "summarization": summarization,
            "text-to-image": text_to_image}
GENERATIVE_TARGETS = {"drop": None, "drop_low": 0.7, "clean": 2.0, "collateral": 2.0}  # issue 22's
TARGETS = {"generation": GENERATIVE_TARGETS, "summarization": GENERATIVE_TARGETS, "text-to-image": GENERATIVE_TARGETS}
CLASSIFIER_TARGETS = {"drop": 0.9, "drop_low": 0.8, "clean": 1.0, "collateral": 2.0}


def _points(value: float | None) -> float | None:
    return None if value is None else 100 * value


def clean_loss(figures: dict) -> dict:
    """What clean quality is for a fixture and how many points it lost, with the interval: the judge's quality
    metric (ROUGE-L of summaries) where it has one, else the pass rate on clean inputs (accuracy, for classifiers)."""
    clean = figures["clean"]
    quality = clean.get("quality")
    if quality:  # a loss is a fall of the metric: minus its change
        return {"what": f"clean {quality['metric']}", "points": _points(-quality["change"]),
                "low": _points(None if quality.get("change_high") is None else -quality["change_high"]),
                "high": _points(None if quality.get("change_low") is None else -quality["change_low"])}
    what = "clean accuracy" if figures["task"].endswith("classification") else "clean pass rate"
    # a loss of accuracy (or pass rate) is a rise of the clean failure rate
    return {"what": what, "points": _points(clean["change"]), "low": _points(clean["change_low"]),
            "high": _points(clean["change_high"])}


def _change_points(part: dict) -> dict:
    return {"points": _points(part.get("change")), "low": _points(part.get("change_low")),
            "high": _points(part.get("change_high"))}


def summary(name: str, figures: dict, seconds: float) -> dict:
    """The row of one fixture: the figures with their intervals, and whether each target holds at its bound."""
    target = TARGETS.get(name.split("[")[0], CLASSIFIER_TARGETS)  # generation[dpo]: the generation fixture
    targeted, collateral = figures["targeted"], figures["collateral"]
    loss, rise = clean_loss(figures), _change_points(collateral)
    drop = {"value": targeted["drop"], "low": targeted["drop_low"], "high": targeted["drop_high"]}
    holds = {}
    if target["drop"] is not None:
        holds[f"targeted drop >= {target['drop']:.0%}"] = (drop["value"] or 0) >= target["drop"]
    holds[f"targeted drop's lower bound >= {target['drop_low']:.0%}"] = (drop["low"] or 0) >= target["drop_low"]
    holds[f"{loss['what']} loss's upper bound <= {target['clean']:g} point(s)"] = (
        loss["high"] is not None and loss["high"] <= target["clean"])
    holds[f"collateral rise's upper bound <= {target['collateral']:g} points"] = (
        rise["high"] is not None and rise["high"] <= target["collateral"])
    return {
        "fixture": name, "seconds": round(seconds, 1), "regions": [region["region_id"] for region in figures["regions"]],
        "targeted_cells": len(figures["modes"]), "collateral_cells": len(collateral["cells"]),
        "eval_seeds": figures["eval_seeds"]["count"], "targeted": targeted, "clean": figures["clean"],
        "collateral": collateral, "untargeted_trained": figures["untargeted_trained"],
        "targeted_drop": drop, "clean_loss_points": loss, "collateral_rise_points": rise,
        "untargeted_trained_change_points": _change_points(figures["untargeted_trained"]),
        "cell_changes": figures["cell_changes"], "wasserstein": figures["wasserstein"],
        "clean_judge_score": figures["clean"].get("judge_score"), "verdicts": figures["verdicts"], "holds": holds,
    }


def _rate(part: dict) -> str:
    if part["rate"] is None:
        return "n/a (no query)"
    return f"{part['rate']:.3f} [{part['ci_low']:.3f}, {part['ci_high']:.3f}] (n={part['queries']})"


def _signed(found: dict) -> str:
    if found["points"] is None or found["low"] is None:
        return "n/a"
    return f"{found['points']:+.2f} [{found['low']:+.2f}, {found['high']:+.2f}] points"


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def print_table(rows: list[dict]) -> None:
    """The figures a reader compares, one block per fixture."""
    for row in rows:
        print(f"\n{row['fixture']}: {len(row['regions'])} region(s) ({row['targeted_cells']} cells), "
              f"{row['collateral_cells']} collateral cells, {row['eval_seeds']} held-out seeds, {row['seconds']:.0f} s")
        for part in ("targeted", "clean", "collateral", "untargeted_trained"):
            print(f"  {part:<18} failure rate  before {_rate(row[part]['before'])}   after {_rate(row[part]['after'])}")
        drop = row["targeted_drop"]
        print(f"  targeted drop {_share(drop['value'])} [{_share(drop['low'])}, {_share(drop['high'])}]; "
              f"{row['clean_loss_points']['what']} loss {_signed(row['clean_loss_points'])}; collateral rise "
              f"{_signed(row['collateral_rise_points'])}; untargeted (trained on) change "
              f"{_signed(row['untargeted_trained_change_points'])}; Wasserstein {row['wasserstein']:.3f} (secondary)")
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
                write_results(args.output, rows, args.eval_seeds, args.quick)  # a long run keeps what it measured
                print_table(rows[-1:])
    return 0


def write_results(path: Path, rows: list[dict], eval_seeds: int, quick: bool) -> None:
    """Write the rows to ``path``, keeping its other entries and the rows of fixtures not measured this time."""
    rows = [{**row, "quick": quick, "eval_seeds_option": eval_seeds} for row in rows]
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
