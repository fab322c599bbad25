"""Querier: the one door through which explorers query the model.

It enforces the budget, turns every query into a record written to the run directory as its answer arrives
(fsync'ed in groups, and in the background once a batch is settled: see ``fade_hub.store``), saves the media of
failures, drives the progress bar, and — on ``--resume`` — serves the queries already on disk instead of asking the model again. Explorers are deterministic given ``--random-seed``, so a resumed run
replays the same decisions. Each query has its id (the order the explorer asked it), but a remote model's
answers arrive, and are logged, in any order, so a log cut short holds some ids of its last batches and not
others: the querier serves every id the log holds (checking it matches what the explorer asks now) and asks
the model only for the missing ones. Nothing is lost or asked twice.

``submit`` starts a batch and ``collect`` waits for its outcomes, logging whatever answers of any submitted batch
arrive meanwhile; ``query`` is both. Query ids, seeds and the budget are settled at ``submit``, in the order batches
are submitted, so a run's queries do not depend on the order its answers arrive in. ``Pipeline`` keeps an
explorer one batch ahead: the model answers the next batch while the explorer reads the last one.

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
from collections.abc import Sequence
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..env import CLEAN_ACTION_ID, Answered, FailureEnv, QueryResult
from ..errors import BadConfig, EndpointFailed, ResumeMismatch, RunDamaged
from ..interrupts import interrupt_deferred
from ..seeds import Seed
from ..store import RunStore
from .convergence import Convergence

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


@dataclass
class Ticket:
    """A submitted batch: its first query id, phase, seeds, cells, which queries are fresh, what each record notes,
    the records it has so far (by offset), and the offsets the model was asked (the rest came from the log). With k
    samples per query, every per-record list holds each query k times (offset = query * k + sample); ``fresh`` is
    per query."""

    first: int
    phase: str
    seed_ids: list[str]
    action_ids: list[int]
    fresh: list[bool]
    episodes: list[int]
    steps: list[int]
    trajectories: list[str]
    samples: list[int]
    records: dict[int, dict[str, Any]] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)
    asked: Any = None
    outcomes: list[Outcome] = field(default_factory=list)


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
        stop: Convergence | None = None,
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
        self.stop = stop  # --stop-when-converged: fed the clean and explore records as they are served
        self.open: deque[Ticket] = deque()  # submitted batches not collected yet, in the order submitted
        self.flying: dict[int, Ticket] = {}  # batches with answers still to come, by id of the env's batch

    def left(self) -> int:
        """Explore queries still allowed: the budget's, or none once ``stop`` says the search converged."""
        return 0 if self.stop is not None and self.stop.converged() else self.budget - self.spent

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
        return self.collect(self.submit(actions, seed_ids, episode=episode, step=step, trajectories=trajectories,
                                        phase=phase))

    def submit(
        self,
        actions: Sequence[Sequence[int]],
        seed_ids: Sequence[str],
        *,
        episode: int | Sequence[int],
        step: int | Sequence[int] = 0,
        trajectories: Sequence[str] | None = None,
        phase: str = "explore",
    ) -> Ticket:
        """Start a batch of queries without waiting for its answers (``collect`` them): its query ids, seeds and
        budget are settled now, in the order batches are submitted, whatever order the answers come in."""
        count = len(actions)
        if phase == "explore" and count > self.budget - self.spent:
            raise BadConfig(f"explorer asked for {count} queries with only {self.left()} left in the budget")
        if phase == "clean":
            cells, action_ids = [()] * count, [CLEAN_ACTION_ID] * count
        else:
            cells = [self.env.space.validate_action(action) for action in actions]
            action_ids = [self.env.space.action_id(cell) for cell in cells]
        if phase == "explore" and self.seeds is not None:
            seed_ids = self.seeds.choose(action_ids, seed_ids)
        fresh = self._fresh(action_ids, seed_ids) if phase == "explore" else [True] * count
        k = self.samples  # each query is asked k times (a sampling model's answers), one record per sample

        def each(values: Sequence[Any]) -> list[Any]:
            return [value for value in values for _ in range(k)]

        ticket = Ticket(self.next_id, phase, each(seed_ids), each(action_ids), fresh,
                        each([episode] * count if isinstance(episode, int) else episode),
                        each([step] * count if isinstance(step, int) else step),
                        each(trajectories if trajectories is not None else [""] * count), list(range(k)) * count)
        ticket.records = self._serve_replay(ticket.first, ticket.action_ids, ticket.seed_ids, phase)
        if phase == "explore":
            self.bar.update(len(ticket.records))
            self.spent += count
        ticket.missing = [offset for offset in range(count * k) if offset not in ticket.records]
        with interrupt_deferred():  # a Ctrl-C finds the requests started here registered, so their answers are kept
            if ticket.missing:
                if phase == "clean":
                    ticket.asked = self.env.submit_clean([ticket.seed_ids[i] for i in ticket.missing])
                else:
                    ticket.asked = self.env.submit([cells[i // k] for i in ticket.missing],
                                                   [ticket.seed_ids[i] for i in ticket.missing])
                self.flying[id(ticket.asked)] = ticket
            self.next_id += count * k
            self.open.append(ticket)
        return ticket

    def collect(self, ticket: Ticket) -> list[Outcome]:
        """The outcomes of a submitted batch, in the order asked, once all its answers are in the log; the answers of
        other batches that arrive meanwhile are logged too."""
        waiting = [t for t in self.open if t.first <= ticket.first]  # earlier batches are settled first
        stopping = True  # until every answer awaited came: the records go to the disk before the run stops
        try:
            with self.env.target.interruptible() as interrupted:
                while not interrupted and any(len(t.records) < len(t.action_ids) for t in waiting):
                    groups = self.env.next_answers()
                    if not groups and interrupted:  # Ctrl-C halted what was submitted while we waited
                        break
                    if not groups:
                        raise RuntimeError("the target answered fewer queries than were submitted")
                    self._log(groups)
                while interrupted and (groups := self.env.next_answers()):  # what is in flight is answered and logged
                    self._log(groups)
            stopping = bool(interrupted)
        except EndpointFailed as stop:  # every answer that came is in the log already
            raise EndpointFailed(
                f"{stop}; the {len(self.replay) + self.recorded} queries answered so far are kept in "
                f"{self.store.root}: rerun with --resume to continue"
            ) from stop
        finally:
            if stopping:
                self.store.sync()
            else:  # settled: the batch's records (and those of later batches that came) go to the disk meanwhile
                self.store.sync_soon()
        if interrupted:
            raise KeyboardInterrupt
        while self.open and self.open[0].first <= ticket.first:  # settled in the order submitted
            self._settle(self.open.popleft())
        return ticket.outcomes

    def keep_in_flight(self) -> None:
        """After a Ctrl-C outside ``collect`` (an explorer choosing while its next batch is asked): send nothing more
        and log the answers of the requests in flight, so that ``--resume`` asks none of them again."""
        self.env.target.halt()
        with self.env.target.interruptible():
            while groups := self.env.next_answers():
                self._log(groups)
        self.store.sync()

    def _log(self, groups: list[tuple[Any, Answered]]) -> None:
        """Append the answers that came to the log, each under its query id, and move the bar."""
        for asked, answered in groups:
            ticket = self.flying[id(asked)]
            found = [(ticket.missing[position], result) for position, result in answered]
            ticket.records.update(self._append(found, ticket))
            if ticket.phase == "explore":
                self.bar.update(len(found))
            if asked.complete:
                del self.flying[id(asked)]

    def _settle(self, ticket: Ticket) -> None:
        """Work out a complete batch's outcomes (in the order asked, one per query from its samples' records); feed
        the hit-rate count and the convergence rule."""
        k = self.samples
        ordered = [ticket.records[offset] for offset in range(len(ticket.action_ids))]
        if self.stop is not None and ticket.phase in ("clean", "explore"):
            self.stop.add(ordered)
        if ticket.phase == "explore":
            self.failures += sum(r["is_failure"] for r in ordered)
            answers = self.spent * k
            self.bar.set_postfix(failures=self.failures, hit_rate=f"{self.failures / max(answers, 1):.1%}")
        ticket.outcomes = [outcome(ordered[i * k: (i + 1) * k], fresh) for i, fresh in enumerate(ticket.fresh)]

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
        return self.query([()] * len(seed_ids), seed_ids, episode=-1, phase="clean")

    def _append(self, answered: Sequence[tuple[int, QueryResult]], ticket: Ticket) -> dict[int, dict[str, Any]]:
        """Turn answered queries (offset in the batch, result) into durable records; return them by offset."""
        new_records = {}
        for offset, result in answered:
            record = query_record(
                result,
                run_id=self.run_id,
                query_id=ticket.first + offset,
                phase=ticket.phase,
                episode=ticket.episodes[offset],
                step=ticket.steps[offset],
                trajectory=ticket.trajectories[offset],
                sample=ticket.samples[offset],
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


class Pipeline:
    """An explorer's batches one ahead: each batch is submitted before the outcomes of the one before are read, so
    that the model works on it while the explorer updates its state. A choice therefore sees every outcome but those
    of the batch still in flight, whatever the concurrency: the same settings ask the same queries."""

    def __init__(self, querier: Querier) -> None:
        self.querier = querier
        self.pending: Ticket | None = None

    def send(self, actions: Sequence[Sequence[int]], seed_ids: Sequence[str], *, episode: Sequence[int]) -> list[Outcome]:
        """Submit a batch of explore queries; return the outcomes of the batch sent before it ([] for the first)."""
        ticket = self.querier.submit(actions, seed_ids, episode=episode)
        previous, self.pending = self.pending, ticket
        return self.querier.collect(previous) if previous is not None else []

    def drain(self) -> list[Outcome]:
        """The outcomes of the batch still in flight ([] when none is)."""
        previous, self.pending = self.pending, None
        return self.querier.collect(previous) if previous is not None else []


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
