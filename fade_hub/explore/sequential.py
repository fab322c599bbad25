"""The paper's microscopic mode: episodes of small moves applied cumulatively to one seed.

An episode starts at the env's neutral cell; each step moves one factor one level up or down
(``FailureEnv.move``) and queries the model there. It ends at the first failure or after
``max_steps`` steps. Its reward is the failure score minus ``step_penalty`` per step taken.
Episodes of a batch are walked in lockstep so that each step is one batched query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from .querier import Outcome, Querier, trajectory_json

# choose(episode_index_in_batch, current_cell, step) -> move
MoveChooser = Callable[[int, tuple[int, ...], int], int]


@dataclass
class Episode:
    """One sequential episode: where it went and what it earned."""

    seed_id: str
    cells: list[tuple[int, ...]]
    outcomes: list[Outcome] = field(default_factory=list)
    reward: float = 0.0

    @property
    def failed(self) -> bool:
        """Whether the episode ended on a failure."""
        return bool(self.outcomes) and self.outcomes[-1].is_failure


def walk(querier: Querier, seed_ids: Sequence[str], *, first_episode: int, choose: MoveChooser) -> list[Episode]:
    """Walk one episode per seed id in lockstep; stops early when the budget runs out."""
    env = querier.env
    episodes = [Episode(seed_id, [env.start_cell]) for seed_id in seed_ids]
    for step in range(env.max_steps):
        active = [i for i, e in enumerate(episodes) if not e.failed][: querier.left()]
        if not active:
            break
        for i in active:
            episode = episodes[i]
            episode.cells.append(env.move(episode.cells[-1], choose(i, episode.cells[-1], step)))
        outcomes = querier.query(
            [episodes[i].cells[-1] for i in active],
            [episodes[i].seed_id for i in active],
            episode=[first_episode + i for i in active],
            step=step + 1,
            trajectories=[trajectory_json(episodes[i].cells) for i in active],
        )
        for i, outcome in zip(active, outcomes):
            episodes[i].outcomes.append(outcome)
    for episode in episodes:
        last = episode.outcomes[-1].score if episode.failed else 0.0
        episode.reward = last - env.step_penalty * len(episode.outcomes)
    return episodes
