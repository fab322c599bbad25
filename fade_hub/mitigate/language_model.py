"""Mitigation of causal language models: a LoRA adapter trained with trl on preference data from the feedback.

The data (``preferences.py``) are failing answers to prompts perturbed into the targeted modes, each with an answer
to prefer, plus passing answers to clean and untargeted prompts (anchors). Three objectives, ``--objective``:

- ``dpo``: trl's ``DPOTrainer`` on (prompt, chosen, rejected) pairs;
- ``kto``: trl's ``KTOTrainer`` on unpaired verdicts: failing answers are undesirable, chosen answers and
  anchors desirable (what reviewers' verdicts are by nature);
- ``sft``: trl's ``SFTTrainer`` on (prompt, chosen) and the anchors. Also used, whatever the objective, when
  the only data are corrections without a failing answer to contrast.

Prompts are formatted as the run explored them: through the chat template with the run's system prompt, as
conversational trl datasets, or as plain text. Each trainer gets the target's base model and a peft
``LoraConfig(task_type="CAUSAL_LM")``; the adapted model then answers through the same target.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .base import (
    Mitigator, TrainingPlan, default_target_modules, mixed, name_base, planned_steps, quiet, training_arguments,
)
from .preferences import PreferenceData, collect

logger = logging.getLogger(__name__)

# The objective ``--objective auto`` picks: the one with the largest targeted drop on the generation fixture whose
# clean pass rate stayed within 2 points, measured side by side by ``benchmarks/mitigation.py --fixtures generation
# --objectives dpo kto sft`` (the rows generation[dpo], [kto], [sft] of benchmarks/results/mitigation.json). There
# the three tie (every targeted failure faded, clean pass rate unchanged, n=420 held-out prompts); DPO is kept as it
# learns from the contrast of the failing and the preferred answer, the signal the feedback carries most directly.
AUTO_OBJECTIVE = "dpo"
TRAINERS = {"dpo": "trl.DPOTrainer", "kto": "trl.KTOTrainer", "sft": "trl.SFTTrainer"}
BETA = 0.1  # DPO / KTO: how far the adapted model may move from the base model
KTO_RATIO = 1.15  # KTO: the weighted ratio of desirable to undesirable rows aimed at (the paper advises 1 to 4/3)


def kto_weights(rows: list[dict[str, Any]]) -> tuple[float, float]:
    """KTO's (desirable, undesirable) loss weights: the more numerous side weighted down so that the weighted ratio
    of desirable to undesirable rows lies in [1, 4/3], the range the KTO paper (and trl's check) recommends."""
    desirable = sum(bool(row["label"]) for row in rows)
    undesirable = len(rows) - desirable
    if not desirable or not undesirable:
        return 1.0, 1.0
    ratio = desirable / undesirable
    if ratio > 4 / 3:
        return KTO_RATIO / ratio, 1.0
    if ratio < 1:
        return 1.0, ratio / KTO_RATIO
    return 1.0, 1.0


class LanguageModelMitigator(Mitigator):
    """LoRA for ``AutoModelForCausalLM`` targets, trained with trl's DPO, KTO or SFT trainer."""

    trainer_name = TRAINERS[AUTO_OBJECTIVE]

    def prepare(self) -> None:
        """The LoRA config (the trainer wraps the base model with it): every attention/MLP layer and the embeddings."""
        from peft import LoraConfig

        config = self.config
        self.lora = LoraConfig(
            r=config.rank, lora_alpha=config.lora_alpha, lora_dropout=config.dropout, task_type="CAUSAL_LM",
            target_modules=config.target_modules or default_target_modules(self.target.model),
        )

    # data ---------------------------------------------------------------------------------------------------------

    def _prompt(self, text: str) -> Any:
        """A prompt formatted as the run sent it: chat messages (the template applies) or plain text."""
        return self.target.conversation(text) if self.target.uses_chat_template else self.target.plain_prompt(text)

    def _completion(self, text: str) -> Any:
        """An answer as the assistant turn (chat) or plain text (trl appends the EOS token)."""
        return [{"role": "assistant", "content": text}] if self.target.uses_chat_template else text

    def objective(self, data: PreferenceData) -> tuple[str, str]:
        """The objective to train with and why: the user's, the measured default, or SFT when nothing contrasts."""
        asked = self.config.objective
        chosen = AUTO_OBJECTIVE if asked == "auto" else asked
        if chosen != "sft" and not any(pair.rejected for pair in data.pairs):
            return "sft", "only corrections without a failing answer to contrast"
        return chosen, "--objective auto (the measured default)" if asked == "auto" else f"--objective {asked}"

    def rows(self, data: PreferenceData, objective: str) -> list[dict[str, Any]]:
        """The trl dataset rows of ``objective``: targeted rows and anchors mixed by ``--mix``."""
        prompt, answer = self._prompt, self._completion
        if objective == "dpo":
            targeted = [{"prompt": prompt(p.prompt), "chosen": answer(p.chosen), "rejected": answer(p.rejected)}
                        for p in data.pairs if p.rejected]
            return mixed(targeted, [], 1.0, self.config.seed)
        if objective == "kto":
            targeted = [{"prompt": prompt(p.prompt), "completion": answer(p.chosen), "label": True} for p in data.pairs]
            targeted += [{"prompt": prompt(p.prompt), "completion": answer(p.rejected), "label": False}
                         for p in data.pairs if p.rejected]
            anchors = [{"prompt": prompt(text), "completion": answer(good), "label": True} for text, good in data.anchors]
        else:
            targeted = [{"prompt": prompt(p.prompt), "completion": answer(p.chosen)} for p in data.pairs]
            anchors = [{"prompt": prompt(text), "completion": answer(good)} for text, good in data.anchors]
        return mixed(targeted, anchors, self.config.mix, self.config.seed)

    # training -----------------------------------------------------------------------------------------------------

    def _arguments(self, objective: str, steps: int, rows: list[dict[str, Any]]) -> Any:
        """The trl config of ``objective`` with fade-hub's training settings."""
        import trl

        config, target = self.config, self.target
        common = dict(
            **training_arguments(config, target.device, steps), bf16=False, activation_checkpointing=False,
            max_length=target.max_length + int(target.generation_kwargs.get("max_new_tokens", 0)),
        )
        if objective == "dpo":
            return trl.DPOConfig(**common, beta=BETA)
        if objective == "kto":
            desirable, undesirable = kto_weights(rows)
            return trl.KTOConfig(**common, beta=BETA, desirable_weight=desirable, undesirable_weight=undesirable)
        return trl.SFTConfig(**common, packing=False)

    def train(self, plan: TrainingPlan) -> dict[str, Any]:
        """Build the preference data, train the adapter with the chosen trl trainer, and answer through it."""
        import datasets
        import trl
        from transformers import set_seed

        config = self.config
        set_seed(config.seed)
        data = collect(plan, self.target, samples=config.samples, seed=config.seed)
        objective, reason = self.objective(data)
        rows = self.rows(data, objective)
        steps = planned_steps(config, len(rows))
        trainer_class = {"dpo": trl.DPOTrainer, "kto": trl.KTOTrainer, "sft": trl.SFTTrainer}[objective]
        datasets.disable_progress_bars()
        trainer = trainer_class(model=self.target.model, args=self._arguments(objective, steps, rows),
                                train_dataset=datasets.Dataset.from_list(rows),
                                processing_class=self.target.processor, peft_config=self.lora)
        quiet(trainer).train()
        self.peft_model = trainer.accelerator.unwrap_model(trainer.model).eval()
        self.target.model = self.peft_model
        lora = self.peft_model.peft_config["default"]
        return {
            "trainer": TRAINERS[objective], "objective": objective, "objective_reason": reason, "steps": steps,
            "batch_size": config.batch_size, "rows": len(rows), "learning_rate": config.learning_rate,
            "beta": BETA if objective != "sft" else None, "mix": config.mix, "seed": config.seed,
            **({"kto_weights": dict(zip(("desirable", "undesirable"), kto_weights(rows), strict=True))}
               if objective == "kto" else {}),
            "rank": config.rank, "alpha": config.lora_alpha, "dropout": config.dropout,
            "target_modules": sorted(lora.target_modules), "prompt_format": self.target.describe()["prompt_format"],
            **data.stats,
        }

    def save(self, folder: Path, base_model: str, base_commit: str | None) -> None:
        """``adapter_config.json`` naming the base model and commit, the LoRA weights, and the tokenizer."""
        name_base(self.peft_model.peft_config["default"], base_model, base_commit)
        # LoRA on the embeddings adds A/B matrices only: the base embedding matrix is not copied into the adapter
        self.peft_model.save_pretrained(folder, save_embedding_layers=False)
        self.target.processor.save_pretrained(folder)
