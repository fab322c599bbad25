"""`fade-hub explore MODEL --endpoint URL` end to end against a local inference server over real tiny models."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fade_hub.cli import main
from fade_hub.explore.querier import Querier
from fade_hub.perturb import ConceptSpace
from fade_hub.store import RunStore
from fade_hub.targets.remote import RemoteTarget
from fade_hub.testing.http_server import Faults

TEXT_SPACE = {
    "modality": "text",
    "factors": [
        {"name": "case", "op": "case", "levels": ["none", "upper"]},
        {"name": "typos", "op": "typos", "levels": [0, 0.3]},
    ],
}
TOKEN = "hf_dummy_test_token"  # conftest's HF_TOKEN


@pytest.fixture
def text_space(tmp_path) -> str:
    path = tmp_path / "text-2x2.yaml"
    ConceptSpace.from_dict(TEXT_SPACE).to_yaml(path)
    return str(path)


def _flags(model: str, space: str, output: Path, budget: int = 40, *extra: str) -> list[str]:
    return ["explore", model, "--concepts", space, "--algorithm", "random", "--budget", str(budget), "--random-seed", "3",
            "--batch-size", "8", "--confirm-top", "2", "--confirm-seeds", "2", "--output", str(output),
            "--no-progress", *extra]  # fmt: skip


def _same_answers(rows: list[dict], reference: list[dict]) -> None:
    """What a local run and an endpoint run of the same model must share, query by query."""
    keys = ("query_id", "phase", "seed_id", "action_id", "input", "output", "expected", "is_failure")
    assert [tuple(row[key] for key in keys) for row in rows] == [tuple(row[key] for key in keys) for row in reference]
    assert [row["severity"] for row in rows] == pytest.approx([row["severity"] for row in reference], abs=1e-3)


def _exactly_once(rows: list[dict], budget: int) -> None:
    ids = [row["query_id"] for row in rows]
    assert ids == list(range(len(rows))) and sum(row["phase"] == "explore" for row in rows) == budget


def _run_files_text(root: Path) -> str:
    return "".join(p.read_bytes().decode("utf-8", "replace") for p in root.rglob("*") if p.is_file())


@pytest.mark.slow
def test_endpoint_run_equals_local_run(served, tiny_models, text_space, tmp_path, capsys):
    """--concurrency 8 through 429s, 503s with Retry-After, slow answers and dropped connections: exactly the budget's
    queries, none twice, each answered as the local run of the same model answers it; the run records where it ran."""
    model = str(tiny_models("text-classification"))
    faults = Faults(rate_limit_every=9, unavailable_every=14, slow_every=6, drop_every=17, slow_s=0.2)
    server = served("text-classification", faults, revision="0123abcd")
    assert main(_flags(model, text_space, tmp_path / "local")) == 0
    capsys.readouterr()
    url = server.url.replace("http://", "http://user:pa55word@") + "/?api_key=SECRET"
    assert main(_flags(model, text_space, tmp_path / "remote", 40, "--endpoint", url, "--concurrency", "8")) == 0
    out = capsys.readouterr().out

    local, remote = RunStore(tmp_path / "local").read_queries(), RunStore(tmp_path / "remote").read_queries()
    _exactly_once(remote, 40)
    _same_answers(remote, local)
    assert 1 < server.stats.max_in_flight <= 8 and sum(server.stats.faults.values()) >= 5
    meta = json.loads((tmp_path / "remote" / "run.json").read_text())
    assert meta["endpoint"] == meta["target"]["endpoint"] == meta["config"]["remote"]["endpoint"] == server.url + "/"
    assert meta["model_commit_sha"] == "0123abcd" and meta["target"]["served_model"]["model_id"] == "tester/served-text-classification"
    assert meta["usage"]["requests"] == len(remote) and meta["usage"]["retries"] >= 1
    assert f"endpoint usage: {len(remote)} requests" in out
    card = (tmp_path / "remote" / "README.md").read_text()
    assert f"endpoint: {server.url}/" in card and "0123abcd" in card
    everything = _run_files_text(tmp_path / "remote")
    assert TOKEN not in everything and "SECRET" not in everything and "pa55word" not in everything


@pytest.mark.slow  # end to end (a served app, a subprocess or timed requests): the slow tier
def test_image_classifier_endpoint_run_equals_local_run(served, tiny_models, shape_seeds, small_space, tmp_path):
    model = str(tiny_models("image-classification"))
    server = served("image-classification", Faults(unavailable_every=5, retry_after=0))
    flags = ["explore", model, "--seeds", str(shape_seeds), "--concepts", str(small_space), "--algorithm", "grid",
             "--confirm-top", "0", "--no-progress"]  # fmt: skip
    assert main([*flags, "--output", str(tmp_path / "local")]) == 0
    assert main([*flags, "--output", str(tmp_path / "remote"), "--endpoint", server.url, "--concurrency", "4"]) == 0
    local, remote = RunStore(tmp_path / "local").read_queries(), RunStore(tmp_path / "remote").read_queries()
    _same_answers(remote, local)
    assert sum(row["phase"] == "explore" for row in remote) == 4 * 6  # the grid: 4 cells x 6 seeds
    media = sorted(p.name for p in (tmp_path / "remote" / "media").glob("*.png")) if any(r["is_failure"] for r in remote) else []
    assert media == sorted(p.name for p in (tmp_path / "local" / "media").glob("*.png"))


def test_chat_run_records_the_route(served, tiny_models, tmp_path, capsys):
    server = served("chat", task="text-generation")
    flags = ["explore", "tester/served-chat", "--task", "text-generation", "--endpoint", server.url + "/v1",
             "--judge-keywords", "cat,dog", "--algorithm", "random", "--budget", "6", "--confirm-top", "0",
             "--max-new-tokens", "4", "--num-seeds", "4", "--output", str(tmp_path / "chat"), "--no-progress"]  # fmt: skip
    assert main(flags) == 0, capsys.readouterr().err
    meta = json.loads((tmp_path / "chat" / "run.json").read_text())
    queries = len(RunStore(tmp_path / "chat").read_queries())  # the clean baseline and the 6 explore queries
    assert meta["target"]["route"] == "chat" and meta["usage"]["completion_tokens"] == 4 * queries
    assert all("messages" in body for body in server.stats.bodies) and len(server.stats.bodies) == queries


@pytest.mark.slow  # end to end (a served app, a subprocess or timed requests): the slow tier
def test_an_endpoint_that_goes_down_stops_cleanly_and_resume_finishes(served, tiny_models, text_space, tmp_path, capsys):
    """The endpoint dies after 20 answers: one error line, those 20 queries kept; once it is back, --resume finishes
    the run with nothing lost or asked twice, the same records as a run that never stopped."""
    model = str(tiny_models("text-classification"))
    server = served("text-classification", Faults(fail_from=21))
    flags = _flags(model, text_space, tmp_path / "run", 40, "--endpoint", server.url, "--concurrency", "4",
                   "--max-retries", "1")  # fmt: skip
    capsys.readouterr()
    assert main(flags) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err[0].startswith("planned model calls: ")  # the plan, then one error line
    assert err[1:] == [f"error: {server.url} kept failing (HTTP 503) after 1 retry; the 20 queries answered so far are "
                       f"kept in {tmp_path / 'run'}: rerun with --resume to continue"]
    store = RunStore(tmp_path / "run")
    assert len(store.read_queries()) == 20 and store.read_meta()["status"] == "running"
    assert store.read_meta()["usage"]["requests"] == 20

    server.faults = Faults()
    assert main([*flags, "--resume", "--concurrency", "8"]) == 0
    resumed = store.read_queries()
    _exactly_once(resumed, 40)
    assert store.read_meta()["usage"]["requests"] == len(resumed)  # totals add up over both sessions
    assert main(_flags(model, text_space, tmp_path / "reference", 40, "--endpoint", server.url)) == 0
    _same_answers(resumed, RunStore(tmp_path / "reference").read_queries())


@pytest.mark.slow
def test_killed_run_resumes_against_the_endpoint(served, tiny_models, text_space, tmp_path, capsys):
    """SIGKILL mid-run (requests in flight): --resume continues against the endpoint with nothing lost or doubled."""
    model = str(tiny_models("text-classification"))
    server = served("text-classification", Faults(slow_every=1, slow_s=0.1))
    flags = _flags(model, text_space, tmp_path / "run", 64, "--endpoint", server.url, "--concurrency", "4")
    log = tmp_path / "run" / "logs" / "queries.jsonl"
    process = subprocess.Popen([sys.executable, "-m", "fade_hub.cli", *flags], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (log.exists() and log.read_bytes().count(b"\n") >= 16 and server.stats.in_flight >= 1):
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the run wrote no queries in time"
            time.sleep(0.01)
        in_flight_when_killed = server.stats.in_flight
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
    written = log.read_bytes().count(b"\n")
    assert 16 <= written < 64 and in_flight_when_killed >= 1
    server.faults = Faults()
    assert main([*flags, "--resume"]) == 0, capsys.readouterr().err
    resumed = RunStore(tmp_path / "run").read_queries()
    _exactly_once(resumed, 64)
    assert main(_flags(model, text_space, tmp_path / "reference", 64, "--endpoint", server.url)) == 0
    _same_answers(resumed, RunStore(tmp_path / "reference").read_queries())


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--endpoint", "http://127.0.0.1:9", "--provider", "together"], "--endpoint and --provider exclude each other"),
        (["--endpoint", "file:///etc/passwd"], "--endpoint must be an http:// or https:// URL"),
        (["--provider", "together", "--task", "image-classification"], "--provider together"),
        (["--endpoint", "http://127.0.0.1:9"], "pass --task"),
        (["--concurrency", "0"], "--concurrency must be >= 1"),
    ],
)
def test_bad_remote_options_are_one_line_errors(flags, needle, capsys, tmp_path):
    capsys.readouterr()
    code = main(["explore", "someone/not-reachable", *flags, "--output", str(tmp_path / "run"), "--no-progress"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # end to end (a served app, a subprocess or timed requests): the slow tier
@pytest.mark.parametrize(
    ("phase", "when"),
    [
        ("clean", "sending"),
        ("explore", "sending"),
        ("explore", "sent"),
        ("confirm", "sent"),
    ],
)
def test_a_ctrl_c_while_a_batch_is_in_flight_keeps_its_answers(phase, when, cased_sentiment_model, text_space, tmp_path,
                                                               monkeypatch, capsys):  # fmt: skip
    """The Ctrl-C lands while a batch's requests are in flight and nobody reads their answers yet: in the middle of
    sending the batch (its requests out, the run's bookkeeping of them not done), or once it is sent (an explorer
    still choosing, the step from the clean phase to exploring or from exploring to confirming). Those requests are
    answered and logged all the same, so the server saw exactly the requests the log holds and --resume asks only
    for the rest. The model fails under upper case, so the run confirms a region (a confirm phase to stop in)."""
    from fade_hub.testing.inference_server import PipelineBackend, serve
    from fade_hub.testing.sentiment import write_seeds

    server = serve(PipelineBackend("text-classification", cased_sentiment_model), Faults(slow_every=1, slow_s=0.05))
    seeds = str(write_seeds(tmp_path / "seeds.jsonl", 24, seed=1))
    flags = ["explore", str(cased_sentiment_model), "--seeds", seeds, "--concepts", text_space, "--algorithm", "random",
             "--budget", "40", "--random-seed", "3", "--batch-size", "8", "--confirm-top", "1", "--no-progress"]
    owner, name = (RemoteTarget, "submit") if when == "sending" else (Querier, "submit")
    phases, stopped = [], []
    monkeypatch.setattr(Querier, "submit", _noting_phase(Querier.submit, phases))
    real_submit = getattr(owner, name)

    def submit_then_ctrl_c(self, *args, **kwargs):
        asked_before = server.stats.requests
        handle = real_submit(self, *args, **kwargs)
        if not stopped and phases[-1] == phase:
            stopped.append(asked_before)
            deadline = time.monotonic() + 30
            while server.stats.in_flight < 1 and time.monotonic() < deadline:  # the batch's requests are out
                time.sleep(0.002)
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C does, before anyone reads the answers
        return handle

    try:
        monkeypatch.setattr(owner, name, submit_then_ctrl_c)
        endpoint = ["--endpoint", server.url, "--concurrency", "4", "--task", "text-classification"]
        assert main([*flags, *endpoint, "--output", str(tmp_path / "run")]) == 130
        assert "interrupted" in capsys.readouterr().err
        time.sleep(0.3)  # anything sent after the run stopped would reach the server now
        logged = RunStore(tmp_path / "run").read_queries()
        assert stopped and server.stats.requests > stopped[0]  # the batch's requests had left
        assert server.stats.requests == len(logged)  # and every answer the server gave is in the log

        monkeypatch.undo()
        assert main([*flags, *endpoint, "--output", str(tmp_path / "run"), "--resume"]) == 0
        resumed = RunStore(tmp_path / "run").read_queries()
        assert server.stats.requests == len(resumed)  # the resumed run asked only what the log was missing
    finally:
        server.stop()
    assert {row["phase"] for row in resumed} == {"clean", "explore", "confirm"}
    assert main([*flags, "--output", str(tmp_path / "reference")]) == 0
    _same_answers(resumed, RunStore(tmp_path / "reference").read_queries())


def _noting_phase(submit, phases: list[str]):
    """``Querier.submit`` that notes the phase of each batch before it is sent."""
    def noting(self, actions, seed_ids, **kwargs):
        phases.append(kwargs.get("phase", "explore"))
        return submit(self, actions, seed_ids, **kwargs)

    return noting
