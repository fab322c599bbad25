"""Restructure for text-to-image, the whole loop on the local Hub: a pipeline trained in the session to draw shapes
(``fancy`` ones come out wrong), judged by the demo's shapes classifier; explore, push, feedback through the app's
API (fix the modes, accept one generated image, reject another), mitigate with a UNet LoRA, push it, load it back
with ``pipe.load_lora_weights(REPO)``, fuse it with ``pull --merge``, and re-explore the variant."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from conftest import assert_same_weights, mitigate_cli, unique_repo
from PIL import Image

from fade_hub.cli import main
from fade_hub.testing import loops
from fade_hub.testing.drawing import GENERATION

pytestmark = pytest.mark.slow

STEPS = GENERATION["num_inference_steps"]


@pytest.fixture(scope="module")
def loop(hub, drawing_model, shapes_model, tmp_path_factory):
    """Explore the pipeline on the Hub over descriptor x shape, push, review in the app, mitigate, push the LoRA."""
    from fade_hub.mitigate import push_adapter

    loop = loops.t2i_loop(tmp_path_factory.mktemp("t2i-loop"), drawing_model, shapes_model)
    loop["result"] = loops.mitigate_loop(loop, loop["root"] / "adapter")
    loop["adapter"] = unique_repo("drawing-faded", "local-user")
    push_adapter(loop["result"].path, loop["adapter"])
    return loop


def test_the_run_finds_the_planted_failure(loop):
    modes = loop["run"].modes
    assert set(modes["descriptor"]) == {"fancy"} and set(modes["shape"]) == {"circle", "square", "triangle"}
    assert loop["run"].meta["judge"]["name"] == "image-classifier"
    assert loop["run"].meta["judge"]["labels"] == ["circle", "square", "triangle"]


def test_the_lora_fades_the_fancy_shapes_and_keeps_the_clean_ones(loop):
    figures = loop["result"].figures
    print(f"\nt2i loop: targeted {figures['targeted']['before']['rate']:.2f} -> {figures['targeted']['after']['rate']:.2f}"
          f", clean {figures['clean']['before']['rate']:.3f} -> {figures['clean']['after']['rate']:.3f}")
    assert sorted(mode["action_id"] for mode in figures["modes"]) == sorted(loop["modes"])
    # mitigate's defaults; thresholds with room beyond the spread over training seeds 0-4 at 1 thread
    # (benchmarks/mitigation_seeds.py, benchmarks/results/mitigation.json seed_spread): targeted drop 0.94 to 1.0,
    # clean rate up 0 to 0.7 points
    assert figures["targeted"]["before"]["rate"] >= 0.8 and figures["targeted"]["drop"] >= 0.75
    assert figures["clean"]["before"]["queries"] == 24 * 6  # held-out prompts x the six plain/bold cells
    assert figures["clean"]["after"]["rate"] <= figures["clean"]["before"]["rate"] + 0.03
    assert "descriptor=plain, shape=square" in figures["clean"]["inputs"]
    assert figures["clean"]["judge_score"]["before"] > 0.5
    training = figures["training"]
    assert training["pairs"]["accepted"] == 1  # the accepted image; the rejected one is left out
    assert training["train_seeds"] == 9 + 8  # the pushed run's explored templates (its seeds on the Hub) + 8 more
    assert 45 <= training["pairs"]["fix"] <= 17 * 3 and training["pairs"]["preservation"] > 0  # (9 explored + 8) x 3
    assert training["target_modules"] == ["to_k", "to_out.0", "to_q", "to_v"]
    assert training["prediction_type"] == "v_prediction" and "diffusers" in training["trainer"]
    assert figures["task"] == "text-to-image" and figures["base_model"] == loop["model"]


def test_the_same_seed_gives_the_same_unet_lora(loop, tmp_path):
    """Issue 25, item 19: the fixture's mitigation again, in a fresh process with another hash seed."""
    again = mitigate_cli(loop["mitigation"], tmp_path / "again")
    assert_same_weights(loop["result"].path, again, "pytorch_lora_weights.safetensors")


def test_fade_hub_push_publishes_a_diffusers_lora_folder_as_a_model_repo(loop):
    from huggingface_hub import HfApi

    repo = unique_repo("drawing-pushed", "local-user")
    assert main(["push", str(loop["result"].path), repo]) == 0
    assert "pytorch_lora_weights.safetensors" in HfApi().list_repo_files(repo)


def test_the_variant_is_a_diffusers_lora_repo_with_a_card(loop):
    from huggingface_hub import HfApi, ModelCard, hf_hub_download

    files = set(HfApi().list_repo_files(loop["adapter"]))
    assert {"pytorch_lora_weights.safetensors", "fade_eval.json", "eval/examples.parquet",
            "plots/modes_before_after.png", "plots/landscape_before_after.png", "README.md"} <= files
    assert "adapter_config.json" not in files
    card = ModelCard.load(loop["adapter"])
    data = card.data.to_dict()
    assert data["library_name"] == "diffusers" and data["base_model"] == loop["model"]
    assert {"lora", "text-to-image", "diffusers"} <= set(data["tags"])
    assert f'pipe.load_lora_weights("{loop["adapter"]}")' in card.text and "pass rate on clean inputs" in card.text
    examples = pd.read_parquet(hf_hub_download(loop["adapter"], "eval/examples.parquet"))
    assert {"image", "base_image", "input", "expected"} <= set(examples.columns)
    assert examples["base_failure"].mean() > examples["mitigated_failure"].mean()
    assert all(shape in prompt for shape, prompt in zip(examples["expected"], examples["input"]))


