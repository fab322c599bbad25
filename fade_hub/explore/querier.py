"""Querier: the one door through which explorers query the model.

It enforces the budget, turns every query into a record written to the run directory as its answer arrives,
saves the media of failures, drives the progress bar, and — on ``--resume`` — serves the queries already on
disk instead of asking the model again. Explorers are deterministic given ``--seed``, so a resumed run
replays the same decisions. Each query has its id (the order the explorer asked it), but a remote model's
answers arrive, and are logged, in any order, so a log cut short holds some ids of its last batches and not
others: the querier serves every id the log holds (checking it matches what the explorer asks now) and asks
the model only for the missing ones. Nothing is lost or asked twice.

Explorers choose cells; the querier has the last word on seeds. A deterministic model asked a (cell, seed)
pair it already answered learns nothing new, so an explore query whose pair was answered (or is asked twice in
one batch) goes to an unused exploration seed of that cell instead, of the same class when one is left, in a
seeded order per cell (sampling without replacement). Only once a cell's seeds are used up does a pair repeat,
said once per cell in the log. A model that samples its answers, and sequential episodes (which walk one seed),
keep the seeds their explorer chose.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..env import CLEAN_ACTION_ID, Answered, FailureEnv, QueryResult
from ..errors import BadConfig, EndpointFailed, ResumeMismatch, RunDamaged
from ..seeds import Seed
from ..store import RunStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What an explorer learns from one query; ``fresh`` is False for a repeat of an answered (cell, seed) pair, or a
    query with no verdict, which carries no new evidence (explorers' models must not count it). ``failure`` is the
    share of the query's samples that failed (0 or 1 without sampling), ``is_failure`` whether any did, ``score``
    the mean reward of its samples."""

    seed_id: str
    action_id: int
    is_failure: bool
    severity: float
    score: float
    fresh: bool = True
    failure: float | None = None  # None: float(is_failure)
    judged: bool = True

    @property
    def failed_share(self) -> float:
        """The share of the query's judged samples that failed."""
        return float(self.is_failure) if self.failure is None else float(self.failure)


def outcome(records: Sequence[dict[str, Any]], fresh: bool = True) -> Outcome:
    """One query's outcome from the records of its samples (see the module doc)."""
    first = records[0]
    judged = [r for r in records if not r.get("unjudged")]
    if not judged:
        return Outcome(first["seed_id"], first["action_id"], False, 0.0, 0.0, fresh=False, failure=0.0, judged=False)
    failing = [r for r in judged if r["is_failure"]]
    severity = sum(float(r["severity"]) for r in failing) / len(failing) if failing else 0.0
    return Outcome(first["seed_id"], first["action_id"], bool(failing), severity,
                   sum(float(r["reward"]) for r in judged) / len(judged), fresh=fresh,
                   failure=len(failing) / len(judged))


def query_record(
    result: QueryResult, *, run_id: str, query_id: int, phase: str, episode: int, step: int, trajectory: str,
    sample: int = 0,
) -> dict[str, Any]:
    """The ``queries`` row of one query (design.md schema)."""
    record: dict[str, Any] = {
        "run_id": run_id,
        "query_id": query_id,
        "phase": phase,
        "episode": episode,
        "step": step,
        "seed_id": result.seed.seed_id,
        "context": result.seed.context,
    }
    record.update(result.levels)
    record.update(
        {
            "action_id": result.action_id,
            "input": result.input if isinstance(result.input, str) else "",
            "clean_input": result.seed.input if result.verdict.is_failure and isinstance(result.seed.input, str) else "",
            "output": result.prediction.text,
            "expected": result.verdict.expected,
            "expected_source": result.verdict.expected_source,
            "judged": bool(result.verdict.judged),
            "unjudged": bool(result.verdict.unjudged),
            "judge_reason": result.verdict.reason,
            "is_failure": bool(result.verdict.is_failure),
            "severity": float(result.verdict.severity),
            "reward": float(result.score),
            "trajectory": trajectory,
            "sample": int(sample),
            "media": "",
        }
    )
    return record


