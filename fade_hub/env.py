"""FailureEnv: a model under test, its seeds, a concept space and a judge, as a gymnasium environment.

Two modes, as in the paper:

* ``single`` (macroscopic): an episode is one step. ``reset`` draws a seed; the action is one
  level index per factor (``spaces.MultiDiscrete(space.shape)``); ``step`` perturbs the seed to that
  cell, queries the model, judges the answer and ends the episode.
* ``sequential`` (microscopic): ``reset`` draws a seed and starts at the space's neutral cell; each
  action is a move ``Discrete(2 * n_factors)`` — action ``2*f`` steps factor ``f`` one level up,
  ``2*f + 1`` one level down (clamped at the ends) — applied cumulatively; every step queries the
  model, and the episode terminates at the first failure and is truncated after ``max_steps``.

Observation (both modes): ``{"seed": index of the seed in env.seeds, "cell": level index per factor}``.
Reward: ``failure_score(verdict)`` = 1 for a failure plus ``severity_weight * severity``; in
sequential mode ``step_penalty`` (α) is subtracted for every step taken.

Explorers do not step one query at a time: they call :meth:`FailureEnv.evaluate` with a batch of
(action, seed) pairs, which perturbs, predicts in batches and judges in one go; :meth:`FailureEnv.evaluate_stream`
judges each group of answers as it arrives instead (a remote model answers one request at a time). The querier
goes one step further: :meth:`FailureEnv.submit` starts a batch without waiting (a remote model's inputs are
perturbed in the dispatcher's worker thread as its requests leave) and :meth:`FailureEnv.next_answers` hands over
the judged answers of every submitted batch as they arrive, so that the next batch is asked while the last one is
answered and every answer is recorded at once. Each query is judged against its cell's expectation
(``fade_hub.perturb.expect``), resolved once against the model's labels; the judge refuses a space it cannot
honour when the env is built, before any query. :meth:`FailureEnv.evaluate_clean` judges the unperturbed seeds:
the clean failure rate a failure mode must beat.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from collections.abc import Iterator
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .errors import BadConfig
from .judges import Judge, Verdict
from .perturb import ConceptSpace
from .perturb.expect import CLEAN, Expectation, cell_expectation, resolve
from .seeds import Seed
from .targets import Prediction, Target
from .targets.dispatch import LazyItems

MODES = ("single", "sequential")
CLEAN_ACTION_ID = -1  # the action id recorded for a query on the unperturbed seed


@dataclass
class QueryResult:
    """One model query: the seed, the cell, what went in, what came out and the judge's verdict."""

    seed: Seed
    action: tuple[int, ...]
    action_id: int
    levels: dict[str, str]
    input: Any
    prediction: Prediction
    verdict: Verdict
    score: float


Answered = list[tuple[int, QueryResult]]  # a group of judged answers, each with its position in the batch asked


@dataclass
class Asked:
    """A submitted batch of queries: its seeds, cells, action ids and (lazily perturbed) inputs, the target's handle
    of it and how many of its answers came."""

    seeds: list[Seed]
    cells: list
    action_ids: list[int]
    inputs: Sequence
    handle: Any = None
    answered: int = 0

    @property
    def complete(self) -> bool:
        """Whether every query of the batch was answered."""
        return self.answered >= len(self.seeds)


def in_order(groups: Iterator[Answered], count: int) -> list[QueryResult]:
    """The results of a streamed batch of ``count`` queries, in the order they were asked."""
    results: list[Any] = [None] * count
    for group in groups:
        for index, result in group:
            results[index] = result
    return results


