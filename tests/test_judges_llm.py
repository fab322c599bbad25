"""The LLM judge (issue 24): a tiny chat model trained in the session judges the chat fixture's answers, loaded here
and served by the test inference server (with 429/503s, and half of its replies malformed); its regions are the
keyword judge's, unreadable replies are asked once more and then left unjudged, and verdicts are cached."""

from __future__ import annotations

import json

import pandas as pd

import pytest

from fade_hub.errors import BadConfig
from fade_hub.evidence import Evidence
from fade_hub.explore import ExploreConfig
from fade_hub.explore.runner import explore
from fade_hub.judges.reply import parse_reply
from fade_hub.judges.rubric import builtin_rubrics, load_rubric
from fade_hub.testing.generation import BANNED, SYSTEM, write_prompts
from fade_hub.testing.http_server import Faults
from fade_hub.testing.loops import GENERATION_SPACE
from fade_hub.testing.judge_model import HalfMalformed, malformed_again, malformed_first, write_rubric
from conftest import space_file


@pytest.fixture(scope="module")
def bed(session_dir, tmp_path_factory):
    """Seed prompts, the typo x case space and the test rubric."""
    root = tmp_path_factory.mktemp("llm-judge")
    return {"root": root, "seeds": write_prompts(root / "seeds.jsonl", 16, seed=1),
            "space": space_file(root, "generation", GENERATION_SPACE), "rubric": write_rubric(root / "stupid.yaml")}


def explore_chat(chat_model, bed, output, **options) -> object:
    """A grid run over the chat fixture (or, with ``model`` and ``endpoint``, the model served) with the given judge
    flags."""
    settings = dict(model=str(chat_model), seeds=str(bed["seeds"]), space=str(bed["space"]), algorithm="grid",
                    system_prompt=SYSTEM, max_new_tokens=12, confirm_seeds=4, show_progress=False, output=str(output))
    return explore(ExploreConfig(**{**settings, **options}))


def region_ids(run) -> list[str]:
    """The run's failure regions, ranked."""
    return list(run.regions["region_id"]) if len(run.regions) else []


@pytest.fixture(scope="module")
def keyword_run(chat_model, bed):
    """The chat fixture judged by keywords: the reference regions."""
    return explore_chat(chat_model, bed, bed["root"] / "keywords", judge_keywords=[BANNED])


def test_built_in_rubrics_load_and_a_bad_rubric_file_says_what_is_wrong(tmp_path):
    assert set(builtin_rubrics()) == {"harmful", "refusal", "off-task", "unfaithful", "missing-key-point"}
    for name in builtin_rubrics():
        rubric = load_rubric(name)
        assert rubric.question and rubric.source == f"builtin:{name}" and len(rubric.sha256) == 64
    broken = tmp_path / "broken.yaml"
    broken.write_text("question: [unclosed\n", encoding="utf-8")
    with pytest.raises(BadConfig, match="not valid YAML"):
        load_rubric(str(broken))
    no_question = tmp_path / "no-question.yaml"
    no_question.write_text("fail: rude\npass: polite\n", encoding="utf-8")
    with pytest.raises(BadConfig, match="has no question"):
        load_rubric(str(no_question))


def test_only_one_verdict_object_parses():
    assert parse_reply('{"verdict": "fail", "reason": "rude"}').failed
    assert not parse_reply('```json\n{"verdict": "PASS", "reason": ""}\n```').failed
    for text in ("verdict: fail", '{"verdict": "maybe"}', '[{"verdict": "fail"}]', '{"verdict": "fail"} extra', None,
                 '{"verdict": "fail", "reason": 3}'):
        assert parse_reply(text) is None, text


