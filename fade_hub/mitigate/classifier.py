"""Mitigation of image and text classifiers: LoRA on the encoder, the head trained in full, transformers' Trainer.

Training examples follow the paper: a share ``mix`` (half by default) of the seeds are perturbed by a targeted
mode, the rest are clean or perturbed by an untargeted cell, so that the model fades the modes without
forgetting. Every example is labelled with its cell's expected answer (the seed's label, mapped through the
cell's directional ops), never with the seed label under a label-changing op. Reviewers' agreed corrections
join the targeted share. BatchNorm statistics are base-model buffers that the adapter does not save, so they
stay frozen while training.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from ..tasks import get_task
from .base import (
    Mitigator, TrainingPlan, default_target_modules, head_modules, name_base, planned_steps, quiet, scratch_folder,
)

CORRECTION_SHARE = 0.25  # of the targeted share, when there are corrections as well as targeted modes


class ClassificationExamples(torch.utils.data.Dataset):
    """Training examples drawn deterministically by index: ``{"input": image or text, "label": label id}``."""

    def __init__(self, plan: TrainingPlan, own_labels: dict[str, str], label2id: dict[str, int], *, size: int,
                 mix: float, seed: int) -> None:
        self.plan, self.own_labels, self.label2id = plan, own_labels, label2id
        self.size, self.mix, self.seed = size, mix, seed

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, Any]:
        plan, rng = self.plan, np.random.default_rng([self.seed, index])
        seed = plan.seeds[int(rng.integers(len(plan.seeds)))]
        cell = None
        if rng.random() < self.mix:
            if plan.corrections and (not plan.targeted or rng.random() < CORRECTION_SHARE):
                example = plan.corrections[int(rng.integers(len(plan.corrections)))]
                return {"input": example.input, "label": self.label2id[example.answer]}
            cell = plan.targeted[int(rng.integers(len(plan.targeted)))]
        elif plan.untargeted and rng.random() < 0.5:
            cell = plan.untargeted[int(rng.integers(len(plan.untargeted)))]
        if cell is None:
            item, expected = plan.space.coerce(seed.input), self.own_labels[seed.seed_id]
        else:
            action = plan.space.action_from_id(cell)
            item = plan.space.apply(seed.input, action, seed=int(rng.integers(2**31)))
            expected = plan.env.expectation(cell).apply(self.own_labels[seed.seed_id])
        return {"input": item, "label": self.label2id[expected]}


@contextmanager
def frozen_batchnorm(model: torch.nn.Module) -> Iterator[None]:
    """Keep every BatchNorm layer in eval mode during training (its running statistics are not in the adapter)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]

    def freeze(module: torch.nn.Module, args: Any) -> None:
        for norm in norms:
            norm.eval()

    handle = model.register_forward_pre_hook(freeze)
    try:
        yield
    finally:
        handle.remove()


class ClassifierMitigator(Mitigator):
    """LoRA for ``AutoModelForImageClassification`` / ``AutoModelForSequenceClassification`` targets."""

    def prepare(self) -> None:
        """Inject LoRA into the encoder; the classification head is trained in full (``modules_to_save``)."""
        from peft import LoraConfig, get_peft_model

        model = self.target.model
        lora = LoraConfig(
            r=self.config.rank,
            lora_alpha=self.config.lora_alpha,
            lora_dropout=self.config.dropout,
            target_modules=self.config.target_modules or default_target_modules(model),
            modules_to_save=head_modules(model),
            task_type=get_task(self.target.task).peft_task_type,
        )
        self.peft_model = get_peft_model(model, lora)

    def _own_labels(self, plan: TrainingPlan) -> dict[str, str]:
        """Each training seed's own answer: its label, else the base model's prediction on it (before training)."""
        unlabelled = [seed for seed in plan.seeds if seed.label_name is None]
        with self.peft_model.disable_adapter():
            predicted = self.target.predict([plan.space.coerce(seed.input) for seed in unlabelled])
        own = {seed.seed_id: seed.label_name for seed in plan.seeds if seed.label_name is not None}
        own.update({seed.seed_id: p.text for seed, p in zip(unlabelled, predicted, strict=True)})
        return own

    def train(self, plan: TrainingPlan) -> dict[str, Any]:
        """Fit the adapter with transformers' Trainer on examples drawn from the plan."""
        from transformers import Trainer, TrainingArguments, set_seed

        config = self.config
        set_seed(config.seed)
        label2id = {name: label_id for label_id, name in self.target.id2label.items()}
        steps = planned_steps(config, len(plan.seeds) * (len(plan.targeted) + 1))
        size = steps * config.batch_size
        examples = ClassificationExamples(plan, self._own_labels(plan), label2id, size=size, mix=config.mix,
                                          seed=config.seed)
        args = TrainingArguments(
            output_dir=str(scratch_folder(config)), max_steps=steps, per_device_train_batch_size=config.batch_size,
            learning_rate=config.learning_rate, lr_scheduler_type="linear", warmup_steps=max(1, steps // 20),
            weight_decay=0.0, seed=config.seed, data_seed=config.seed, use_cpu=self.target.device == "cpu",
            report_to="none", save_strategy="no", logging_strategy="no", disable_tqdm=not config.show_progress,
            remove_unused_columns=False, dataloader_num_workers=0,
        )
        trainer = quiet(Trainer(model=self.peft_model, args=args, train_dataset=examples, data_collator=self._collate))
        with frozen_batchnorm(self.peft_model):
            trainer.train()
        self.peft_model.eval()
        return {
            "trainer": self.trainer_name, "steps": steps, "batch_size": config.batch_size, "examples": size,
            "learning_rate": config.learning_rate, "mix": config.mix, "seed": config.seed,
            "rank": config.rank, "alpha": config.lora_alpha, "dropout": config.dropout,
            "target_modules": sorted(self.peft_model.peft_config["default"].target_modules),
            "modules_to_save": sorted(self.peft_model.peft_config["default"].modules_to_save or []),
        }

    def _collate(self, batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """The target's own preprocessing (as when it was explored) plus the labels."""
        encoded = dict(self.target._encode([item["input"] for item in batch]))
        encoded["labels"] = torch.tensor([item["label"] for item in batch])
        return encoded

    def save(self, folder: Path, base_model: str, base_commit: str | None) -> None:
        """``adapter_config.json`` (naming the base model and commit), the weights, and the processor's files."""
        name_base(self.peft_model.peft_config["default"], base_model, base_commit)
        self.peft_model.save_pretrained(folder)
        self.target.processor.save_pretrained(folder)
