"""The judge protocol: score a batch of (seed, input, prediction) triples as failures or not, each against its
cell's expectation (``fade_hub.perturb.expect``): a cell that is not judged gets a verdict saying so, and a judge
that cannot state the right answer under a label-changing (directional) op refuses such a space at start-up.

A verdict is a pass, a failure, or no verdict at all (``judged`` False): in a cell whose ops leave no automatic
expectation, or when the judge was asked and gave no readable answer (``unjudged``, an LLM judge's reply that did
not parse twice). An answer without a verdict counts as neither a pass nor a failure anywhere."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fade_hub.config.target import RemoteOptions, TargetOptions
from fade_hub.errors import BadConfig
from fade_hub.perturb.expect import CLEAN, Expectation, FactorExpectation
from fade_hub.targets import Prediction, Target


@dataclass
class Verdict:
    """A judge's call on one query: failure or not, how bad (>= 0), and what the right answer was."""

    is_failure: bool
    severity: float
    expected: str
    score: float | None = None
    expected_source: str = ""  # where the right answer came from, e.g. "seed label, flipped by negate"
    judged: bool = True  # False in cells whose ops leave no automatic expectation, and when ``unjudged``
    reason: str = ""  # why the judge decided so, in its words (LLM judges)
    unjudged: bool = False  # the judge was asked but gave no readable verdict (``judged`` is False too)


@dataclass
class JudgeConfig:
    """Which judge to use and its settings; ``kind=None`` picks the task's default."""

    kind: str | None = None
    model_id: str | None = None
    label: str | None = None
    keywords: list[str] = field(default_factory=list)
    regex: str | None = None
    threshold: float | None = None
    llm: str | None = None  # LLM judge: a chat model id (local, or the model a provider or endpoint serves)
    rubric: str | None = None  # a built-in rubric name or a YAML file (None: the task's default)
    # how a judge model of its own is loaded, as a model under test is: its revision, its device (a local LLM
    # judge's), whether its own code may run
    loading: TargetOptions = field(default_factory=TargetOptions)
    # an LLM judge served elsewhere: its endpoint URL or Inference Provider, the token sent to the endpoint only,
    # requests in flight, retries and seconds per answer (the options a served model has)
    served: RemoteOptions = field(default_factory=RemoteOptions)


class Judge:
    """Base class of judges: ``judge`` maps aligned seeds, inputs and predictions to verdicts."""

    name: str = "judge"
    honours_directional: bool = False  # whether the judge can state the right answer under a label-changing op
    quality_metric: str | None = None  # what the verdict's score measures when it is a quality (higher is better)

    @classmethod
    def from_config(cls, config: JudgeConfig, target: Target) -> Judge:
        """Build the judge from its config and the target it judges (judges built from other parts override this)."""
        return cls(config, target)

    def check_expectations(self, factors: dict[str, FactorExpectation]) -> None:
        """BadConfig, before any query, when the space has a label-changing factor this judge cannot honour."""
        directional = [name for name, expectation in factors.items() if expectation.kind == "directional"]
        if directional and not self.honours_directional:
            raise BadConfig(
                f"factor {directional[0]} changes the right answer (a directional op), which the {self.name} judge "
                f"cannot state; drop it, or set expect: invariant or expect: unjudgeable on it in the space YAML"
            )

    def judge(
        self,
        seeds: Sequence[Any],
        inputs: Sequence[Any],
        predictions: Sequence[Prediction],
        expectations: Sequence[Expectation] | None = None,
    ) -> list[Verdict]:
        """One verdict per query; the lists are aligned (no expectations: every query is a clean one)."""
        expectations = list(expectations) if expectations is not None else [CLEAN] * len(seeds)
        if not len(seeds) == len(inputs) == len(predictions) == len(expectations):
            raise BadConfig(f"judge got {len(seeds)} seeds, {len(inputs)} inputs and {len(predictions)} predictions")
        judged = [i for i, expectation in enumerate(expectations) if expectation.judged]
        verdicts: list[Verdict | None] = [None] * len(seeds)
        if judged:
            found = self._judge(*([items[i] for i in judged] for items in (seeds, inputs, predictions, expectations)))
            for i, verdict in zip(judged, found, strict=True):
                verdicts[i] = verdict
        for i, expectation in enumerate(expectations):
            if verdicts[i] is None:
                reason = expectation.describe("")
                verdicts[i] = Verdict(False, 0.0, "not judged", expected_source=reason, judged=False)
        return verdicts  # type: ignore[return-value]

    def _judge(
        self, seeds: list, inputs: list, predictions: list[Prediction], expectations: list[Expectation]
    ) -> list[Verdict]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The judge's settings, for run metadata."""
        return {"name": self.name}

    def take_usage(self) -> dict[str, int]:
        """What judging cost since the last call (requests, cache hits, ...); nothing for judges that ask no one."""
        return {}

    def close(self) -> None:
        """Release what the judge holds besides its weights (an HTTP client); nothing by default."""


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