def _pictures(cells) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(cell["bytes"])).convert("RGB"), dtype=np.float32) for cell in cells]


def _generate(pipe, prompts: list[str]) -> list[np.ndarray]:
    """Images as the target makes them: one generator per prompt, seeded from the prompt and the run seed (0)."""
    import torch

    from fade_hub.targets.text_to_image import prompt_seed

    pipe.set_progress_bar_config(disable=True)
    generators = [torch.Generator("cpu").manual_seed(prompt_seed(prompt, 0)) for prompt in prompts]
    images = pipe(prompt=prompts, generator=generators, num_inference_steps=STEPS).images
    return [np.asarray(image.convert("RGB"), dtype=np.float32) for image in images]


def test_stock_diffusers_loads_the_variant_and_pull_merge_fuses_it(loop, tmp_path):
    from diffusers import DiffusionPipeline, StableDiffusionPipeline
    from huggingface_hub import hf_hub_download

    examples = pd.read_parquet(hf_hub_download(loop["adapter"], "eval/examples.parquet")).iloc[:6]
    prompts, mitigated, base = examples["input"].tolist(), _pictures(examples["image"]), _pictures(examples["base_image"])
    pipe = StableDiffusionPipeline.from_pretrained(loop["model"])
    assert all(np.abs(a - b).mean() < 1.0 for a, b in zip(_generate(pipe, prompts), base))
    pipe.load_lora_weights(loop["adapter"])
    assert all(np.abs(a - b).mean() < 1.0 for a, b in zip(_generate(pipe, prompts), mitigated))

    merged = tmp_path / "merged"
    assert main(["pull", loop["adapter"], "--output", str(merged), "--merge"]) == 0
    assert (merged / "model_index.json").is_file() and not (merged / "pytorch_lora_weights.safetensors").exists()
    fused = _generate(DiffusionPipeline.from_pretrained(str(merged)), prompts)
    assert all(np.abs(a - b).mean() < 3.0 for a, b in zip(fused, mitigated))
    copy = tmp_path / "copy"
    assert main(["pull", loop["adapter"], "--output", str(copy)]) == 0
    assert (copy / "pytorch_lora_weights.safetensors").is_file()


def test_re_exploring_the_variant_records_its_lineage(loop):
    again = loops.reexplore(loop, loop["adapter"], loop["root"] / "rerun")
    lineage = again.meta["lineage"]
    assert lineage["base_model"] == loop["model"] and lineage["adapter"] == loop["adapter"]
    assert lineage["run_ids"] == [loop["run"].run_id]
    before = loop["run"].landscape.set_index("action_id").loc[loop["modes"], "failure_rate"]
    after = again.landscape.set_index("action_id").loc[loop["modes"], "failure_rate"]
    # anyone can check: the variant draws the fancy shapes right (0 of the base's failure rate over training seeds
    # 0-4; see the test above)
    assert after.mean() <= 0.3 * before.mean()


# bad input: one line, exit 2, nothing already produced is lost ----------------------------------------------------


def test_feedback_without_a_usable_pair_says_what_to_add(loop, tmp_path, capsys):
    from fade_hub.feedback import FeedbackWriter, make_record

    folder = tmp_path / "rejections"
    FeedbackWriter(folder).append(make_record(loop["run"].run_id, f"q{int(loop['run'].failures['query_id'].iloc[0])}",
                                              "fix", "reject", "", "ann"))
    code = main(["mitigate", loop["run_repo"], "--feedback", str(folder), "--output", str(tmp_path / "out"),
                 "--eval-seeds", str(loop["root"] / "train.jsonl"), "--steps", "2", "--no-progress"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and lines[-1].startswith("error:") and "Traceback" not in "".join(lines), lines
    assert len(lines) <= 2  # besides the error, at most the warning that so few seeds cannot show one point
    assert "no (prompt, image) pair" in lines[-1] and "accept" in lines[-1]
    assert not (tmp_path / "out").exists()


def test_a_diffusers_lora_without_its_figures_names_no_base(loop, tmp_path):
    from fade_hub.errors import ModelNotFound
    from fade_hub.targets import load_target

    folder = tmp_path / "bare-lora"
    folder.mkdir()
    (folder / "pytorch_lora_weights.safetensors").write_bytes(
        (loop["result"].path / "pytorch_lora_weights.safetensors").read_bytes())
    with pytest.raises(ModelNotFound, match="no fade_eval.json naming its base"):
        load_target(str(folder))
    figures = json.loads((loop["result"].path / "fade_eval.json").read_text())
    (folder / "fade_eval.json").write_text(json.dumps({"base_model": figures["base_model"], "task": "text-to-image"}))
    target = load_target(str(folder), generation_kwargs={"num_inference_steps": 2})
    assert target.lineage["base_model"] == loop["model"] and target.task == "text-to-image"
