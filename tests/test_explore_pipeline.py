"""The explore pipeline against a real local endpoint: batches overlap, the concurrency holds, settings decide the queries.

The inference server is a real tiny classifier behind the routes ``InferenceClient`` calls (``conftest.served``);
it counts the requests in flight as each one arrives, so these tests check on the wire that the next batch is asked
while the last one is answered, that no more than ``--concurrency`` requests are ever in flight, and that the
concurrency changes nothing about which (cell, seed) pairs a run asks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fade_hub.cli import main
from fade_hub.perturb import ConceptSpace
from fade_hub.store import RunStore
from fade_hub.testing.http_server import Faults

TEXT_SPACE = {
    "modality": "text",
    "factors": [
        {"name": "case", "op": "case", "levels": ["none", "upper", "lower"]},
        {"name": "typos", "op": "typos", "levels": [0, 0.1, 0.3]},
    ],
}


@pytest.fixture
def text_space(tmp_path) -> str:
    path = tmp_path / "text-3x3.yaml"
    ConceptSpace.from_dict(TEXT_SPACE).to_yaml(path)
    return str(path)


def _flags(model: str, space: str, output: Path, algorithm: str, *extra: str) -> list[str]:
    return ["explore", model, "--concepts", space, "--algorithm", algorithm, "--budget", "40", "--random-seed", "5",
            "--batch-size", "8", "--confirm-top", "2", "--confirm-seeds", "2", "--num-generations", "4",
            "--queried-per-group", "2", "--output", str(output), "--no-progress", *extra]  # fmt: skip


def _asked(run: Path) -> list[tuple]:
    return sorted((r["query_id"], r["phase"], r["action_id"], r["seed_id"]) for r in RunStore(run).read_queries())


# the fast tier asks one explorer (each explorer runs in tests/test_explore.py's fast diagonal); the others are slow
@pytest.mark.parametrize("algorithm", [
    pytest.param(algorithm, marks=() if algorithm == "epsilon-greedy" else pytest.mark.slow)
    for algorithm in ("random", "epsilon-greedy", "bo", "covering", "ppo")])
def test_the_same_settings_ask_the_same_pairs_at_concurrency_1_and_8(algorithm, served, tiny_models, text_space,
                                                                       tmp_path):
    """Answers come back in another order at --concurrency 8, and explorers see them a batch late: the same settings
    still ask the same (cell, seed) pairs, under the same query ids, and confirm the same regions."""
    model = str(tiny_models("text-classification"))
    server = served("text-classification", Faults(slow_every=3, slow_s=0.05))
    runs = {}
    for concurrency in (1, 8):
        runs[concurrency] = tmp_path / f"c{concurrency}"
        before = server.stats.max_in_flight
        assert main(_flags(model, text_space, runs[concurrency], algorithm, "--endpoint", server.url,
                           "--concurrency", str(concurrency))) == 0
        assert server.stats.max_in_flight <= max(before, concurrency)
    assert server.stats.max_in_flight > 1  # the second run overlapped its requests
    assert _asked(runs[8]) == _asked(runs[1])
    assert sum(phase == "explore" for _, phase, _, _ in _asked(runs[8])) == 40


@pytest.mark.slow  # end to end (a served app, a subprocess or timed requests): the slow tier
def test_the_next_batch_is_asked_while_the_last_is_answered(served, tiny_models, text_space, tmp_path):
    """Batches of 16 at --concurrency 4 (the 4 x concurrency the endpoint target asks for), every other request slow:
    a run that waited for each batch to drain before choosing and sending the next would leave the server idle at
    every batch's end, its next request arriving alone; one batch ahead, the next batch is queued behind the last
    one's requests, so that its first request arrives beside them."""
    model = str(tiny_models("text-classification"))
    server = served("text-classification", Faults(slow_every=2, slow_s=1.5))  # slower than choosing a batch on a busy machine
    flags = _flags(model, text_space, tmp_path / "run", "random", "--endpoint", server.url, "--concurrency", "4",
                   "--batch-size", "16", "--confirm-top", "0")
    assert main(flags) == 0
    clean = sum(r["phase"] == "clean" for r in RunStore(tmp_path / "run").read_queries())
    exploring = server.stats.in_flight_seen[clean:]
    assert len(exploring) == 40 and max(exploring) == 4
    # the first request of each next batch arrives beside the last ones of the batch before it (a run that drained each
    # batch first would send it alone); a request inside a batch may arrive alone when a busy machine stalls the
    # perturbation of the batch's later inputs, which says nothing of the pipeline
    assert [exploring[start] > 1 for start in (16, 32)] == [True, True], exploring
