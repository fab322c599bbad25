"""Explorers: a trl-trained policy (``ppo``) and the ``random``, ``epsilon-greedy`` and ``grid`` baselines."""

from .config import ExploreConfig
from .registry import EXPLORERS

__all__ = ["EXPLORERS", "ExploreConfig", "explore"]


def __getattr__(name: str):
    # ``explore`` pulls in the model stack; import it only when asked for.
    if name == "explore":
        from .runner import explore

        return explore
    raise AttributeError(name)
