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
    confirm_regions: int
    confirm_seeds: int
    clean: int = 0
    done: int = 0
    references: bool = False  # prompt spaces: each held-out seed is also asked once outside the regions

    @property
    def confirm(self) -> int:
        """The most confirmation queries: each region once on each held-out seed (and one reference per seed)."""
        if not self.confirm_regions:
            return 0
        return self.confirm_regions * self.confirm_seeds + (self.confirm_seeds if self.references else 0)

    @property
    def total(self) -> int:
        """Every planned model call."""
        return self.clean + self.explore + self.confirm

    def describe(self) -> str:
        """One line: the total and where it goes."""
        text = (f"planned model calls: {self.total:,} = {self.clean:,} on clean seeds + {self.explore:,} exploring + "
                f"up to {self.confirm:,} confirming (up to {self.confirm_regions} regions x {self.confirm_seeds} "
                "held-out seeds)")
        return text + (f"; {self.done:,} already in the log are replayed, not asked again" if self.done else "")


def plan_calls(budget: int, *, confirm_top: int, held_out: int, clean: int = 0, done: int = 0,
               references: bool = False) -> CallPlan:
    """The plan of a run that asks ``clean`` unperturbed seeds, explores with ``budget`` queries, then confirms up to
    ``confirm_top`` regions on its ``held_out`` seeds."""
    return CallPlan(explore=budget, confirm_regions=confirm_top if held_out else 0, confirm_seeds=held_out,
                    clean=clean, done=done, references=references)


def announce(plan: CallPlan) -> None:
    """Log the plan, and warn when it is large; never prompt."""
    logger.info("%s", plan.describe())
    if plan.total > WARN_CALLS:
        logger.warning("%s model calls is more than %s: this may take hours; Ctrl-C stops the run and keeps what "
                       "it found (--resume continues), or lower --budget", f"{plan.total:,}", f"{WARN_CALLS:,}")
