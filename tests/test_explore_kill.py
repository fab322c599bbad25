"""`explore --endpoint` stopped at random moments, then `--resume`: no query asked twice, none lost (issue 25, items 1-2).

The inference server counts the requests it receives and keeps the body of each it answers, so these tests
check the promise on the wire: a run stopped by Ctrl-C (it waits for the requests in flight and logs their
answers) and resumed asks the server exactly as many requests as the run has queries; one killed with
SIGKILL loses only the requests in flight at that moment (and answers that arrived in the instant before),
and the resumed run asks for exactly the queries its log was missing. The expected totals come from the run's own records (an
uninterrupted reference run of the same settings), not from a formula of the budget. Two ``--resume`` on
one run: the second refuses in one line and the first finishes intact.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from fade_hub.cli import main
from fade_hub.folderlock import LOCK_FILE
from fade_hub.perturb import ConceptSpace
from fade_hub.store import RunStore
from fade_hub.testing.http_server import Faults
from fade_hub.testing.inference_server import PipelineBackend, serve

pytestmark = pytest.mark.slow

TEXT_SPACE = {
    "modality": "text",
    "factors": [
        {"name": "case", "op": "case", "levels": ["none", "upper"]},
        {"name": "typos", "op": "typos", "levels": [0, 0.3]},
    ],
}
BUDGET, CONCURRENCY = 64, 4
KEYS = ("query_id", "phase", "seed_id", "action_id", "input", "output", "expected", "is_failure")


@pytest.fixture(scope="module")
def server(tiny_models):
    """A real tiny classifier behind the routes InferenceClient calls, every answer taking at least 0.1 s."""
    running = serve(PipelineBackend("text-classification", tiny_models("text-classification")),
                    Faults(slow_every=1, slow_s=0.1))  # fmt: skip
    yield running
    running.stop()


@pytest.fixture(scope="module")
def flags(server, tiny_models, tmp_path_factory):
    """The explore flags of these runs, but the output folder."""
    space = tmp_path_factory.mktemp("kill-space") / "text-2x2.yaml"
    ConceptSpace.from_dict(TEXT_SPACE).to_yaml(space)
    return ["explore", str(tiny_models("text-classification")), "--concepts", str(space), "--algorithm", "random",
            "--budget", str(BUDGET), "--random-seed", "3", "--batch-size", "16", "--confirm-top", "2", "--confirm-seeds",
            "2", "--endpoint", server.url, "--concurrency", str(CONCURRENCY), "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def reference(server, flags, tmp_path_factory) -> Path:
    """The run nobody stopped: its records are what every stopped-and-resumed run must end with."""
    run = tmp_path_factory.mktemp("kill-reference") / "run"
    asked = server.stats.requests
    assert main([*flags, "--output", str(run)]) == 0
    assert server.stats.requests - asked == len(RunStore(run).read_queries())  # one request per query
    return run


def _rows(run: Path) -> list[tuple]:
    return [tuple(record[key] for key in KEYS) for record in RunStore(run).read_queries()]


def _settle(server) -> None:
    """Wait until the server has answered every request that reached it."""
    deadline = time.monotonic() + 60
    time.sleep(0.5)  # requests a killed client sent just before dying reach the server
    while server.stats.in_flight:
        assert time.monotonic() < deadline, "the server kept requests in flight"
        time.sleep(0.05)


def _wait_for(condition, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 180
    while not condition():
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _log_lines(run: Path) -> int:
    log = run / "logs" / "queries.jsonl"
    return log.read_bytes().count(b"\n") if log.exists() else 0


@pytest.mark.parametrize("attempt", range(3))
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_a_stopped_endpoint_run_resumes_asking_nothing_twice(how, attempt, server, flags, reference, tmp_path):
    total = len(_rows(reference))
    third = total // 3  # one stop in each third of the run: the clean phase, exploring, late
    moment = random.Random(f"{how.name}-{attempt}").randint(max(1, attempt * third), (attempt + 1) * third - 1)
    run = tmp_path / "run"
    asked_at_start, answered_at_start = server.stats.requests, len(server.stats.bodies)
    process = subprocess.Popen([sys.executable, "-m", "fade_hub.cli", *flags, "--output", str(run)],
                               cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        _wait_for(lambda: _log_lines(run) >= moment, process, f"{moment} logged queries")
        process.send_signal(how)
        code = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = process.stderr.read().decode()
    if how == signal.SIGINT:
        assert code == 130 and "interrupted" in stderr, stderr[-3000:]
    else:
        assert code == -signal.SIGKILL
    _settle(server)
    asked_before = server.stats.requests - asked_at_start
    logged = RunStore(run).read_queries()
    lost = asked_before - len(logged)  # requests sent whose answers never reached the log
    answered_before = len(server.stats.bodies)
    assert moment <= len(logged) < total
    if how == signal.SIGINT:
        assert lost == 0  # the requests in flight were answered and logged before the run stopped
    else:
        # what was in flight at the kill (at most --concurrency), and answers that reached the process in the
        # instant before it died, not yet written (a few: each is logged as soon as the main thread takes it)
        assert 0 <= lost <= 2 * CONCURRENCY

    assert main([*flags, "--output", str(run), "--resume"]) == 0
    assert _rows(run) == _rows(reference)  # nothing lost, nothing doubled, every answer the same
    assert server.stats.requests - asked_at_start == total + lost
    asked_on_resume = Counter(body["inputs"] for body in server.stats.bodies[answered_before:])
    logged_inputs = Counter(record["input"] for record in logged)
    assert asked_on_resume == Counter(row[KEYS.index("input")] for row in _rows(run)) - logged_inputs
    assert len(server.stats.bodies) - answered_at_start == total + lost


def test_a_second_resume_refuses_while_the_first_runs(server, flags, reference, tmp_path):
    """Two `explore --resume` on one run: the second stops at once with one line; the first finishes intact."""
    run = shutil.copytree(reference, tmp_path / "run")
    store = RunStore(run)
    kept = 10
    lines = store.queries_path.read_text(encoding="utf-8").splitlines(keepends=True)
    store.queries_path.write_text("".join(lines[:kept]), encoding="utf-8")
    store.update_meta(status="running")
    asked = server.stats.requests
    command = [sys.executable, "-m", "fade_hub.cli", *flags, "--output", str(run), "--resume"]
    first = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        lock = run / LOCK_FILE
        _wait_for(lambda: lock.exists() and lock.read_text().strip() == str(first.pid), first, "the first to hold it")
        second = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert first.wait(timeout=300) == 0, first.stderr.read().decode()[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 2
    assert second.stderr.splitlines() == [f"error: {run} is in use by another fade-hub process (pid {first.pid}); "
                                          "wait until it ends, or use another --output"]
    assert _rows(run) == _rows(reference) and store.read_meta()["status"] == "finished"
    assert server.stats.requests - asked == len(_rows(reference)) - kept  # the first asked only what was missing
    assert not (run / LOCK_FILE).exists()