def perturbation_seed(env_seed: int, seed_id: str, action_id: int) -> int:
    """Deterministic RNG seed for perturbing one seed into one cell (stable across processes)."""
    digest = hashlib.sha256(f"{env_seed}|{seed_id}|{action_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


class FailureEnv(gym.Env):
    """A gymnasium environment whose steps are perturbed queries to a model, scored by a judge."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        target: Target,
        judge: Judge,
        space: ConceptSpace,
        seeds: Sequence[Seed],
        *,
        mode: str = "single",
        max_steps: int = 8,
        step_penalty: float = 0.05,
        severity_weight: float = 0.0,
        seed: int = 0,
        label_aliases: dict[str, list[str]] | None = None,
    ) -> None:
        if mode not in MODES:
            raise BadConfig(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        if not seeds:
            raise BadConfig("FailureEnv needs at least one seed input")
        if space.modality != target.modality:
            raise BadConfig(
                f"space {space.name or ''!s} is for {space.modality} inputs but the {target.task} model takes "
                f"{target.modality} inputs; pass a {target.modality} space with --concepts"
            )
        if max_steps < 1:
            raise BadConfig(f"max_steps must be >= 1, got {max_steps}")
        self.target, self.judge, self.space = target, judge, space
        labels = [target.id2label[i] for i in sorted(target.id2label)] if target.id2label else None
        self.factor_expectations = resolve(space, labels, label_aliases)
        judge.check_expectations(self.factor_expectations)
        self._cell_expectations: dict[int, Expectation] = {}
        self.seeds = list(seeds)
        self.seed_by_id = {seed.seed_id: seed for seed in self.seeds}
        self.mode, self.max_steps = mode, max_steps
        self.step_penalty, self.severity_weight = step_penalty, severity_weight
        self.base_seed = seed
        shape = np.array(space.shape, dtype=np.int64)
        self.observation_space = spaces.Dict(
            {"seed": spaces.Discrete(len(self.seeds)), "cell": spaces.MultiDiscrete(shape)}
        )
        if mode == "single":
            self.action_space = spaces.MultiDiscrete(shape, seed=seed)
        else:
            self.action_space = spaces.Discrete(2 * len(space.factors), seed=seed)
        self.start_cell = self.neutral_cell()
        self._seed_index = 0
        self._cell = self.start_cell
        self._steps = 0
        self._asked: dict[int, Asked] = {}  # submitted batches not fully answered, by id of their target handle

    def neutral_cell(self) -> tuple[int, ...]:
        """The cell where sequential episodes start: every factor at its no-op level, else level 0."""
        neutral = self.space.neutral_action()
        return tuple(neutral) if neutral is not None else tuple(0 for _ in self.space.shape)

    def failure_score(self, verdict: Verdict) -> float:
        """Reward for one judged query before any step penalty."""
        if not verdict.is_failure:
            return 0.0
        return 1.0 + self.severity_weight * float(verdict.severity)

    def move(self, cell: Sequence[int], move: int) -> tuple[int, ...]:
        """Apply one sequential move to a cell, clamped to the grid."""
        factor, direction = divmod(int(move), 2)
        if not 0 <= factor < len(self.space.shape):
            raise BadConfig(f"move {move} out of range for {len(self.space.shape)} factors")
        new = list(cell)
        new[factor] = min(max(new[factor] + (1 if direction == 0 else -1), 0), self.space.shape[factor] - 1)
        return tuple(new)

    def expectation(self, action_id: int) -> Expectation:
        """What a cell does to the right answer (the clean expectation for ``CLEAN_ACTION_ID``)."""
        if action_id == CLEAN_ACTION_ID:
            return CLEAN
        if action_id not in self._cell_expectations:
            self._cell_expectations[action_id] = cell_expectation(
                self.space, self.space.action_from_id(action_id), self.factor_expectations
            )
        return self._cell_expectations[action_id]

    def _seed(self, seed_id: str) -> Seed:
        if seed_id not in self.seed_by_id:
            raise BadConfig(f"unknown seed id {seed_id!r}")
        return self.seed_by_id[seed_id]

    def evaluate(self, actions: Sequence[Sequence[int]], seed_ids: Sequence[str]) -> list[QueryResult]:
        """Perturb each seed to its cell, query the model in batches and judge every answer."""
        return in_order(self.evaluate_stream(actions, seed_ids), len(actions))

    def evaluate_stream(self, actions: Sequence[Sequence[int]], seed_ids: Sequence[str]) -> Iterator[Answered]:
        """``evaluate``, each answer judged as it comes: groups of ``(position, result)`` in the model's order."""
        return self._stream(self.submit(actions, seed_ids))

    def evaluate_clean(self, seed_ids: Sequence[str]) -> list[QueryResult]:
        """Query the model on the unperturbed seeds and judge the answers (action id ``CLEAN_ACTION_ID``)."""
        return in_order(self.evaluate_clean_stream(seed_ids), len(seed_ids))

    def evaluate_clean_stream(self, seed_ids: Sequence[str]) -> Iterator[Answered]:
        """``evaluate_clean``, each answer judged as it comes: groups of ``(position, result)``."""
        return self._stream(self.submit_clean(seed_ids))

    def submit(self, actions: Sequence[Sequence[int]], seed_ids: Sequence[str]) -> Asked:
        """Start a batch of (action, seed) queries without waiting: each seed is perturbed to its cell when the
        target takes it (a remote target in its worker thread, while earlier requests are in flight); the judged
        answers come out of :meth:`next_answers`."""
        if len(actions) != len(seed_ids):
            raise BadConfig(f"evaluate got {len(actions)} actions but {len(seed_ids)} seed ids")
        seeds = [self._seed(seed_id) for seed_id in seed_ids]
        cells = [self.space.validate_action(action) for action in actions]
        action_ids = [self.space.action_id(cell) for cell in cells]

        def perturb(index: int) -> Any:
            seed = seeds[index]
            return self.space.apply(seed.input, cells[index],
                                    seed=perturbation_seed(self.base_seed, seed.seed_id, action_ids[index]))

        return self._submit(seeds, cells, action_ids, LazyItems(len(seeds), perturb))

    def submit_clean(self, seed_ids: Sequence[str]) -> Asked:
        """:meth:`submit` for the unperturbed seeds (action id ``CLEAN_ACTION_ID``)."""
        seeds = [self._seed(seed_id) for seed_id in seed_ids]
        inputs = LazyItems(len(seeds), lambda index: self.space.coerce(seeds[index].input))
        return self._submit(seeds, [()] * len(seeds), [CLEAN_ACTION_ID] * len(seeds), inputs)

    def _submit(self, seeds: list[Seed], cells: list, action_ids: list[int], inputs: LazyItems) -> Asked:
        asked = Asked(seeds, cells, action_ids, inputs)
        if len(seeds):
            asked.handle = self.target.submit(inputs)
            self._asked[id(asked.handle)] = asked
        return asked

    def next_answers(self) -> list[tuple[Asked, Answered]]:
        """Judged answers of submitted batches as they arrive: each batch with its ``(position, result)`` pairs; []
        once nothing submitted is left to answer."""
        by_batch: dict[int, list[tuple[int, Prediction]]] = {}
        for handle, index, prediction in self.target.next_answers():
            by_batch.setdefault(id(handle), []).append((index, prediction))
        out = []
        for key, group in by_batch.items():
            asked = self._asked[key]
            picked = [index for index, _ in group]
            results = self._judged([asked.seeds[i] for i in picked], [asked.cells[i] for i in picked],
                                   [asked.action_ids[i] for i in picked], [asked.inputs[i] for i in picked],
                                   [prediction for _, prediction in group])
            asked.answered += len(group)
            if asked.complete:
                del self._asked[key]
            out.append((asked, list(zip(picked, results))))
        return out

    def _stream(self, asked: Asked) -> Iterator[Answered]:
        """The judged answers of one submitted batch, group by group (nothing else may be submitted meanwhile)."""
        with self.target.interruptible() as interrupted:
            while not asked.complete:
                groups = self.next_answers()
                if not groups:
                    break
                for _, answered in groups:
                    yield answered
        if interrupted:
            raise KeyboardInterrupt

    def _judged(self, seeds: list[Seed], cells: list, action_ids: list[int], inputs: list,
                predictions: list[Prediction]) -> list[QueryResult]:  # fmt: skip
        """Judge the predictions of these queries and bundle everything per query."""
        expectations = [self.expectation(action_id) for action_id in action_ids]
        verdicts = self.judge.judge(seeds, inputs, predictions, expectations)
        return [
            QueryResult(
                seed=seed,
                action=cell,
                action_id=action_id,
                levels=self.space.level_strings(cell) if cell else {f.name: "" for f in self.space.factors},
                input=item,
                prediction=prediction,
                verdict=verdict,
                score=self.failure_score(verdict),
            )
            for seed, cell, action_id, item, prediction, verdict in zip(
                seeds, cells, action_ids, inputs, predictions, verdicts
            )
        ]

    # gymnasium API -----------------------------------------------------------------------------

    def _observation(self) -> dict[str, Any]:
        return {"seed": self._seed_index, "cell": np.array(self._cell, dtype=np.int64)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode on a seed input drawn by the env's RNG (or ``options["seed_index"]``)."""
        super().reset(seed=seed)
        options = options or {}
        self._seed_index = int(options.get("seed_index", self.np_random.integers(len(self.seeds))))
        self._cell = self.start_cell
        self._steps = 0
        return self._observation(), {"seed_id": self.seeds[self._seed_index].seed_id}

    def step(self, action):
        """Query the model once: at cell ``action`` (single) or after one move (sequential)."""
        if self.mode == "single":
            self._cell = tuple(int(a) for a in np.asarray(action).reshape(-1))
        else:
            self._cell = self.move(self._cell, int(np.asarray(action).reshape(-1)[0]))
        self._steps += 1
        seed = self.seeds[self._seed_index]
        result = self.evaluate([self._cell], [seed.seed_id])[0]
        reward = result.score
        terminated = self.mode == "single" or result.verdict.is_failure
        truncated = not terminated and self._steps >= self.max_steps
        if self.mode == "sequential":
            reward -= self.step_penalty
        info = {
            "seed_id": seed.seed_id,
            "action_id": result.action_id,
            "levels": result.levels,
            "output": result.prediction.text,
            "is_failure": result.verdict.is_failure,
            "severity": result.verdict.severity,
        }
        return self._observation(), float(reward), terminated, truncated, info