@pytest.mark.slow
def test_a_local_llm_judge_finds_the_keyword_judges_regions_and_a_rerun_asks_nothing(chat_model, judge_model, bed,
                                                                                    keyword_run):
    assert region_ids(keyword_run) and all("typos=0.1" in region for region in region_ids(keyword_run))
    run = explore_chat(chat_model, bed, bed["root"] / "llm-local", judge_llm=str(judge_model),
                       judge_rubric=str(bed["rubric"]), judge_device="cpu", judge_audit=6)
    assert region_ids(run) == region_ids(keyword_run)
    audited = run.queries.set_index("query_id").loc[run.meta["judge_audit"]]
    assert len(audited) == 6 and audited["is_failure"].sum() == 3  # stratified over pass and fail
    judged = run.queries[run.queries["judged"]]
    reference = keyword_run.queries.set_index("query_id").loc[judged["query_id"], "is_failure"].to_numpy()
    assert (judged["is_failure"].to_numpy() == reference).all()  # the same verdict on every answer
    assert not run.queries["unjudged"].any()
    reasons = set(judged["judge_reason"])
    assert reasons == {"the answer calls the question stupid.", "the answer is polite."}
    meta = run.meta
    assert meta["judge"]["name"] == "llm" and meta["judge"]["rubric"] == "stupid"
    assert len(meta["judge"]["rubric_sha256"]) == 64 and meta["judge"]["temperature"] == 0.0
    assert meta["judge_usage"]["requests"] > 0 and meta["judge_usage"].get("unjudged", 0) == 0
    again = explore_chat(chat_model, bed, bed["root"] / "llm-local-again", judge_llm=str(judge_model),
                         judge_rubric=str(bed["rubric"]), judge_device="cpu")
    assert region_ids(again) == region_ids(run)
    assert again.meta["judge_usage"].get("requests", 0) == 0  # every verdict came from the cache
    assert again.meta["judge_usage"]["cached"] == len(judged)


@pytest.mark.slow
def test_a_served_llm_judge_behind_429_and_503_finds_the_same_regions(chat_model, judge_model, bed, keyword_run,
                                                                     tmp_path, monkeypatch):
    from fade_hub.testing.inference_server import PipelineBackend, serve

    monkeypatch.setenv("FADE_HUB_CACHE", str(tmp_path / "cache"))  # a cold verdict cache
    backend = PipelineBackend("text-generation", judge_model, model_id="tester/judge", revision="abc123")
    server = serve(backend, Faults(rate_limit_every=5, unavailable_every=7, retry_after=0))
    try:
        run = explore_chat(chat_model, bed, tmp_path / "served", judge_endpoint=server.url,
                           judge_rubric=str(bed["rubric"]), concurrency=4)
        assert region_ids(run) == region_ids(keyword_run)
        assert not run.queries["unjudged"].any()
        usage = run.meta["judge_usage"]
        assert usage["retries"] > 0 and usage["requests"] >= server.stats.answered
        assert run.meta["judge"]["model_id"] == "tester/judge" and run.meta["judge"]["commit_sha"] == "abc123"
        assert run.meta["judge"]["json_mode"].startswith("response_format")
    finally:
        server.stop()


