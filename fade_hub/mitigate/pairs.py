"""The (prompt, image) pairs a text-to-image LoRA trains on, found with the run's own pipeline and judge.

For every training template and targeted cell, the *fix prompt* is the template filled at that cell. Its image is
the pipeline's own image of a *clean version* of the prompt: the same template at an untargeted cell, the nearest
first (fewest factors changed), of which at most ``CANDIDATES`` are tried. A clean version counts when the run's
judge passes its image both for its own prompt and for the fix prompt (so that it shows what the fix prompt asks
for: ``a plain square`` stands in for ``a fancy square``, ``a fancy circle`` does not). The images reviewers
accepted in the Space join as they are. The *preservation pairs* are the training templates at every clean cell
(the untargeted cells one level from a targeted one, as the evaluation defines them) with their own images that the
judge passes, so that the adapter learns what must not change next to what must. Each pair names its *teacher*, the
prompt whose base prediction the UNet learns for it (``diffusion.py``): a fix pair's clean version, a preservation
pair's own prompt; an accepted image has none.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch

from ..env import QueryResult, perturbation_seed
from ..errors import BadConfig
from .base import TrainingPlan
from .evaluate import clean_cells

logger = logging.getLogger(__name__)

CANDIDATES = 4  # clean versions tried per fix prompt


@dataclass
class ImagePairs:
    """Prompts and images, the first ``targeted`` of them fix or accepted pairs, the rest preservation pairs."""

    prompts: list[str] = field(default_factory=list)
    images: list[Any] = field(default_factory=list)
    teachers: list[str | None] = field(default_factory=list)  # the prompt whose base prediction is the target
    targeted: int = 0
    accepted: int = 0
    tried: int = 0

    def __len__(self) -> int:
        return len(self.prompts)

    def draw(self, size: int, mix: float, generator: torch.Generator) -> torch.Tensor:
        """Indices of one batch: each a fix/accepted pair with probability ``mix``, else a preservation pair."""
        kept = len(self) - self.targeted
        fix = torch.randint(self.targeted, (size,), generator=generator)
        if not kept:
            return fix
        keep = self.targeted + torch.randint(kept, (size,), generator=generator)
        return torch.where(torch.rand(size, generator=generator) < mix, fix, keep)

    def summary(self) -> dict[str, Any]:
        """What the card reports of the pairs."""
        return {"pairs": {"fix": self.targeted - self.accepted, "accepted": self.accepted,
                          "preservation": len(self) - self.targeted},
                "clean_versions_tried": self.tried}


def clean_versions(plan: TrainingPlan, cell: int) -> list[int]:
    """The judged untargeted cells nearest to ``cell`` (fewest factors changed, then by id), at most CANDIDATES;
    never a held-out cell."""
    space, env = plan.space, plan.env
    mode = space.action_from_id(cell)
    others = [other for other in range(space.num_cells)
              if other not in set(plan.targeted) | set(plan.held_out) and env.expectation(other).judged]

    def distance(other: int) -> int:
        return sum(a != b for a, b in zip(space.action_from_id(other), mode))

    return sorted(others, key=lambda other: (distance(other), other))[:CANDIDATES]


def _fix_prompt(plan: TrainingPlan, seed: Any, cell: int) -> str:
    """The training template filled at a targeted cell, perturbed as the run perturbs it."""
    env = plan.env
    return env.space.apply(seed.input, env.space.action_from_id(cell),
                           seed=perturbation_seed(env.base_seed, seed.seed_id, cell))


def _generate(plan: TrainingPlan, wanted: set[tuple[str, int]], made: dict[tuple[str, int], QueryResult]) -> None:
    """The pipeline's judged images of the (seed id, cell) pairs not made yet, added to ``made``."""
    env = plan.env
    missing = sorted(wanted - set(made))
    if missing:
        results = env.evaluate([env.space.action_from_id(cell) for _, cell in missing], [seed for seed, _ in missing])
        made.update(zip(missing, results, strict=True))


def build_pairs(plan: TrainingPlan) -> ImagePairs:
    """Fix, accepted and preservation pairs; BadConfig saying what to add in the Space when there is no fix pair."""
    env = plan.env
    pending = {(seed.seed_id, cell): clean_versions(plan, cell) for seed in plan.seeds for cell in plan.targeted}
    made: dict[tuple[str, int], QueryResult] = {}
    pairs = ImagePairs()
    for attempt in range(CANDIDATES):
        tries = [(key, versions[attempt]) for key, versions in pending.items() if attempt < len(versions)]
        if not tries:
            break
        _generate(plan, {(seed_id, version) for (seed_id, _), version in tries}, made)
        candidates = [(key, made[(key[0], version)]) for key, version in tries]
        seeds = [env.seed_by_id[seed_id] for (seed_id, _), _ in candidates]
        prompts = [_fix_prompt(plan, seed, cell) for seed, ((_, cell), _) in zip(seeds, candidates, strict=True)]
        verdicts = env.judge.judge(seeds, prompts, [result.prediction for _, result in candidates],
                                   [env.expectation(cell) for (_, cell), _ in candidates])
        for (key, result), prompt, verdict in zip(candidates, prompts, verdicts, strict=True):
            if not result.verdict.is_failure and verdict.judged and not verdict.is_failure:
                pairs.prompts.append(prompt)
                pairs.images.append(result.prediction.image)
                pairs.teachers.append(str(result.input))
                del pending[key]
    for example in plan.corrections:
        if example.image is not None:
            pairs.prompts.append(str(example.input))
            pairs.images.append(example.image)
            pairs.teachers.append(None)
            pairs.accepted += 1
    pairs.targeted, pairs.tried = len(pairs), len(made)
    if not pairs.targeted:
        found = (f"none of the {len(made)} clean versions tried (at most {CANDIDATES} per prompt) passed the run's "
                 "judge for the targeted prompts" if plan.targeted else "no failure mode is marked fix")
        raise BadConfig(
            f"no (prompt, image) pair to train on: {found}, and no generated image was accepted; in the feedback "
            "Space, accept images that show what the failing prompts ask for (correction 'accept'), mark modes fix, "
            "or pass more --train-seeds"
        )
    keep = {(seed.seed_id, cell) for seed in plan.seeds
            for cell in clean_cells(env, range(env.space.num_cells), plan.targeted)}
    _generate(plan, keep, made)
    for key in sorted(keep):
        if not made[key].verdict.is_failure and made[key].verdict.judged:
            pairs.prompts.append(str(made[key].input))
            pairs.images.append(made[key].prediction.image)
            pairs.teachers.append(str(made[key].input))
    logger.info("trained on %d fix, %d accepted and %d preservation pairs (%d clean versions tried, %d fix prompts "
                "without one)", pairs.targeted - pairs.accepted, pairs.accepted, len(pairs) - pairs.targeted,
                pairs.tried, len(pending))
    return pairs
