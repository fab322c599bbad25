"""The paper's own agent as a benchmark baseline: Stable-Baselines3 ``DQN("MlpPolicy")`` with the authors' settings.

Benchmark only (never part of the package): it needs the optional extra ``pip install '.[paper]'``.
Settings as the paper's code: ``exploration_initial_eps=1.0``, ``exploration_final_eps=0.6``,
``buffer_size=10000``, everything else SB3's defaults (SB3 >= 2.3, where ``learning_starts`` is 100;
before 2.3 it was 50000 and the agent would never update within a small budget). Episodes are one
step: the observation is the raw seed image (pixels in [0, 1], flattened for the MLP), the action is one
index over the cells (row-major ``action_id``), and the reward is ``10·|log(p / (1 - p))|`` of the
predicted class on a misclassification, else -1 (the label judge's severity is exactly that figure).

Each step is one model query through fade-hub's Querier, so the run directory, its budget and its
landscape are the same as for the package's explorers.
"""

from __future__ import annotations

from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Iterator, Sequence

import numpy as np

NAME = "paper-dqn"
MIN_SB3 = (2, 3)
DQN_SETTINGS = {"exploration_initial_eps": 1.0, "exploration_final_eps": 0.6, "buffer_size": 10_000}


def unavailable() -> str | None:
    """Why the baseline cannot run here (a note for the table), or None when it can."""
    try:
        found = version("stable-baselines3")
    except PackageNotFoundError:
        return "stable-baselines3 is not installed (pip install '.[paper]')"
    if tuple(int(part) for part in found.split(".")[:2]) < MIN_SB3:
        return f"stable-baselines3 {found} is older than 2.3 (learning_starts would be 50000)"
    return None


def _pixels(image) -> np.ndarray:
    """An RGB image as float32 pixels in [0, 1], channels first, flattened."""
    return (np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).transpose(2, 0, 1).reshape(-1)


def make_env(querier, seeds: Sequence, rng_seed: int):
    """A one-step gymnasium env over the querier: observation = a seed's pixels, action = a cell index."""
    import gymnasium as gym
    from gymnasium import spaces

    space = querier.env.space
    observations = {seed.seed_id: _pixels(seed.input) for seed in seeds}
    size = len(next(iter(observations.values())))
    if any(len(o) != size for o in observations.values()):
        raise ValueError("the paper's DQN needs seed images of one size (its observation is the raw image)")

    class OneQueryEnv(gym.Env):
        observation_space = spaces.Box(0.0, 1.0, shape=(size,), dtype=np.float32)
        action_space = spaces.Discrete(space.num_cells)

        def __init__(self) -> None:
            self.seed_id = seeds[0].seed_id
            self.episode = 0
            self.rng = np.random.default_rng(rng_seed)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.seed_id = seeds[int(self.rng.integers(len(seeds)))].seed_id
            return observations[self.seed_id], {}

        def step(self, action):
            cell = space.action_from_id(int(action))
            outcome = querier.query([cell], [self.seed_id], episode=self.episode)[0]
            self.episode += 1
            reward = outcome.severity if outcome.is_failure else -1.0
            return observations[self.seed_id], float(reward), True, False, {}

    return OneQueryEnv()


def explore_paper_dqn(config, querier, seeds: Sequence, store) -> None:
    """Spend the querier's budget training the paper's DQN, one query per step."""
    from stable_baselines3 import DQN
    from stable_baselines3.common.logger import Logger

    env = make_env(querier, seeds, config.seed)
    agent = DQN("MlpPolicy", env, seed=config.seed, device="cpu", verbose=0, **DQN_SETTINGS)
    agent.set_logger(Logger(folder=None, output_formats=[]))  # SB3's default logger makes a folder in /tmp
    agent.learn(total_timesteps=querier.left())


@contextmanager
def registered() -> Iterator[None]:
    """Make ``--algorithm paper-dqn`` known to fade-hub's explorer registry for the duration of the block."""
    from fade_hub.explore.registry import EXPLORERS, ExplorerSpec

    EXPLORERS[NAME] = ExplorerSpec(NAME, f"{__name__}:explore_paper_dqn", ("single",),
                                   "the paper's SB3 DQN (benchmark only)")
    try:
        yield
    finally:
        EXPLORERS.pop(NAME, None)