@pytest.mark.slow
def test_a_judge_answering_malformed_json_half_the_time_is_asked_once_more_then_leaves_the_answer_unjudged(
        chat_model, judge_model, bed, tmp_path, monkeypatch):
    from fade_hub.judges.llm import INVARIANT
    from fade_hub.judges.rubric import load_rubric
    from fade_hub.testing.inference_server import PipelineBackend, serve

    monkeypatch.setenv("FADE_HUB_CACHE", str(tmp_path / "cache"))
    backend = HalfMalformed(PipelineBackend("text-generation", judge_model, model_id="tester/judge"))
    server = serve(backend)
    try:
        run = explore_chat(chat_model, bed, tmp_path / "malformed", judge_endpoint=server.url,
                           judge_rubric=str(bed["rubric"]))
    finally:
        server.stop()
    rubric = load_rubric(str(bed["rubric"]))
    queries = run.queries[run.queries["expected"] != "not judged"]
    conversations = [rubric.messages(str(row.input), INVARIANT, str(row.output)) for row in queries.itertuples()]
    # every answer whose first reply was malformed was asked once more; those malformed twice are unjudged
    unjudged = queries["unjudged"].to_numpy()
    assert list(unjudged) == [malformed_again(c) for c in conversations]
    assert 0 < unjudged.sum() < len(unjudged)
    usage = run.meta["judge_usage"]
    # a case is asked once per batch; a readable verdict is cached, an unjudged one asked again in a later batch
    distinct = {json.dumps(c): c for c in conversations}.values()
    assert sum(malformed_first(c) for c in distinct) <= usage["asked_again"] <= sum(map(malformed_first, conversations))
    assert usage["unjudged"] == int(unjudged.sum())
    # an unjudged answer is neither a pass nor a failure: no failure, no verdict, and no seed of evidence
    assert not queries.loc[unjudged, "is_failure"].any() and not queries.loc[unjudged, "judged"].any()
    assert set(queries.loc[unjudged, "expected"]) == {"unjudged"}
    recovered = [malformed_first(c) and not malformed_again(c) for c in conversations]
    assert queries.loc[recovered, "judged"].all()  # asked again, answered the second time
    pairs = Evidence.from_queries(queries).pairs
    assert len(pairs) == len(queries[~unjudged].groupby(["phase", "action_id", "seed_id"]))
    card = (run.path / "README.md").read_text(encoding="utf-8")
    assert f"{int(unjudged.sum())} unjudged" in card


@pytest.mark.slow
def test_rejudge_asks_the_model_nothing_reproduces_the_keyword_regions_and_a_second_rejudge_asks_the_judge_nothing(
        chat_model, judge_model, bed, keyword_run, tmp_path, monkeypatch):
    from fade_hub.commands.rejudge import RejudgeConfig, rejudge
    from fade_hub.testing.inference_server import PipelineBackend, serve

    monkeypatch.setenv("FADE_HUB_CACHE", str(tmp_path / "cache"))
    # the model under test served by the test server, whose request counter says whether anything asked it
    target = serve(PipelineBackend("text-generation", chat_model, model_id="tester/chat"))
    judge = serve(PipelineBackend("text-generation", judge_model, model_id="tester/judge"))
    try:
        source = explore_chat(chat_model, bed, tmp_path / "served-keywords", judge_keywords=[BANNED],
                              model="tester/chat", endpoint=target.url + "/v1", task="text-generation")
        explored = target.stats.requests
        first = rejudge(RejudgeConfig(run=str(source.path), output=str(tmp_path / "one"),
                                      judge_endpoint=judge.url, judge_rubric=str(bed["rubric"])))
        asked = judge.stats.requests
        second = rejudge(RejudgeConfig(run=str(source.path), output=str(tmp_path / "two"),
                                       judge_endpoint=judge.url, judge_rubric=str(bed["rubric"])))
        probes = judge.stats.requests - asked
        model_asked = target.stats.requests - explored
    finally:
        judge.stop()
        target.stop()
    assert explored >= len(source.queries) > 0 and model_asked == 0  # re-judging asked the model nothing
    assert region_ids(source) == region_ids(keyword_run)  # served as run locally: the keyword judge's regions
    # the answers are the recorded ones, query for query
    assert list(first.queries["output"]) == list(source.queries["output"])
    assert list(first.queries["is_failure"]) == list(source.queries["is_failure"])
    assert region_ids(first) == region_ids(keyword_run) == region_ids(second)
    assert first.meta["rejudged_from"]["run_id"] == source.meta["run_id"]
    assert first.meta["rejudged_from"]["judge"] == "keywords" and first.meta["judge"]["name"] == "llm"
    assert first.meta["judge_usage"]["requests"] > 0 and asked > 0
    assert second.meta["judge_usage"].get("requests", 0) == 0 and probes == 0
    assert "Re-judged" in (second.path / "README.md").read_text(encoding="utf-8")


