"""Restructure for generative models, the whole loop on fixtures trained in the session and the local Hub: explore
(through the chat template), push, feedback through the app's API with a preferred text, mitigate (trl DPO for the
chat model, Seq2SeqTrainer for the summarizer), push the adapter, load it back with stock peft, and re-explore."""

from __future__ import annotations

import hashlib
import json
import logging

import pandas as pd
import pytest
import torch
from conftest import assert_same_weights, mitigate_cli, unique_repo

from fade_hub.cli import main
from fade_hub.explore import ExploreConfig
from fade_hub.explore.runner import explore
from fade_hub.mitigate import MitigateConfig, mitigate, push_adapter
from fade_hub.testing import loops

def _mitigated(loop: dict, name: str) -> dict:
    """The loop (its correction recorded as sent) mitigated with its settings, the adapter pushed."""
    assert loop["record"]["correction"] and loop["record"]["item_type"] == "example"
    loop["result"] = loops.mitigate_loop(loop, loop["root"] / "adapter")
    loop["adapter"] = unique_repo(f"{name}-faded", "local-user")
    push_adapter(loop["result"].path, loop["adapter"])
    return loop


@pytest.fixture(scope="module")
def generation_loop(hub, chat_model, tmp_path_factory):
    """The chat fixture on the Hub, explored through its template, reviewed, mitigated with the default objective."""
    return _mitigated(loops.generation_loop(tmp_path_factory.mktemp("generation-loop"), chat_model), "chat")


@pytest.mark.slow
def test_chat_model_is_explored_through_its_template_and_the_typo_modes_fade(generation_loop):
    from fade_hub.testing.generation import CHAT_TEMPLATE

    run, figures = generation_loop["run"], generation_loop["result"].figures
    target = run.meta["target"]
    assert target["prompt_format"] == "chat template" and target["system_prompt"]
    assert target["chat_template_sha256"] == hashlib.sha256(CHAT_TEMPLATE.encode()).hexdigest()
    typo_cells = {int(cell) for cell in run.landscape.loc[run.landscape["typos"].astype(str) != "0", "action_id"]}
    assert {int(cell) for cell in run.modes["action_id"]} == typo_cells  # the planted failure, and only it
    print(f"\ngeneration loop: targeted {figures['targeted']['before']['rate']:.2f} -> "
          f"{figures['targeted']['after']['rate']:.2f}, clean {figures['clean']['before']['rate']:.2f} -> "
          f"{figures['clean']['after']['rate']:.2f}")
    assert figures["targeted"]["before"]["rate"] >= 0.8 and figures["targeted"]["drop"] >= 0.7
    # benchmarks/results/mitigation.json seed_spread: no clean prompt newly failed at any seed (1 and 2 threads);
    # one of the 40 may on another CPU without the test failing (a 2.5-point allowance)
    assert figures["clean"]["after"]["failures"] <= figures["clean"]["before"]["failures"] + 1
    training = figures["training"]
    assert training["trainer"] == "trl.DPOTrainer" and training["objective"] == "dpo"
    assert training["prompt_format"] == "chat template"
    assert training["pairs"]["correction"] == 1 and training["pairs"]["clean answer"] >= 20
    assert training["sampling"]["tried"] == 0  # every clean answer passed: nothing to sample
    assert figures["feedback"]["corrections"] == 1


@pytest.mark.slow
def test_the_same_seed_gives_the_same_causal_lm_adapter(generation_loop, tmp_path):
    """Issue 25, item 19: DPO on the chat model again, in a fresh process with another hash seed."""
    again = mitigate_cli(generation_loop["mitigation"], tmp_path / "again")
    assert_same_weights(generation_loop["result"].path, again)


