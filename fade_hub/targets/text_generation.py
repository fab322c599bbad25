"""Text generation targets (``AutoModelForCausalLM``): greedy by default, left padding, one generate per batch.

A model deployed with sampling is tested as deployed with ``do_sample`` (and ``temperature`` / ``top_p``) in the
generation settings: each batch then draws from a random stream seeded by the run's seed and the batch's prompts,
so that the same batch is answered the same on every machine while two batches (or two copies of a prompt in one
batch, the samples of one query) draw independently.

Chat models are tested the way they are deployed: a prompt goes through the tokenizer's chat template as the user
turn (after the system message, when one is given) with the generation prompt appended. A model without a chat
template gets plain prompts, with a warning; ``raw_prompts`` sends plain prompts on purpose. The template's
SHA-256 is part of the target's description, so a run records exactly how its prompts were formatted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from typing import Any

import torch

from fade_hub.errors import BadConfig
from fade_hub.targets.base import (
    Prediction,
    Target,
    TargetConfig,
    ensure_pad_token,
    load_processor,
    load_transformers,
    seeded,
    text_max_length,
)
from fade_hub.targets.source import ModelSource

logger = logging.getLogger(__name__)

GENERATION_DEFAULTS: dict[str, Any] = {"do_sample": False, "max_new_tokens": 32}


def generation_settings(config: TargetConfig) -> dict[str, Any]:
    """Generation kwargs: deterministic defaults overridden by the user's."""
    return {**GENERATION_DEFAULTS, **config.generation_kwargs}


def check_new_tokens(new_tokens: int, limit: int, model_id: str, what: str) -> None:
    """BadConfig when ``max_new_tokens`` does not fit below the model's ``limit`` of positions."""
    if new_tokens >= limit:
        raise BadConfig(f"--max-new-tokens {new_tokens} does not fit model {model_id!r}: its {what} has "
                        f"{limit} positions; pass at most {limit - 1}")


