"""The ``ppo`` explorer: a policy over the concept space trained with trl's GRPOTrainer on model queries.

The policy is conditioned on the seed's context (its class or template) when there are few enough
distinct contexts to give each a token. Each group of ``num_generations`` completions of one prompt
is evaluated on the same seed input, so the group-relative advantage compares cells, not seeds.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from ..seeds import Seed
from ..store import RunStore
from .config import ExploreConfig
from .coverage import CoverageReward
from .grpo import GRPOSearchConfig, run_grpo
from .belief import Belief
from .policy import build_policy
from .region_reward import RegionReward
from .querier import Outcome, Querier
from .sequential import walk

# More distinct contexts than this and the policy is not conditioned on them.
MAX_CONTEXTS = 64
# Up to this many, the coverage reward's failure model learns each context's modes too.
MAX_MODEL_CONTEXTS = 8


class SeedAssigner:
    """Picks the seed of each completion: round-robin within its context, one seed per group."""

    def __init__(self, seeds: Sequence[Seed], conditioned: bool, group: int) -> None:
        self.by_context: dict[str | None, list[str]] = defaultdict(list)
        for seed in seeds:
            self.by_context[seed.context if conditioned else None].append(seed.seed_id)
        self.turn: dict[str | None, int] = defaultdict(int)
        self.group = group

    def assign(self, contexts: Sequence[str | None]) -> list[str]:
        """Seed ids for a batch of completions; consecutive same-context completions share a seed per group."""
        seed_ids: list[str] = []
        run_start = 0
        for i, context in enumerate(contexts):
            if i > run_start and context != contexts[i - 1]:
                run_start = i
            if (i - run_start) % self.group == 0:
                pool = self.by_context[context]
                current = pool[self.turn[context] % len(pool)]
                self.turn[context] += 1
            seed_ids.append(current)
        return seed_ids


def run_ppo(querier: Querier, seeds: Sequence[Seed], config: ExploreConfig, folder: Path) -> np.ndarray | None:
    """Explore with the GRPO-trained policy; return its probability of every cell (single mode)."""
    env = querier.env
    distinct = sorted({seed.context for seed in seeds if seed.context})
    conditioned = 0 < len(distinct) <= MAX_CONTEXTS and all(seed.context for seed in seeds)
    contexts = distinct if conditioned else []
    policy = build_policy(
        env.space.shape, contexts, Path(folder), mode=env.mode, max_steps=env.max_steps, seed=config.seed
    )
    search = GRPOSearchConfig(ppo=config.ppo)
    model_based = config.ppo_reward == "regions" and env.mode == "single"
    assigner = SeedAssigner(seeds, conditioned, search.queried(model_based))
    coverage = CoverageReward(env.space.shape, config.novelty_bonus, config.coverage_power, config.entropy_coef,
                              progress=lambda: querier.spent / querier.budget,
                              contexts=len(contexts) if len(contexts) <= MAX_MODEL_CONTEXTS else 1,
                              growth=config.coverage_growth, optimism=config.coverage_optimism,
                              quiet_window=config.coverage_quiet_window)
    context_index = {c: i for i, c in enumerate(contexts if len(contexts) <= MAX_MODEL_CONTEXTS else [])}
    regions = RegionReward(Belief(env.space, seeds), power=config.coverage_power, entropy_coef=config.entropy_coef,
                           progress=lambda: querier.spent / querier.budget, start=config.boundary_weight_start,
                           end=config.boundary_weight_end)
    episode = 0

    def evaluate(actions: list, batch_contexts: list) -> list[float]:
        nonlocal episode
        seed_ids = assigner.assign(batch_contexts)
        first, episode = episode, episode + len(actions)
        if env.mode == "single":
            outcomes = querier.query(actions, seed_ids, episode=list(range(first, first + len(actions))))
            if config.ppo_reward == "failures":
                return failure_rewards(outcomes)
            if config.ppo_reward == "regions":
                return regions(outcomes, querier.exhausted())
            return coverage(outcomes, [context_index.get(c, 0) for c in batch_contexts], querier.exhausted())
        moves = [[2 * factor + (0 if direction > 0 else 1) for factor, direction in action] for action in actions]
        episodes = walk(querier, seed_ids, first_episode=first, choose=lambda i, cell, t: moves[i][t])
        return [e.reward for e in episodes]

    def imagine(actions: list, batch_contexts: list) -> list[float]:
        cells = [env.space.action_id(action) for action in actions]
        return regions.imagined(cells, batch_contexts, querier.exhausted())

    run_grpo(policy, contexts or [None], evaluate, querier.left, search, config.seed, Path(folder) / "trainer",
             imagine=imagine if model_based else None)
    if env.mode != "single":
        return None
    return policy.cell_probs(None)


def failure_rewards(outcomes: Sequence[Outcome]) -> list[float]:
    """The ``failures`` reward of each query; a query with no verdict gets the batch's mean reward, which moves the
    group-relative advantage neither way (it is neither a pass nor a failure)."""
    judged = [o.score for o in outcomes if o.judged]
    neutral = sum(judged) / len(judged) if judged else 0.0
    return [o.score if o.judged else neutral for o in outcomes]


def explore_ppo(config: ExploreConfig, querier: Querier, seeds: Sequence[Seed], store: RunStore) -> np.ndarray | None:
    """The ``ppo`` explorer: train the policy, store its cell probabilities (single mode) and return them."""
    probs = run_ppo(querier, seeds, config, store.root / ".policy")
    if probs is not None:  # sequential policies emit moves, not cells: no per-cell distribution
        store.write_policy([float(p) for p in probs])
    return probs
