"""Mitigation of summarizers (encoder-decoder models): LoRA fine-tuned on (perturbed article -> target summary).

trl's trainers take causal language models only (its ``SFTTrainer`` documents "Only causal language models are
supported"), so the adapter is trained with transformers' ``Seq2SeqTrainer``. Each seed's target summary is, in
this order: its reference summary, else the model's own summary of the clean article when the judge passes it.
Reviewers' agreed corrections are (failing article -> preferred summary) pairs of their own. As for classifiers,
a share ``--mix`` of the rows are articles perturbed into the targeted modes; the rest are clean articles and
untargeted cells with the same targets, so that the model keeps summarising them as it did.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from ..env import perturbation_seed
from ..errors import BadConfig
from .base import (
    Mitigator, TrainingPlan, default_target_modules, mixed, name_base, planned_steps, quiet, training_arguments,
)

logger = logging.getLogger(__name__)


def _no_target_error(seeds: int) -> BadConfig:
    return BadConfig(
        f"no training target: none of the {seeds} training articles has a reference summary, and the model's "
        "summaries of the clean articles fail the judge; add preferred summaries to failing examples in the feedback "
        "Space (a correction on an example such as q12), or pass --train-seeds with a summary column"
    )


class Seq2SeqMitigator(Mitigator):
    """LoRA for ``AutoModelForSeq2SeqLM`` targets, trained with transformers' ``Seq2SeqTrainer``."""

    trainer_name = "transformers.Seq2SeqTrainer"

    def prepare(self) -> None:
        """Inject LoRA into every attention and dense layer and the token embeddings (``SEQ_2_SEQ_LM``)."""
        from peft import LoraConfig, get_peft_model

        config = self.config
        lora = LoraConfig(
            r=config.rank, lora_alpha=config.lora_alpha, lora_dropout=config.dropout, task_type="SEQ_2_SEQ_LM",
            target_modules=config.target_modules or default_target_modules(self.target.model),
        )
        self.peft_model = get_peft_model(self.target.model, lora)
        self.target.model = self.peft_model

    def targets(self, plan: TrainingPlan) -> tuple[dict[str, str], dict[str, int]]:
        """Each training seed's target summary (reference, else its passing clean summary) and where they came from."""
        found = {seed.seed_id: seed.reference for seed in plan.seeds if seed.reference}
        unlabelled = [seed.seed_id for seed in plan.seeds if not seed.reference]
        own = 0
        if unlabelled:
            with self.peft_model.disable_adapter():
                clean = plan.env.evaluate_clean(unlabelled)
            for result in clean:
                if not result.verdict.is_failure:
                    found[result.seed.seed_id] = result.prediction.text
                    own += 1
        return found, {"reference summaries": len(found) - own, "clean summaries": own,
                       "seeds without a target": len(plan.seeds) - len(found)}

    def rows(self, plan: TrainingPlan, targets: dict[str, str]) -> list[tuple[str, str]]:
        """(article, summary) rows: targeted cells and corrections, mixed with clean and untargeted articles."""
        space, seeds = plan.space, [seed for seed in plan.seeds if seed.seed_id in targets]

        def perturbed(cell: int) -> list[tuple[str, str]]:
            action = space.action_from_id(cell)
            return [(space.apply(seed.input, action, seed=perturbation_seed(self.config.seed, seed.seed_id, cell)),
                     targets[seed.seed_id]) for seed in seeds]

        targeted = [row for cell in plan.targeted for row in perturbed(cell)]
        targeted += [(str(example.input), example.answer) for example in plan.corrections]
        anchors = [(space.coerce(seed.input), targets[seed.seed_id]) for seed in seeds]
        anchors += [row for cell in plan.untargeted for row in perturbed(cell)]
        return mixed(targeted, anchors, self.config.mix, self.config.seed)

    def train(self, plan: TrainingPlan) -> dict[str, Any]:
        """Fit the adapter with ``Seq2SeqTrainer`` on the plan's rows."""
        from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, set_seed

        config = self.config
        set_seed(config.seed)
        targets, sources = self.targets(plan)
        if not targets and not plan.corrections:
            raise _no_target_error(len(plan.seeds))
        rows = self.rows(plan, targets)
        steps = planned_steps(config, len(rows))
        args = Seq2SeqTrainingArguments(**training_arguments(config, self.target.device, steps),
                                        remove_unused_columns=False)
        trainer = quiet(Seq2SeqTrainer(model=self.peft_model, args=args, train_dataset=rows,
                                       data_collator=self._collate))
        trainer.train()
        self.peft_model.eval()
        lora = self.peft_model.peft_config["default"]
        return {
            "trainer": self.trainer_name, "steps": steps, "batch_size": config.batch_size, "rows": len(rows),
            "learning_rate": config.learning_rate, "mix": config.mix, "seed": config.seed, "rank": config.rank,
            "alpha": config.lora_alpha, "dropout": config.dropout, "target_modules": sorted(lora.target_modules),
            "targets": {**sources, "corrections": len(plan.corrections)},
        }

    def _collate(self, batch: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
        """The target's own preprocessing (prefix, truncation) of the articles, and the summaries as labels."""
        tokenizer, target = self.target.processor, self.target
        encoded = tokenizer([target.prefix + article for article, _ in batch], text_target=[s for _, s in batch],
                            padding=True, truncation=True, max_length=target.max_length, return_tensors="pt")
        encoded["labels"][encoded["labels"] == tokenizer.pad_token_id] = -100
        return dict(encoded)

    def save(self, folder: Path, base_model: str, base_commit: str | None) -> None:
        """``adapter_config.json`` naming the base model and commit, the LoRA weights, and the tokenizer."""
        name_base(self.peft_model.peft_config["default"], base_model, base_commit)
        # LoRA on the embeddings adds A/B matrices only: the base embedding matrix is not copied into the adapter
        self.peft_model.save_pretrained(folder, save_embedding_layers=False)
        self.target.processor.save_pretrained(folder)
