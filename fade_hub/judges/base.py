"""The judge protocol: score a batch of (seed, input, prediction) triples as failures or not."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fade_hub.errors import BadConfig
from fade_hub.targets import Prediction, Target


@dataclass
class Verdict:
    """A judge's call on one query: failure or not, how bad (>= 0), and what the right answer was."""

    is_failure: bool
    severity: float
    expected: str
    score: float | None = None


@dataclass
class JudgeConfig:
    """Which judge to use and its settings; ``kind=None`` picks the task's default."""

    kind: str | None = None
    model_id: str | None = None
    label: str | None = None
    keywords: list[str] = field(default_factory=list)
    regex: str | None = None
    threshold: float | None = None
    revision: str | None = None
    trust_remote_code: bool = False


class Judge:
    """Base class of judges: ``judge`` maps aligned seeds, inputs and predictions to verdicts."""

    name: str = "judge"

    @classmethod
    def from_config(cls, config: JudgeConfig, target: Target) -> Judge:
        """Build the judge from its config and the target it judges."""
        raise NotImplementedError

    def judge(self, seeds: Sequence[Any], inputs: Sequence[Any], predictions: Sequence[Prediction]) -> list[Verdict]:
        """One verdict per query; the three lists are aligned."""
        if not len(seeds) == len(inputs) == len(predictions):
            raise BadConfig(f"judge got {len(seeds)} seeds, {len(inputs)} inputs and {len(predictions)} predictions")
        return self._judge(list(seeds), list(inputs), list(predictions))

    def _judge(self, seeds: list, inputs: list, predictions: list[Prediction]) -> list[Verdict]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The judge's settings, for run metadata."""
        return {"name": self.name}


class CleanOutputs:
    """The target's outputs on unperturbed seed inputs, computed once per seed id (batched)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._cache: dict[str, Prediction] = {}

    def get(self, seeds: Sequence[Any]) -> list[Prediction]:
        """Clean predictions for ``seeds``, predicting only the seeds not seen before."""
        missing: dict[str, Any] = {}
        for seed in seeds:
            if seed.seed_id not in self._cache:
                missing.setdefault(seed.seed_id, seed.input)
        if missing:
            outputs = self.target.predict(list(missing.values()))
            self._cache.update(zip(missing, outputs, strict=True))
        return [self._cache[seed.seed_id] for seed in seeds]
