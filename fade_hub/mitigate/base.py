"""The parts every task's mitigation shares: the training plan, the ``Mitigator`` interface, LoRA defaults.

A ``Mitigator`` (one per task family, named in the task registry) wraps the base model of a ``Target`` with a
peft LoRA adapter, trains it on a ``TrainingPlan`` and saves it in the format the stock libraries load.
Because the adapter is injected into the target's own model, the same ``Target`` answers with the adapter
after training, and the shared evaluation (``evaluate.py``) measures it through the run's own judge.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ..env import FailureEnv
from ..errors import BadConfig
from ..seeds import Seed
from ..staging import staging_folder
from ..targets import Target
from .config import MAX_STEPS, MitigateConfig

HEAD_NAMES = ("classifier", "score", "pre_classifier", "head", "lm_head")


@dataclass
class TrainingExample:
    """A reviewer's correction: the failing input and the answer that is right for it, with what the model said
    (a text task's rejected answer) or the image the reviewer accepted (text-to-image)."""

    input: Any
    answer: str
    output: str | None = None  # the failing output the run recorded (a text task's rejected answer)
    image: Any = None  # text-to-image: the generated image the reviewer accepted for ``input``


@dataclass
class TrainingPlan:
    """What to train on: targeted and untargeted cells of the space, the training seeds, the corrections, and the
    cells training must never use (``held_out``: the collateral cells the evaluation keeps unseen)."""

    env: FailureEnv  # the run's space and judge over the training seeds
    targeted: list[int]
    untargeted: list[int]
    seeds: list[Seed]
    corrections: list[TrainingExample] = field(default_factory=list)
    held_out: list[int] = field(default_factory=list)

    @property
    def space(self):
        """The concept space."""
        return self.env.space


def scratch_folder(config: MitigateConfig) -> Path:
    """Where a trainer may write while it trains: in the output's staging folder, never in the output itself."""
    return staging_folder(config.output_dir) / "trainer"


def planned_steps(config: MitigateConfig, examples: int) -> int:
    """The optimizer steps: ``--steps``, or ``--epochs`` passes over ``examples``; BadConfig past ``MAX_STEPS``."""
    if not config.epochs:
        return config.steps
    steps = max(1, math.ceil(config.epochs * examples / config.batch_size))
    if steps > MAX_STEPS:
        raise BadConfig(f"--epochs {config.epochs} over {examples} training examples is {steps} steps, more than "
                        f"{MAX_STEPS}; pass fewer --epochs or --steps")
    return steps


def training_arguments(config: MitigateConfig, device: str, steps: int) -> dict[str, Any]:
    """The ``TrainingArguments`` settings every generative mitigator shares: steps, batch, schedule, seeds, quiet."""
    return dict(
        output_dir=str(scratch_folder(config)), max_steps=steps,
        per_device_train_batch_size=config.batch_size, learning_rate=config.learning_rate,
        lr_scheduler_type="linear", warmup_steps=max(1, steps // 20), weight_decay=0.0, seed=config.seed,
        data_seed=config.seed, use_cpu=device == "cpu", report_to="none", save_strategy="no",
        logging_strategy="no", disable_tqdm=not config.show_progress, dataloader_num_workers=0,
    )


def mixed(targeted: list, anchors: list, share: float, seed: int) -> list:
    """Targeted rows and anchors, each repeated so that ``share`` of the rows are targeted, in a seeded order."""
    rows = list(targeted)
    if anchors and share < 1.0:
        total = max(len(targeted) / max(share, 1e-9), len(anchors) / (1.0 - share))
        rows = [targeted[i % len(targeted)] for i in range(round(total * share))] if targeted else []
        rows += [anchors[i % len(anchors)] for i in range(round(total * (1.0 - share)))]
    order = np.random.default_rng(seed).permutation(len(rows))
    return [rows[i] for i in order]


def name_base(lora: Any, base_model: str | None, base_commit: str | None) -> Any:
    """``lora`` (a peft config) naming the base model and commit, its set-valued fields as sorted lists, so that the
    saved config is the same whatever the process's ``PYTHONHASHSEED`` (peft writes a set in hash order)."""
    lora.base_model_name_or_path, lora.revision = base_model, base_commit
    for item in dataclasses.fields(lora):
        value = getattr(lora, item.name)
        if isinstance(value, (set, frozenset)):
            setattr(lora, item.name, sorted(value))
    return lora


def quiet(trainer: Any) -> Any:
    """A transformers/trl trainer that shows its progress bar but prints no metric dicts to stdout."""
    from transformers import PrinterCallback, ProgressCallback

    class _Bar(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # the bar, not the metric dicts
            return control

    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(_Bar)
    return trainer


def adaptable_modules(model: torch.nn.Module, kinds: tuple[type, ...] | None = None) -> list[str]:
    """Last names of the layers LoRA can adapt (Linear, Conv2d and GPT-2's Conv1D by default), outside the task head."""
    from transformers.pytorch_utils import Conv1D

    kinds = kinds or (torch.nn.Linear, torch.nn.Conv2d, Conv1D)
    names: list[str] = []
    for path, module in model.named_modules():
        if isinstance(module, kinds) and not any(part in HEAD_NAMES for part in path.split(".")):
            name = path.rsplit(".", 1)[-1]
            if name not in names and not name.isdigit():
                names.append(name)
    return names


def default_target_modules(model: torch.nn.Module) -> list[str]:
    """Every attention, dense and convolution layer outside the head, plus the token embeddings of text models.

    Perturbed inputs (typos, letter case, new words) often reach embeddings that training never moved, which
    adapters of the attention projections alone cannot reach; peft's per-architecture defaults (query and value
    only) leave such failures in place.
    """
    embeddings = [name for name, module in model.named_modules()
                  if isinstance(module, torch.nn.Embedding) and name.endswith(("word_embeddings", "embed_tokens"))]
    if tied_embeddings(model):  # a LoRA on them would leave the tied output layer behind once merged
        embeddings = []
    return adaptable_modules(model) + sorted({name.rsplit(".", 1)[-1] for name in embeddings})


def tied_embeddings(model: torch.nn.Module) -> bool:
    """Whether the model's output layer shares its weight with the input embeddings (most seq2seq and small LMs)."""
    try:
        inputs, output = model.get_input_embeddings(), model.get_output_embeddings()
    except (AttributeError, NotImplementedError):  # a model without token embeddings (vision models)
        return False
    return inputs is not None and output is not None and output.weight is inputs.weight


def head_modules(model: torch.nn.Module) -> list[str]:
    """The task head's module names (trained in full and saved with the adapter, peft's ``modules_to_save``)."""
    return [name for name, _ in model.named_children() if name in HEAD_NAMES and name != "lm_head"]


class Mitigator:
    """Base class of the per-task trainers: ``prepare`` adds LoRA, ``train`` fits it, ``save`` writes the adapter."""

    trainer_name: ClassVar[str] = "transformers.Trainer"
    default_learning_rate: ClassVar[float] = 1e-3  # used when the config leaves --learning-rate unset

    def __init__(self, target: Target, config: MitigateConfig) -> None:
        self.target = target
        self.config = config if config.learning_rate else replace(config, learning_rate=self.default_learning_rate)

    def adapted_model(self) -> torch.nn.Module:
        """The module the LoRA goes into (BadConfig when the target's model cannot take one)."""
        return self.target.model

    def check(self) -> None:
        """BadConfig, before any model call, when ``--target-modules`` names a layer the adapted model does not have."""
        model = self.adapted_model()
        paths = [path for path, _ in model.named_modules() if path]
        missing = [name for name in self.config.target_modules
                   if not any(path == name or path.endswith(f".{name}") for path in paths)]
        if missing:
            known = ", ".join(adaptable_modules(model)[:12]) or "none"
            raise BadConfig(f"--target-modules {','.join(missing)}: {type(model).__name__} has no layer of that name; "
                            f"layers LoRA can adapt there: {known}")

    def prepare(self) -> None:
        """Wrap the target's model with a LoRA adapter (the target then answers through it)."""
        raise NotImplementedError

    def train(self, plan: TrainingPlan) -> dict[str, Any]:
        """Train the adapter on the plan; return what the card reports of the training."""
        raise NotImplementedError

    def save(self, folder: Path, base_model: str, base_commit: str | None) -> None:
        """Write the adapter to ``folder`` so that stock peft / diffusers code loads it onto ``base_model``."""
        raise NotImplementedError
