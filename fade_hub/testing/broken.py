"""A variant built to fail: a LoRA adapter that teaches a classifier wrong answers in one region of a concept space
where the base model was right, so that ``compare`` and ``check --against`` have a region that is new in the variant.

It trains with the mitigation's own classifier trainer (``ClassifierMitigator``): the "corrections" it is given are
the region's perturbed seeds of the chosen classes labelled with the next label over, mixed half and half with the
clean seeds under their right labels, so that the region breaks and clean inputs stay right.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Any


def break_region(model: Path, space: Path, seeds: Path, levels: dict[str, list[Any]], classes: list[str],
                 output: Path, *, steps: int = 80, seed: int = 0) -> Path:
    """Train and save (to ``output``, an adapter folder stock peft loads onto ``model``) a LoRA that makes the image
    classifier ``model`` answer wrong on seeds of ``classes`` at the cells of ``space`` whose factors take the given
    ``levels`` (a factor left out: any level)."""
    from fade_hub.env import FailureEnv
    from fade_hub.explore import ExploreConfig
    from fade_hub.assembly import judge_config, load_parts
    from fade_hub.judges import make_judge
    from fade_hub.mitigate.base import TrainingExample, TrainingPlan
    from fade_hub.mitigate.classifier import ClassifierMitigator
    from fade_hub.mitigate.config import MitigateConfig
    from fade_hub.staging import staging_folder

    explore = ExploreConfig(model=str(model), seeds=str(seeds), space=str(space), show_progress=False)
    target, concepts, inputs = load_parts(explore)
    env = FailureEnv(target, make_judge(target.task, judge_config(explore), target), concepts, inputs, seed=seed)
    admitted = [[f.levels.index(level) for level in levels[f.name]] if f.name in levels else range(len(f.levels))
                for f in concepts.factors]
    labels = [target.id2label[i] for i in sorted(target.id2label)]
    def next_label(name: str) -> str:
        return labels[(labels.index(name) + 1) % len(labels)]

    wrong = [TrainingExample(concepts.apply(item.input, action, seed=index), next_label(item.label_name))
             for index, item in enumerate(inputs) if item.label_name in classes
             for action in itertools.product(*admitted)]
    plan = TrainingPlan(env=env, targeted=[], untargeted=[], seeds=inputs, corrections=wrong)
    config = MitigateConfig(run="-", output=str(output), steps=steps, batch_size=32, seed=seed, show_progress=False)
    trainer = ClassifierMitigator(target, config)
    trainer.prepare()
    trainer.train(plan)
    output.mkdir(parents=True, exist_ok=True)
    trainer.save(output, str(model), None)
    shutil.rmtree(staging_folder(output), ignore_errors=True)  # the trainer's scratch folder
    return output