def write_feedback(folder, run_id, verdicts):
    """Feedback records (target, verdict, user) as the Space writes them, one JSON line each."""
    from fade_hub.feedback.records import make_record

    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(make_record(run_id, target, verdict, "", "", user).to_dict()) for target, verdict, user in verdicts]
    (folder / "feedback-test.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_agreement_of_twenty_reviewed_examples_sixteen_agreeing():
    from fade_hub.agreement import Agreement

    judge = [True] * 12 + [False] * 8
    reviewers = [True] * 10 + [False] * 2 + [True] * 2 + [False] * 6
    figures = Agreement.of(judge, reviewers)
    assert (figures.items, figures.agreeing, figures.share) == (20, 16, 0.8)
    assert figures.kappa == pytest.approx((0.8 - 0.52) / 0.48)
    assert figures.kappa_low < figures.kappa < figures.kappa_high and figures.share_low < 0.8 < figures.share_high


@pytest.mark.slow
def test_report_and_card_show_the_judges_agreement_with_reviewers_and_flag_a_judge_error(keyword_run, tmp_path,
                                                                                         capsys):
    from fade_hub.cli import main
    from fade_hub.feedback.records import load
    from fade_hub.store import RunStore

    queries = keyword_run.queries
    explored = queries[(queries["phase"] == "explore") & queries["judged"]]
    failing, passing = explored[explored["is_failure"]].head(12), explored[~explored["is_failure"]].head(8)
    verdicts = [(f"q{q}", "fix" if i < 10 else "not_a_failure", "ann") for i, q in enumerate(failing["query_id"])]
    verdicts += [(f"q{q}", "acceptable" if i < 2 else "not_a_failure", "ann") for i, q in enumerate(passing["query_id"])]
    top = keyword_run.regions.iloc[0]["region_id"]
    verdicts += [(top, "not_a_failure", "ann"), (top, "not_a_failure", "bob")]
    folder = write_feedback(tmp_path / "feedback", keyword_run.meta["run_id"], verdicts)
    assert main(["report", str(keyword_run.path), "--feedback", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "agreement 0.80" in out and "20 reviewed" in out and "Cohen's kappa 0.58" in out
    assert f"| {top} |" in out and "not a failure" in out
    assert main(["report", str(keyword_run.path), "--feedback", str(folder), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)["judge_agreement"]
    assert document["overall"]["items"] == 20 and document["judge_errors"] == [top]
    kappa = document["overall"]
    print(f"\nagreement {kappa['share']:.2f}, kappa {kappa['kappa']:.2f} ({kappa['kappa_low']:.2f} to "
          f"{kappa['kappa_high']:.2f})")
    from fade_hub.card import run_card

    card = str(run_card(RunStore(keyword_run.path), feedback=load(folder).resolved()))
    assert "## Judge against reviewers" in card and "agreement 0.80" in card
    assert "**yes: reviewers say the judge is wrong here (2 of 2 verdicts: not a failure)**" in card


def test_the_judge_audit_is_stratified_over_pass_and_fail():
    from fade_hub.agreement import audit_sample

    queries = pd.DataFrame({"query_id": range(100), "phase": ["explore"] * 90 + ["clean"] * 10,
                            "judged": [True] * 100, "is_failure": [q % 10 == 0 for q in range(100)],
                            "unjudged": [q == 20 for q in range(100)]})
    chosen = audit_sample(queries, 10, seed=3)
    picked = queries.set_index("query_id").loc[chosen]
    assert len(chosen) == 10 and picked["is_failure"].sum() == 5 and (picked["phase"] == "explore").all()
    assert 20 not in chosen and audit_sample(queries, 10, seed=3) == chosen
    assert len(audit_sample(queries, 200, seed=0)) == 89  # every judged explore answer, no more
