"""The bad-input table of remote endpoints: answers a client cannot read, a slow body, credentials where they don't go.

Each row runs ``fade-hub ARGV`` as ``test_bad_input.py`` does (``tests/bad_input.py``), and asserts: exit
status 2, at most three lines on stderr (none longer than 1,000 characters), the last one the error holding
the row's needle, no traceback, and a test bed byte-for-byte as it was. The answer rows resume an unfinished
endpoint run whose server answers as the URL's ``?answer=`` asks (``ScriptedBackend``; a run records no query
string): the failed resume must leave the run as it was, resumable, its ``run.json`` untouched.

Placeholders: ``{cls}``/``{gen}`` the scripted text-classification / text-generation servers, ``{cls_run}``/
``{gen_run}`` the unfinished runs against them, ``{space}`` a 2x2 text space, ``{out}`` a fresh output folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fade_hub.cli import main
from fade_hub.perturb import ConceptSpace
from fade_hub.store import RunStore
from fade_hub.testing.inference_server import ScriptedBackend, serve
from bad_input import Case, fails_cleanly

pytestmark = pytest.mark.slow  # a trickled body waits its 2 s deadline

TEXT_SPACE = {
    "modality": "text",
    "factors": [
        {"name": "case", "op": "case", "levels": ["none", "upper"]},
        {"name": "typos", "op": "typos", "levels": [0, 0.3]},
    ],
}
KEPT = 3  # queries the unfinished runs keep


def _explore(model: str, *flags: str, out: str) -> tuple[str, ...]:
    return ("explore", model, "--concepts", "{space}", "--num-seeds", "8", "--algorithm", "random", "--budget", "6",
            "--confirm-top", "0", "--concurrency", "1", "--batch-size", "4", "--no-progress", "--output", out,
            *flags)  # fmt: skip


def _classifier(*flags: str, out: str = "{cls_run}", answer: str = "ok") -> tuple[str, ...]:
    return _explore("someone/classifier", "--task", "text-classification", "--labels", "NEGATIVE,POSITIVE",
                    "--seeds", "builtin:sentences", "--endpoint", f"{{cls}}/?answer={answer}", *flags, out=out)


def _generator(*flags: str, out: str = "{gen_run}", answer: str = "ok") -> tuple[str, ...]:
    return _explore("someone/generator", "--task", "text-generation", "--judge-keywords", "x", "--max-new-tokens", "4",
                    "--seeds", "builtin:prompts", "--endpoint", f"{{gen}}/?answer={answer}", *flags, out=out)


def _resumed(answer: str, *flags: str) -> tuple[str, ...]:
    return _classifier("--resume", *flags, answer=answer)


CASES: dict[str, Case] = {
    # answers that are not answers (issue 25, item 17): one line saying what the server sent
    "answer-score-nan": Case(_resumed("nan"), "not a text-classification answer (RecursionError): HTTP 200, "
                                              "application/json, 76 bytes: '[[{{\"label\": \"POSITIVE\", \"score\": NaN}}"),
    "answer-html": Case(_resumed("html"), "text/html, 50 bytes: '<html><body><h1>502 Bad Gateway</h1></body></html>'",
                        process=True),
    "answer-empty-body": Case(_resumed("empty"), "(JSONDecodeError: Expecting value: line 1 column 1 (char 0)): "
                                                 "HTTP 200, application/json, 0 bytes: ''"),
    "answer-null": Case(_resumed("null"), "HTTP 200, application/json, 4 bytes: 'null'"),
    "answer-huge-label": Case(_resumed("huge-label"), "answered class 'XXXXXXXXXX"),
    "answer-label-not-in-labels": Case(_resumed("other-label"), "answered class 'joy', which is not one of --labels "
                                       "(NEGATIVE, POSITIVE); give --labels the names the server answers with"),
    "answer-generated-object": Case(_generator("--resume", answer="object"), "not a text-generation answer "
                                    "(ValueError: the generated text is a dict, not a string): HTTP 200"),
    # a body sent one byte per second (item 22): --request-timeout is a deadline for the whole answer
    "answer-slow-body": Case(_resumed("trickle", "--request-timeout", "2", "--max-retries", "0"),
                             "kept failing (no answer within 2 s) after 0 retries"),
    # credentials (item 23)
    "endpoint-token-refused": Case(_resumed("refuse", "--endpoint-token", "s3cr3t-wrong"),
                                   "HTTP 401: refused the credentials; pass --endpoint-token TOKEN (or set "
                                   "FADE_HUB_ENDPOINT_TOKEN); HF_TOKEN goes to Hugging Face hosts only"),
    "endpoint-token-plain-http": Case(_explore("someone/classifier", "--task", "text-classification", "--endpoint",
                                               "http://192.0.2.7:8080/", "--endpoint-token", "s3cr3t", out="{out}"),
                                      "plain http to another machine, and fade-hub sends no credential over it "
                                      "(a token would be readable on the way)"),
    "endpoint-token-from-env-plain-http": Case(
        _explore("someone/classifier", "--task", "text-classification", "--endpoint", "http://192.0.2.7/",
                 out="{out}"), "plain http to another machine", env={"FADE_HUB_ENDPOINT_TOKEN": "s3cr3t"}),
    "endpoint-user-info-plain-http": Case(_explore("someone/classifier", "--task", "text-classification",
                                                   "--endpoint", "http://me:pa55word@192.0.2.7/", out="{out}"),
                                          "(the user info in its URL would be readable on the way)"),
    "endpoint-port-not-a-number": Case(_explore("someone/classifier", "--task", "text-classification", "--endpoint",
                                                "http://127.0.0.1:eighty/v1", out="{out}"), "--endpoint is not a URL"),
    "endpoint-without-host": Case(_explore("someone/classifier", "--task", "text-classification", "--endpoint",
                                           "http:///v1", out="{out}"), "--endpoint names no host"),
    "endpoint-token-without-endpoint": Case(_explore("someone/classifier", "--task", "text-classification",
                                                     "--provider", "together", "--endpoint-token", "s3cr3t", out="{out}"),
                                            "--endpoint-token is sent to --endpoint, and none is given"),
}


@pytest.fixture(scope="module")
def bed(tmp_path_factory, hub) -> dict[str, str]:
    """Scripted servers and, against each, an unfinished run that kept its first ``KEPT`` queries."""
    root = tmp_path_factory.mktemp("bad-endpoints")
    space = root / "text-2x2.yaml"
    ConceptSpace.from_dict(TEXT_SPACE).to_yaml(space)
    servers = {name: serve(ScriptedBackend(task)) for name, task in (("cls", "text-classification"),
                                                                      ("gen", "text-generation"))}  # fmt: skip
    places = {"root": str(root), "space": str(space), "out": str(root / "out"),
              "cls_run": str(root / "cls-run"), "gen_run": str(root / "gen-run"),
              **{name: server.url for name, server in servers.items()}}  # fmt: skip
    try:
        for argv, run in ((_classifier(), "cls_run"), (_generator(), "gen_run")):
            assert main([part.format(**places) for part in argv]) == 0
            store = RunStore(places[run])
            lines = store.queries_path.read_text(encoding="utf-8").splitlines(keepends=True)
            store.queries_path.write_text("".join(lines[:KEPT]), encoding="utf-8")
            store.update_meta(status="running")
        yield places
    finally:
        for server in servers.values():
            server.stop()


@pytest.mark.parametrize("name", list(CASES))
def test_bad_endpoint_input_is_one_clear_line_and_changes_nothing(name, bed):
    stderr = fails_cleanly(CASES[name], bed)
    assert "pa55word" not in stderr and "s3cr3t" not in stderr
    argv = [part.format(**bed) for part in CASES[name].argv]
    if "--resume" in argv:  # the run is as it was: resumable, with its queries
        run = Path(argv[argv.index("--output") + 1])
        assert json.loads((run / "run.json").read_text())["status"] == "running"
        assert len(RunStore(run).read_queries()) == KEPT