class TextGenerator(Target):
    """A causal language model: prompts in, the generated continuation (without the prompt) out."""

    task = "text-generation"
    modality = "text"

    def __init__(self, source: ModelSource, config: TargetConfig) -> None:
        super().__init__(source, config)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model = load_transformers(AutoModelForCausalLM, self, source.use_safetensors)
        self.processor = load_processor(AutoTokenizer, self)
        self.processor.padding_side = "left"
        self.processor.truncation_side = "left"  # long prompts keep their end, where generation continues
        ensure_pad_token(self.processor, self.model)
        self.generation_kwargs = generation_settings(config)
        new_tokens = int(self.generation_kwargs.get("max_new_tokens", 0))
        context = text_max_length(self.processor, self.model.config)
        check_new_tokens(new_tokens, context, self.model_id, "context (prompt and answer)")
        self.max_length = context - new_tokens
        empty_is_empty = len(self.processor("")["input_ids"]) == 0
        self._empty_prompt = (self.processor.bos_token or self.processor.eos_token or " ") if empty_is_empty else ""
        self.system_prompt = config.system_prompt or None
        self.chat_template: str | None = None if config.raw_prompts else self._check_template()

    def _check_template(self) -> str | None:
        """The tokenizer's chat template, checked on a probe conversation; None (with a warning) when it has none."""
        template = getattr(self.processor, "chat_template", None)
        if isinstance(template, dict):  # named templates: the default one formats plain conversations
            template = template.get("default")
        if not template:
            logger.warning(
                "model %s has no chat template: prompts are sent as plain text%s (pass --raw-prompts to say so)",
                self.model_id, ", after the system prompt" if self.system_prompt else "",
            )
            return None
        try:
            self.processor.apply_chat_template(self.conversation("probe"), add_generation_prompt=True, tokenize=False)
        except Exception as err:  # jinja2 TemplateError and friends: a template that refuses this conversation
            detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
            hint = "drop --system-prompt" if self.system_prompt else "pass --raw-prompts"
            raise BadConfig(f"the chat template of {self.model_id} rejects the prompt ({detail}); {hint}") from None
        return str(template)

    @property
    def uses_chat_template(self) -> bool:
        """Whether prompts go through the chat template."""
        return self.chat_template is not None

    def conversation(self, prompt: str) -> list[dict[str, str]]:
        """The messages one prompt becomes: the system message (when given) and the user turn."""
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [*system, {"role": "user", "content": str(prompt)}]

    def plain_prompt(self, prompt: str) -> str:
        """The text one prompt becomes without a chat template (the system prompt first, when given)."""
        text = f"{self.system_prompt}\n\n{prompt}" if self.system_prompt else str(prompt)
        return text or self._empty_prompt

    def encode(self, prompts: list[str]) -> Any:
        """Token ids and attention mask of a batch of prompts, formatted as the model is deployed, on the device."""
        if self.uses_chat_template:
            return self.encode_conversations([self.conversation(text) for text in prompts])
        encoded = self.processor([self.plain_prompt(text) for text in prompts], padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
        return encoded.to(self.device)

    def encode_conversations(self, conversations: Sequence[list[dict[str, str]]]) -> Any:
        """Token ids and attention mask of a batch of conversations through the chat template, on the device."""
        encoded = self.processor.apply_chat_template(
            list(conversations), add_generation_prompt=True, tokenize=True, padding=True, truncation=True,
            max_length=self.max_length, return_dict=True, return_tensors="pt",
        )
        return encoded.to(self.device)

    def _generate(self, prompts: list[str], **overrides: Any) -> list[str]:
        return self._decode(self.encode([str(text) for text in prompts]), self.config.seed, overrides)

    def _decode(self, encoded: Any, seed: int, overrides: dict[str, Any]) -> list[str]:
        """Generate from encoded inputs with torch's RNG seeded by ``seed``; the new text of each row."""
        with seeded(seed, self.device):
            output = self.model.generate(**encoded, **{**self.generation_kwargs, **overrides})
        return self.processor.batch_decode(output[:, encoded["input_ids"].shape[1]:], skip_special_tokens=True)

    def _predict_batch(self, batch: list[str]) -> list[Prediction]:
        prompts = [str(text) for text in batch]
        seed = batch_seed(self.config.seed, prompts) if self.samples else self.config.seed
        return [Prediction(text=text) for text in self._decode(self.encode(prompts), seed, {})]

    def chat(self, conversations: Sequence[list[dict[str, str]]], **overrides: Any) -> list[str]:
        """Greedy replies to whole conversations (system, user and assistant turns) through the chat template, one
        generate per batch: how a chat model serves as a judge."""
        if not self.uses_chat_template:
            raise BadConfig(f"model {self.model_id} has no chat template, which a judge model needs: use a chat model")
        replies: list[str] = []
        settings = {**overrides, "do_sample": False}
        with torch.inference_mode():
            for start in range(0, len(conversations), self.batch_size):
                chunk = conversations[start : start + self.batch_size]
                replies += self._decode(self.encode_conversations(chunk), self.config.seed, settings)
        return replies

    def sample(self, prompts: list[str], count: int, *, temperature: float = 1.0) -> list[list[str]]:
        """``count`` sampled answers per prompt (seeded by the target's seed), for finding answers that pass."""
        answers: list[list[str]] = []
        per_batch = max(self.batch_size // count, 1)
        with torch.inference_mode():
            for start in range(0, len(prompts), per_batch):
                chunk = prompts[start : start + per_batch]
                texts = self._generate(chunk, do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                                       num_return_sequences=count)
                answers += [texts[i * count : (i + 1) * count] for i in range(len(chunk))]
        return answers

    def describe(self) -> dict[str, Any]:
        """Base description plus the generation settings and how prompts are formatted."""
        template = self.chat_template
        return {
            **super().describe(),
            "generation_kwargs": dict(self.generation_kwargs),
            "prompt_format": "chat template" if template else "plain text",
            "chat_template_sha256": hashlib.sha256(template.encode("utf-8")).hexdigest() if template else None,
            "system_prompt": self.system_prompt,
        }


def batch_seed(seed: int, prompts: Sequence[str]) -> int:
    """The random seed of one sampled batch: the run's seed and the batch's prompts, stable across processes."""
    digest = hashlib.sha256(json.dumps([seed, list(prompts)]).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little")