@pytest.mark.slow
def test_stock_peft_loads_the_chat_adapter_and_answers_as_measured(generation_loop, tmp_path):
    from huggingface_hub import ModelCard, hf_hub_download
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fade_hub.testing.generation import SYSTEM

    adapter = generation_loop["adapter"]
    examples = pd.read_parquet(hf_hub_download(adapter, "eval/examples.parquet"))
    # none of the examples failed after mitigation at any seed measured; the room the targeted drop has (>= 70 %)
    assert examples["base_failure"].all() and examples["mitigated_failure"].mean() <= 0.3
    model = AutoPeftModelForCausalLM.from_pretrained(adapter).eval()
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    conversations = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]
                     for text in examples["input"]]
    encoded = tokenizer.apply_chat_template(conversations, add_generation_prompt=True, padding=True,
                                            return_dict=True, return_tensors="pt")
    with torch.no_grad():
        output = model.generate(**encoded, max_new_tokens=12, do_sample=False)
    answers = tokenizer.batch_decode(output[:, encoded["input_ids"].shape[1]:], skip_special_tokens=True)
    assert answers == examples["mitigated_output"].tolist()
    card = ModelCard.load(adapter)
    assert "AutoPeftModelForCausalLM.from_pretrained" in card.text and adapter in card.text
    assert "pass rate on clean inputs" in card.text and card.data.pipeline_tag == "text-generation"
    config = json.loads((generation_loop["result"].path / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == generation_loop["model"] and config["task_type"] == "CAUSAL_LM"
    merged = tmp_path / "merged"  # a plain model with the LoRA merged in answers the same
    assert main(["pull", adapter, "--output", str(merged), "--merge"]) == 0
    plain = AutoModelForCausalLM.from_pretrained(merged).eval()
    with torch.no_grad():
        again = plain.generate(**encoded, max_new_tokens=12, do_sample=False)
    assert tokenizer.batch_decode(again[:, encoded["input_ids"].shape[1]:], skip_special_tokens=True) == answers


@pytest.mark.slow
def test_re_exploring_the_chat_variant_records_its_lineage(generation_loop):
    again = loops.reexplore(generation_loop, generation_loop["adapter"], generation_loop["root"] / "rerun")
    lineage = again.meta["lineage"]
    assert lineage["base_model"] == generation_loop["model"] and lineage["adapter"] == generation_loop["adapter"]
    assert lineage["run_ids"] == [generation_loop["run"].run_id]
    before = generation_loop["run"].landscape.set_index("action_id")["failure_rate"]
    after = again.landscape.set_index("action_id")["failure_rate"]
    for cell in generation_loop["run"].modes["action_id"]:
        assert after[int(cell)] <= 0.3 * before[int(cell)]


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["kto", "sft"])
def test_kto_and_sft_objectives_train_on_the_same_feedback(generation_loop, tmp_path, objective):
    from fade_hub.testing.generation import write_prompts

    held_out = write_prompts(tmp_path / "eval.jsonl", 12, 4, avoid=[generation_loop["seeds"]])
    result = mitigate(MitigateConfig(
        run=str(generation_loop["run"].path), feedback=[generation_loop["feedback"]], output=str(tmp_path / "adapter"),
        objective=objective, steps=30, batch_size=16, eval_seeds=str(held_out), show_progress=False,
    ))
    training = result.figures["training"]
    assert training["objective"] == objective and training["trainer"] == f"trl.{objective.upper()}Trainer"
    assert training["objective_reason"] == f"--objective {objective}" and training["anchors"] > 0
    assert ("kto_weights" in training) == (objective == "kto")
    assert result.figures["targeted"]["after"]["rate"] < result.figures["targeted"]["before"]["rate"]
    assert (result.path / "adapter_model.safetensors").is_file()


def test_the_objective_is_the_measured_default_unless_nothing_contrasts():
    from fade_hub.mitigate.config import MitigateConfig as Config
    from fade_hub.mitigate.language_model import AUTO_OBJECTIVE, LanguageModelMitigator
    from fade_hub.mitigate.preferences import Pair, PreferenceData

    def choose(objective: str, *pairs: Pair) -> tuple[str, str]:
        mitigator = LanguageModelMitigator(None, Config(run="r", output="o", objective=objective))
        return mitigator.objective(PreferenceData(list(pairs), []))

    contrast = Pair("hwllo", "hello there.", "you are stupid.", "clean answer")
    only_corrections = Pair("hwllo", "hello there.", None, "correction")
    assert choose("auto", contrast) == (AUTO_OBJECTIVE, "--objective auto (the measured default)")
    assert choose("kto", contrast, only_corrections)[0] == "kto"
    assert choose("dpo", only_corrections) == ("sft", "only corrections without a failing answer to contrast")
    assert choose("sft", contrast)[0] == "sft"


@pytest.mark.parametrize(("desirable", "undesirable"), [(30, 10), (10, 30), (11, 10), (5, 0)])
def test_kto_weights_bring_the_weighted_ratio_into_the_recommended_range(desirable, undesirable):
    from fade_hub.mitigate.language_model import kto_weights

    rows = [{"label": True}] * desirable + [{"label": False}] * undesirable
    weight_desirable, weight_undesirable = kto_weights(rows)
    assert max(weight_desirable, weight_undesirable) == 1.0  # only the more numerous side is weighted down
    if undesirable:
        assert 1.0 <= weight_desirable * desirable / (weight_undesirable * undesirable) <= 4 / 3


@pytest.fixture(scope="module")
def summarization_loop(hub, summarizer_model, tmp_path_factory):
    """The summarizer fixture on the Hub, explored, reviewed with a preferred summary, mitigated."""
    return _mitigated(loops.summarization_loop(tmp_path_factory.mktemp("summarization-loop"), summarizer_model),
                      "summarizer")


@pytest.mark.slow
def test_summarizer_loop_fades_the_upper_case_modes(summarization_loop):
    run, figures = summarization_loop["run"], summarization_loop["result"].figures
    upper = {int(cell) for cell in run.landscape.loc[run.landscape["case"].astype(str) == "upper", "action_id"]}
    assert {int(cell) for cell in run.modes["action_id"]} == upper
    quality = figures["clean"]["quality"]
    print(f"\nsummarization loop: targeted {figures['targeted']['before']['rate']:.2f} -> "
          f"{figures['targeted']['after']['rate']:.2f}, clean ROUGE-L {quality['before']:.3f} -> "
          f"{quality['after']:.3f}")
    assert figures["targeted"]["before"]["rate"] >= 0.8 and figures["targeted"]["drop"] >= 0.7
    assert quality["metric"] == "ROUGE-L F1" and quality["change"] >= -0.02
    training = figures["training"]
    assert training["trainer"] == "transformers.Seq2SeqTrainer"
    assert training["targets"] == {"reference summaries": training["train_seeds"], "clean summaries": 0,
                                   "seeds without a target": 0, "corrections": 1}


@pytest.mark.slow
def test_the_same_seed_gives_the_same_seq2seq_adapter(summarization_loop, tmp_path):
    """Issue 25, item 19: the summarizer's mitigation again, in a fresh process with another hash seed."""
    again = mitigate_cli(summarization_loop["mitigation"], tmp_path / "again")
    assert_same_weights(summarization_loop["result"].path, again)


@pytest.mark.slow
def test_stock_peft_loads_the_summarizer_adapter_and_re_exploring_records_lineage(summarization_loop, tmp_path):
    from huggingface_hub import ModelCard, hf_hub_download
    from peft import AutoPeftModelForSeq2SeqLM, PeftModel
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    adapter = summarization_loop["adapter"]
    examples = pd.read_parquet(hf_hub_download(adapter, "eval/examples.parquet"))
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    encoded = tokenizer(examples["input"].tolist(), padding=True, return_tensors="pt")

    def summaries(model) -> list[str]:
        with torch.no_grad():
            output = model.eval().generate(**encoded)
        return [text.strip() for text in tokenizer.batch_decode(output, skip_special_tokens=True)]

    assert summaries(AutoPeftModelForSeq2SeqLM.from_pretrained(adapter)) == examples["mitigated_output"].tolist()
    base = AutoModelForSeq2SeqLM.from_pretrained(summarization_loop["model"])
    assert summaries(PeftModel.from_pretrained(base, adapter)) == examples["mitigated_output"].tolist()
    merged = tmp_path / "merged"  # a plain model with the LoRA merged in summarises the same
    assert main(["pull", adapter, "--output", str(merged), "--merge"]) == 0
    assert summaries(AutoModelForSeq2SeqLM.from_pretrained(merged)) == examples["mitigated_output"].tolist()
    assert "AutoPeftModelForSeq2SeqLM.from_pretrained" in ModelCard.load(adapter).text
    again = loops.reexplore(summarization_loop, adapter, summarization_loop["root"] / "rerun")
    assert again.meta["lineage"]["base_model"] == summarization_loop["model"]
    before = summarization_loop["run"].landscape.set_index("action_id")["failure_rate"]
    after = again.landscape.set_index("action_id")["failure_rate"]
    for cell in summarization_loop["run"].modes["action_id"]:
        assert after[int(cell)] <= 0.3 * before[int(cell)]


# bad input and fallbacks ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_feedback_without_a_usable_pair_fails_with_one_line_naming_the_space(generation_loop, tmp_path, capsys):
    from fade_hub.feedback import FeedbackWriter, make_record
    from fade_hub.testing.generation import write_prompts

    # a judge that fails every answer: no clean answer passes, and no sampled one either
    run = explore(ExploreConfig(model=generation_loop["model"], seeds=str(generation_loop["seeds"]),
                                space=str(generation_loop["space"]), algorithm="grid", judge_regex="^",
                                max_new_tokens=4, output=str(tmp_path / "run"), show_progress=False, confirm_top=0))
    feedback = tmp_path / "feedback"
    FeedbackWriter(feedback).append(make_record(run.run_id, "1", "fix", "", "", "ann"))
    output = tmp_path / "adapter"
    capsys.readouterr()  # what explore printed
    code = main(["mitigate", str(run.path), "--feedback", str(feedback), "--output", str(output), "--no-progress",
                 "--samples", "2", "--steps", "2", "--eval-seeds",
                 str(write_prompts(tmp_path / "eval.jsonl", 4, 9, avoid=[generation_loop["seeds"]]))])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and lines[-1].startswith("error:") and "Traceback" not in "".join(lines), lines
    assert len(lines) <= 2  # besides the error, at most the warning that so few seeds cannot show one point
    err = lines[-1]
    assert "no usable preference pair" in err and "2 sampled answers" in err and "feedback Space" in err
    assert not output.exists()


def test_a_model_without_chat_template_gets_plain_prompts_with_a_warning(tiny_models, caplog):
    from fade_hub.targets import load_target

    with caplog.at_level(logging.WARNING, logger="fade_hub.targets.text_generation"):
        target = load_target(str(tiny_models("text-generation")), task="text-generation", system_prompt="be brief")
    assert "has no chat template" in caplog.text and "--raw-prompts" in caplog.text
    described = target.describe()
    assert described["prompt_format"] == "plain text" and described["chat_template_sha256"] is None
    assert target.plain_prompt("hello") == "be brief\n\nhello"
    assert len(target.predict(["hello", ""])) == 2
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fade_hub.targets.text_generation"):
        load_target(str(tiny_models("text-generation")), task="text-generation", raw_prompts=True)
    assert not caplog.records  # plain prompts asked for: nothing to warn about


@pytest.mark.slow
def test_chat_template_formats_prompts_unless_raw_prompts(generation_loop):
    from fade_hub.targets import load_target
    from fade_hub.testing.generation import SYSTEM

    chat = load_target(str(generation_loop["model_dir"]), task="text-generation", system_prompt=SYSTEM)
    ids = chat.encode(["tell me something about the lake."])["input_ids"][0]
    assert chat.processor.decode(ids) == \
        f"<|system|>{SYSTEM}<|end|><|user|>tell me something about the lake.<|end|><|assistant|>"
    raw = load_target(str(generation_loop["model_dir"]), task="text-generation", raw_prompts=True)
    assert raw.describe()["prompt_format"] == "plain text" and not raw.uses_chat_template
    assert raw.processor.decode(raw.encode(["tell me"])["input_ids"][0]) == "tell me"