class Querier:
    """Budgeted, recorded, resumable access to a FailureEnv."""

    def __init__(
        self,
        env: FailureEnv,
        store: RunStore,
        *,
        run_id: str,
        budget: int,
        replay: Sequence[dict[str, Any]] = (),
        show_progress: bool = True,
        pool: Sequence[Seed] = (),
        random_seed: int = 0,
        samples_per_query: int = 1,
    ) -> None:
        if budget < 1:
            raise BadConfig(f"budget must be a positive number of model queries, got {budget}")
        if samples_per_query < 1:
            raise BadConfig(f"--samples-per-query must be at least 1, got {samples_per_query}")
        self.env, self.store, self.run_id, self.budget = env, store, run_id, budget
        self.samples = samples_per_query
        self.replay = replay_by_id(replay, store)
        explore_done = sum(1 for r in self.replay.values() if r["phase"] == "explore") // samples_per_query
        if explore_done > budget:
            raise ResumeMismatch(
                f"{store.root} already holds {explore_done} explore queries, more than the budget of {budget}; "
                "its log does not belong to this run: use another --output"
            )
        self.next_id = 0
        self.spent = 0
        self.failures = 0
        self.recorded = 0  # records this session appended to the log
        self.bar = tqdm(total=budget * samples_per_query, desc="exploring", unit="answer", disable=not show_progress,
                        dynamic_ncols=True)
        self.seeds = SeedChooser(pool, random_seed) if pool and env.mode == "single" else None
        self.answered: set[tuple[int, str]] = set()  # explore (cell, seed) pairs asked so far

    def left(self) -> int:
        """Explore queries still allowed by the budget."""
        return self.budget - self.spent

    def query(
        self,
        actions: Sequence[Sequence[int]],
        seed_ids: Sequence[str],
        *,
        episode: int | Sequence[int],
        step: int | Sequence[int] = 0,
        trajectories: Sequence[str] | None = None,
        phase: str = "explore",
    ) -> list[Outcome]:
        """Evaluate a batch of (cell, seed) queries; each record is durable as soon as its answer arrives."""
        count = len(actions)
        if phase == "explore" and count > self.left():
            raise BadConfig(f"explorer asked for {count} queries with only {self.left()} left in the budget")
        cells = [self.env.space.validate_action(action) for action in actions]
        action_ids = [self.env.space.action_id(cell) for cell in cells]
        if phase == "explore" and self.seeds is not None:
            seed_ids = self.seeds.choose(action_ids, seed_ids)
        fresh = self._fresh(action_ids, seed_ids) if phase == "explore" else [True] * len(action_ids)
        k = self.samples

        def evaluate(indices: list[int]) -> Iterator[Answered]:
            return self.env.evaluate_stream([cells[i // k] for i in indices], [seed_ids[i // k] for i in indices])

        records = self._record(_each(seed_ids, k), _each(action_ids, k), evaluate, phase, _each(episode, k, count),
                               _each(step, k, count), _each(trajectories, k, count), list(range(k)) * count)
        return [outcome(records[i * k : (i + 1) * k], f) for i, f in enumerate(fresh)]

    def _fresh(self, action_ids: Sequence[int], seed_ids: Sequence[str]) -> list[bool]:
        """Which explore queries ask a pair for the first time (more samples of a pair are not a new seed)."""
        flags = []
        for pair in zip(action_ids, seed_ids):
            flags.append(pair not in self.answered)
            self.answered.add(pair)
        return flags

    def exhausted(self) -> set[int]:
        """Cells whose exploration seeds have all been asked (an explorer gains nothing more there)."""
        return self.seeds.exhausted if self.seeds is not None else set()

    def query_clean(self, seed_ids: Sequence[str]) -> list[Outcome]:
        """Evaluate the unperturbed seeds (phase ``clean``): the baseline a failure mode must beat."""
        k = self.samples

        def evaluate(indices: list[int]) -> Iterator[Answered]:
            return self.env.evaluate_clean_stream([seed_ids[i // k] for i in indices])

        count = len(seed_ids)
        records = self._record(_each(seed_ids, k), [CLEAN_ACTION_ID] * count * k, evaluate, "clean",
                               [-1] * count * k, [0] * count * k, [""] * count * k, list(range(k)) * count)
        return [outcome(records[i * k : (i + 1) * k]) for i in range(count)]

    def _record(
        self,
        seed_ids: Sequence[str],
        action_ids: Sequence[int],
        evaluate: Callable[[list[int]], Iterator[Answered]],
        phase: str,
        episodes: list[int],
        steps: list[int],
        trajectories: list[str],
        samples: list[int],
    ) -> list[dict[str, Any]]:
        """Serve the batch's answers the log holds, ask the model for the rest and append each answer to the log
        as it arrives (in any order, under its query id), then update the budget and the bar; the records in order."""
        count = len(action_ids)
        first = self.next_id
        records = self._serve_replay(first, action_ids, seed_ids, phase)
        if phase == "explore":
            self.bar.update(len(records))
        fresh = [offset for offset in range(count) if offset not in records]
        if fresh:
            try:
                for group in evaluate(fresh):
                    answered = [(fresh[position], result) for position, result in group]
                    records.update(self._append(answered, first, phase, episodes, steps, trajectories, samples))
                    if phase == "explore":
                        self.bar.update(len(answered))
            except EndpointFailed as stop:  # every answer that came is in the log already
                raise EndpointFailed(
                    f"{stop}; the {len(self.replay) + self.recorded} queries answered so far are kept in "
                    f"{self.store.root}: rerun with --resume to continue"
                ) from stop
        ordered = [records[offset] for offset in range(count)]
        self.next_id += count
        if phase == "explore":
            self.spent += count // self.samples
            self.failures += sum(r["is_failure"] for r in ordered)
            answers = self.spent * self.samples
            self.bar.set_postfix(failures=self.failures, hit_rate=f"{self.failures / max(answers, 1):.1%}")
        return ordered

    def _append(
        self, answered: Sequence[tuple[int, QueryResult]], first: int, phase: str, episodes: list[int],
        steps: list[int], trajectories: list[str], samples: list[int],
    ) -> dict[int, dict[str, Any]]:  # fmt: skip
        """Turn answered queries (offset in the batch, result) into durable records; return them by offset."""
        new_records = {}
        for offset, result in answered:
            record = query_record(
                result,
                run_id=self.run_id,
                query_id=first + offset,
                phase=phase,
                episode=episodes[offset],
                step=steps[offset],
                trajectory=trajectories[offset],
                sample=samples[offset],
            )
            media = result.prediction.image if result.prediction.image is not None else result.input
            if record["is_failure"] and hasattr(media, "save"):
                record["media"] = self.store.save_image(record["query_id"], media)
            new_records[offset] = record
        self.store.append(new_records.values())
        self.recorded += len(new_records)
        return new_records

    def _serve_replay(self, first: int, action_ids, seed_ids, phase: str) -> dict[int, dict[str, Any]]:
        """The batch's queries the log already holds, by offset in the batch, each checked against the query the
        explorer asks now (the same phase, seed and cell)."""
        served = {}
        for offset, (action_id, seed_id) in enumerate(zip(action_ids, seed_ids)):
            index = first + offset
            record = self.replay.get(index)
            if record is None:
                continue
            expected = (phase, seed_id, action_id)
            if (record["phase"], record["seed_id"], record["action_id"]) != expected:
                raise ResumeMismatch(
                    f"cannot resume: query {index} on disk is {record['phase']} seed {record['seed_id']} cell "
                    f"{record['action_id']} but the explorer now asks for {expected[0]} seed {expected[1]} cell "
                    f"{expected[2]}; the run's settings changed — start a new --output"
                )
            served[offset] = record
        return served

    @property
    def repeated(self) -> int:
        """Explore queries that repeated an answered pair because their cell had no unused seed left."""
        return self.seeds.repeated if self.seeds is not None else 0

    def close(self) -> None:
        """Close the progress bar."""
        self.bar.close()


def _each(values: Any, k: int, count: int | None = None) -> list[Any]:
    """Each of ``values`` (or one value for all ``count`` queries; None: empty text) repeated for its ``k`` samples."""
    if values is None or isinstance(values, int):
        values = [values if values is not None else ""] * int(count)
    return [value for value in values for _ in range(k)]


def replay_by_id(records: Sequence[dict[str, Any]], store: RunStore) -> dict[int, dict[str, Any]]:
    """The log's records by query id; RunDamaged when an id is logged twice (two processes wrote to the run)."""
    by_id: dict[int, dict[str, Any]] = {}
    for record in records:
        query_id = int(record["query_id"])
        if query_id in by_id:
            raise RunDamaged(f"{store.queries_path} holds query {query_id} twice (two processes wrote to the run); "
                             "it cannot be resumed: start a new --output")
        by_id[query_id] = record
    return by_id


class SeedChooser:
    """Sampling without replacement per cell: an unused seed for a (cell, seed) pair already asked."""

    def __init__(self, pool: Sequence[Seed], random_seed: int) -> None:
        self.context = {seed.seed_id: seed.context for seed in pool}
        self.ids = [seed.seed_id for seed in pool]
        self.random_seed = random_seed
        self.used: dict[int, set[str]] = defaultdict(set)
        self.order: dict[int, list[str]] = {}
        self.exhausted: set[int] = set()  # cells whose seeds are all used
        self.said: set[int] = set()  # cells whose repeats the log has mentioned
        self.repeated = 0

    def _order(self, cell: int) -> list[str]:
        """The cell's seeded order of the pool (the order unused seeds are handed out in)."""
        if cell not in self.order:
            rng = np.random.default_rng([self.random_seed, 3, cell])
            self.order[cell] = [self.ids[i] for i in rng.permutation(len(self.ids))]
        return self.order[cell]

    def choose(self, action_ids: Sequence[int], seed_ids: Sequence[str]) -> list[str]:
        """The seed of each query: the explorer's, or an unused one when its pair was asked (see module doc)."""
        chosen = []
        for cell, seed_id in zip(action_ids, seed_ids):
            used = self.used[cell]
            if seed_id in used:
                seed_id = self._unused(cell, self.context.get(seed_id)) or seed_id
            used.add(seed_id)
            if len(used) >= len(self.ids):
                self.exhausted.add(cell)
            chosen.append(seed_id)
        return chosen

    def _unused(self, cell: int, context: str | None) -> str | None:
        """An unused seed of the cell, of ``context`` when one is left; None (and a log line) when all are used."""
        used = self.used[cell]
        free = [seed_id for seed_id in self._order(cell) if seed_id not in used]
        same = [seed_id for seed_id in free if self.context.get(seed_id) == context]
        if same or free:
            return (same or free)[0]
        if cell not in self.said:
            logger.info("cell %d: all %d exploration seeds asked; further queries there repeat a pair and count nothing "
                        "new", cell, len(self.ids))
            self.said.add(cell)
        self.repeated += 1
        return None


def trajectory_json(cells: Sequence[Sequence[int]]) -> str:
    """Encode a sequential trajectory (the cells visited so far) for the ``trajectory`` column."""
    return json.dumps([list(map(int, cell)) for cell in cells])
