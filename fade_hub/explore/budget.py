"""The model calls a run plans, announced before the first one: clean seeds, exploration and confirmation.

``announce`` logs the plan at INFO on this module's logger (``fade-hub explore`` prints it) and a
warning past ``WARN_CALLS``; it never asks for confirmation, since scripts and CI have no one to answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)

WARN_CALLS = 100_000


@dataclass(frozen=True)
class CallPlan:
    """How many queries a run will send to the model, by phase."""

    explore: int
    confirm_cells: int
    confirm_seeds: int
    clean: int = 0
    done: int = 0

    @property
    def confirm(self) -> int:
        """The most confirmation queries: each top cell on each held-out seed it gets."""
        return self.confirm_cells * self.confirm_seeds

    @property
    def total(self) -> int:
        """Every planned model call."""
        return self.clean + self.explore + self.confirm

    def describe(self) -> str:
        """One line: the total and where it goes."""
        text = (f"planned model calls: {self.total:,} = {self.clean:,} on clean seeds + {self.explore:,} exploring + "
                f"up to {self.confirm:,} confirming ({self.confirm_cells} cells x {self.confirm_seeds} held-out seeds)")
        return text + (f"; {self.done:,} already in the log are replayed, not asked again" if self.done else "")


def plan_calls(budget: int, *, confirm_top: int, confirm_seeds: int, held_out: int, clean: int = 0,
               done: int = 0) -> CallPlan:
    """The plan of a run that asks ``clean`` unperturbed seeds, explores with ``budget`` queries, then confirms
    its top cells on held-out seeds."""
    seeds = min(confirm_seeds, held_out) if confirm_top > 0 else 0
    return CallPlan(explore=budget, confirm_cells=confirm_top if seeds else 0, confirm_seeds=seeds, clean=clean,
                    done=done)


def announce(plan: CallPlan) -> None:
    """Log the plan, and warn when it is large; never prompt."""
    logger.info("%s", plan.describe())
    if plan.total > WARN_CALLS:
        logger.warning("%s model calls is more than %s: this may take hours; Ctrl-C stops the run and keeps what "
                       "it found (--resume continues), or lower --budget", f"{plan.total:,}", f"{WARN_CALLS:,}")
