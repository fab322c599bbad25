"""What a perturbation means: invariant and directional ops, cells that are not judged, and failure modes that
must beat the clean failure rate. Real models trained in the session answer every query."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fade_hub.cli import main
from fade_hub.explore import ExploreConfig
from fade_hub.explore.runner import explore
from fade_hub.store import RunStore
from fade_hub.testing.sentiment import flipped

pytestmark = pytest.mark.slow


def grid_run(model: Path, seeds: Path, output: Path, **options) -> tuple[pd.DataFrame, dict]:
    """A grid over the default text space (typos x case x negate x punctuation); its landscape and metadata."""
    run = explore(ExploreConfig(model=str(model), seeds=str(seeds), algorithm="grid", output=str(output),
                                show_progress=False, **options))
    return run.landscape, run.meta


def test_a_model_that_reads_negation_is_not_reported_failing_under_it(negation_sentiment, tmp_path):
    landscape, meta = grid_run(negation_sentiment["reads"], negation_sentiment["seeds"], tmp_path / "run")
    assert set(landscape["negate"]) == {"false", "true"}  # the default space kept negation: the labels are polar
    clean_error = meta["clean"]["rate"]
    plain = landscape[landscape["typos"] == "0"]
    negated = plain[plain["negate"] == "true"]
    print(f"\nreads negation: clean error {clean_error:.3f}; negate=true, typos=0 cells: "
          f"{negated['failures'].sum()}/{negated['queries'].sum()} failed, max cell rate "
          f"{negated['failure_rate'].max():.2f}")
    assert (negated["failure_rate"] <= clean_error + 0.05).all()
    assert not (negated["significant"] | negated["confirmed"]).any()
    assert set(negated["expectation"]) == {"directional (negate)"}
    labels = {f"sentiment-seeds.jsonl/{i:05d}": json.loads(line)["label"]
              for i, line in enumerate(Path(negation_sentiment["seeds"]).read_text().splitlines())}
    rows = [r for r in RunStore(tmp_path / "run").read_queries() if r["phase"] == "explore" and r["negate"] == "true"]
    assert all(r["expected"] == flipped(labels[r["seed_id"]]) for r in rows)  # the right answer flips with "not"
    assert {r["expected_source"] for r in rows} == {"seed label, flipped by negate"}


def test_a_model_that_ignores_negation_fails_exactly_there(negation_sentiment, tmp_path):
    landscape, meta = grid_run(negation_sentiment["ignores"], negation_sentiment["seeds"], tmp_path / "run")
    plain = landscape[landscape["typos"] == "0"]
    modes = plain[plain["significant"]]
    negated = plain[plain["negate"] == "true"]
    print(f"\nignores negation: clean error {meta['clean']['rate']:.3f}; negate=true, typos=0 cells: "
          f"{negated['failures'].sum()}/{negated['queries'].sum()} failed "
          f"(min cell rate {negated['failure_rate'].min():.2f}); failure modes at typos=0: {len(modes)}")
    assert set(modes["action_id"]) == set(negated["action_id"])
    assert (negated["failure_rate"] >= 0.9).all()


def test_ten_percent_clean_error_without_perturbation_effect_is_no_failure_mode(shapes_model, block_space, tmp_path):
    """Mislabel one seed in ten: the model is then wrong on them in every cell, which is no failure mode."""
    from fade_hub.demo.shapes import write_seed_folder

    seeds = write_seed_folder(tmp_path / "seeds", per_class=14, seed=3)
    for index in range(0, 42, 10):  # move every tenth image into the next class's folder
        label = sorted(p.name for p in seeds.iterdir())[index % 3]
        image = sorted((seeds / label).iterdir())[index // 3]
        wrong = sorted(p.name for p in seeds.iterdir())[(index + 1) % 3]
        shutil.move(image, seeds / wrong / f"mislabelled-{image.name}")
    harmless = tmp_path / "harmless.yaml"
    harmless.write_text(yaml.safe_dump({"modality": "image", "factors": [
        {"name": "rotation", "op": "rotate", "levels": [0, 5]},
        {"name": "saturation", "op": "saturation", "levels": [1.0, 0.6]},
    ]}))
    landscape, meta = grid_run(shapes_model, seeds, tmp_path / "harmless", space=str(harmless))
    print(f"\n10% clean error: clean rate {meta['clean']['rate']:.3f}, cell rates "
          f"{landscape['failure_rate'].round(2).tolist()}, modes {int(landscape['significant'].sum())}")
    assert 0.05 <= meta["clean"]["rate"] <= 0.2
    assert not landscape["confirmed"].any() and not landscape["significant"].any()
    landscape, _ = grid_run(shapes_model, seeds, tmp_path / "block", space=str(block_space))
    dark_rotated = landscape[(landscape["rotation"] == "40") & (landscape["brightness"] == "0.2")].iloc[0]
    assert dark_rotated["significant"] and int(dark_rotated["rank"]) == 1


def test_a_cell_with_an_unjudgeable_op_is_not_judged(tiny_models, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"modality": "text", "factors": [
        {"name": "case", "op": "case", "levels": ["none", "upper"]},
        {"name": "shuffle", "op": "shuffle", "levels": [False, True], "expect": "unjudgeable"},
    ]}))
    run = explore(ExploreConfig(model=str(tiny_models("text-classification")), algorithm="grid", space=str(space),
                                output=str(tmp_path / "run"), show_progress=False, num_seeds=8))
    rows = [r for r in RunStore(run.path).read_queries() if r["phase"] == "explore"]
    shuffled = [r for r in rows if r["shuffle"] == "true"]
    assert shuffled and all(not r["judged"] and not r["is_failure"] for r in shuffled)
    assert {r["expected_source"] for r in shuffled} == {"not judged: shuffle has no automatic expectation"}
    assert all(r["judged"] for r in rows if r["shuffle"] == "false")
    land = run.landscape.set_index("action_id")
    assert land.loc[1, "expectation"] == "not judged (shuffle)" and not land.loc[1, "judged"]
    assert not set(run.modes["action_id"]) & {1, 3}


@pytest.fixture
def topic_model(tiny_models, tmp_path) -> Path:
    """The tiny text classifier relabelled as a topic model (sports / politics), with unlabelled seeds next to it."""
    folder = tmp_path / "topics"
    shutil.copytree(tiny_models("text-classification"), folder)
    config = json.loads((folder / "config.json").read_text())
    config["id2label"], config["label2id"] = {"0": "sports", "1": "politics"}, {"sports": 0, "politics": 1}
    (folder / "config.json").write_text(json.dumps(config))
    (tmp_path / "news.txt").write_text("the team is winning again\nthe vote is close tonight\n")
    return folder


def test_the_default_space_leaves_negation_out_for_labels_it_cannot_flip(topic_model, tmp_path, caplog):
    run = explore(ExploreConfig(model=str(topic_model), seeds=str(tmp_path / "news.txt"), algorithm="random",
                                budget=8, output=str(tmp_path / "run"), show_progress=False, confirm_top=0))
    assert "negate" not in [factor.name for factor in run.space.factors]
    assert "leaves out negate" in caplog.text and "expect: {map:" in caplog.text


@pytest.mark.parametrize(
    ("expect", "message"),
    [
        (None, "not a positive/negative pair; give it expect: {map:"),
        ({"map": {"sports": "weather", "politics": "sports"}}, "names 'weather', which is not a label of the model"),
        ({"map": {"sports": "politics", "politics": "politics"}}, "sends two labels to 'politics'"),
    ],
)
def test_bad_directional_maps_fail_before_any_query(topic_model, tmp_path, capsys, expect, message):
    factor = {"name": "negate", "op": "negate", "levels": [False, True]}
    if expect is not None:
        factor["expect"] = expect
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"modality": "text", "factors": [factor]}))
    output = tmp_path / "run"
    code = main(["explore", str(topic_model), "--seeds", str(tmp_path / "news.txt"), "--concepts", str(space),
                 "--output", str(output), "--no-progress", "--algorithm", "random", "--budget", "4"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (output / "logs" / "queries.jsonl").exists()


def test_a_label_map_lets_label_ids_read_as_a_polarity_pair(tiny_models, tmp_path):
    folder = tmp_path / "ids"
    shutil.copytree(tiny_models("text-classification"), folder)
    config = json.loads((folder / "config.json").read_text())
    config["id2label"], config["label2id"] = {"0": "LABEL_0", "1": "LABEL_1"}, {"LABEL_0": 0, "LABEL_1": 1}
    (folder / "config.json").write_text(json.dumps(config))
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"text": f"the show is good {i}", "label": "positive"}) + "\n" for i in range(4)))
    label_map = tmp_path / "labels.yaml"
    label_map.write_text("negative: LABEL_0\npositive: LABEL_1\n")
    run = explore(ExploreConfig(model=str(folder), seeds=str(seeds), label_map=str(label_map), algorithm="grid",
                                output=str(tmp_path / "run"), show_progress=False, confirm_top=0))
    negated = [r for r in RunStore(run.path).read_queries() if r["phase"] == "explore" and r["negate"] == "true"]
    assert negated and {r["expected"] for r in negated} == {"LABEL_0"}


def test_a_judge_that_cannot_state_the_flipped_answer_refuses_negation_at_start_up(tiny_models, tmp_path, capsys):
    output = tmp_path / "run"
    code = main(["explore", str(tiny_models("text-generation")), "--concepts", "builtin:text-default",
                 "--judge-keywords", "hate", "--output", str(output), "--no-progress", "--budget", "4"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "factor negate changes the right answer" in err and "keywords judge cannot state" in err
    assert not (output / "logs" / "queries.jsonl").exists()


def test_report_shows_the_clean_failure_rate(shapes_model, block_space, tmp_path, capsys):
    from fade_hub.demo.shapes import write_seed_folder

    seeds = write_seed_folder(tmp_path / "seeds", per_class=2, seed=4)
    grid_run(shapes_model, seeds, tmp_path / "run", space=str(block_space), confirm_top=0)
    assert main(["report", str(tmp_path / "run")]) == 0
    assert "clean failure rate 0/6 seeds = 0.00 [0.00, 0.39]: a failure region fails significantly more often" in capsys.readouterr().out
