"""Bad input to the LLM judge and to sampling (issue 24): one `error:` line, exit 2, nothing written."""

from __future__ import annotations

import pytest
from bad_input import Case, fails_cleanly

from fade_hub.testing.generation import write_prompts
from fade_hub.testing.inference_server import FixedBackend, serve

pytestmark = pytest.mark.slow  # a model loads in each row

RUN = ("explore", "{model}", "--seeds", "{seeds}", "--output", "{root}/run", "--no-progress")
CASES = {
    "rubric not YAML": Case((*RUN, "--judge-llm", "{model}", "--judge-rubric", "{root}/broken.yaml"),
                            "is not valid YAML"),
    "rubric without a question": Case((*RUN, "--judge-llm", "{model}", "--judge-rubric", "{root}/no-question.yaml"),
                                      "has no question"),
    "no such rubric": Case((*RUN, "--judge-llm", "{model}", "--judge-rubric", "kind"), "no built-in rubric"),
    "zero samples per query": Case((*RUN, "--judge-keywords", "x", "--sampling", "--samples-per-query", "0"),
                                   "--samples-per-query"),
    "samples of a greedy model": Case((*RUN, "--judge-keywords", "x", "--samples-per-query", "4"), "--sampling"),
    "two judges": Case((*RUN, "--judge-llm", "{model}", "--judge-keywords", "stupid"), "--judge-keywords"),
    "judge endpoint answers 401": Case((*RUN, "--judge-endpoint", "{judge}", "--judge-rubric", "{root}/ok.yaml"),
                                       "401", process=True),
    "rejudge without a judge": Case(("rejudge", "{root}", "--output", "{root}/again"), "--judge-llm"),
}


@pytest.fixture(scope="module")
def bed(tmp_path_factory, tiny_models):
    """A tiny text-generation model, seeds, rubric files and a judge server that refuses every credential."""
    root = tmp_path_factory.mktemp("judge-bad-input")
    (root / "broken.yaml").write_text("question: [unclosed\n", encoding="utf-8")
    (root / "no-question.yaml").write_text("fail: rude\npass: polite\n", encoding="utf-8")
    (root / "ok.yaml").write_text("question: Is the answer rude?\n", encoding="utf-8")
    write_prompts(root / "seeds.jsonl", 8)
    server = serve(FixedBackend({"choices": []}, delay_s=0.0), token="the-right-token")
    yield {"root": str(root), "model": str(tiny_models("text-generation")), "seeds": str(root / "seeds.jsonl"),
           "judge": server.url}
    server.stop()


@pytest.mark.parametrize("name", list(CASES))
def test_bad_judge_input_is_one_clear_line_and_writes_nothing(name, bed):
    fails_cleanly(CASES[name], bed)
