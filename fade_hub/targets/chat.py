"""The one mapping from a (perturbed) prompt to chat messages, shared by every side that talks to chat models.

A chat endpoint receives these messages and applies the model's chat template itself; a local chat model
renders the same messages with ``chat_prompt``. Keeping both on this one function is what makes a local run
and an endpoint run of the same model ask the same question.
"""

from __future__ import annotations

from typing import Any


def prompt_messages(prompt: str, system: str | None = None) -> list[dict[str, str]]:
    """The chat messages for one prompt: an optional system message, then the prompt as the user's turn."""
    messages = [{"role": "system", "content": system}] if system else []
    return [*messages, {"role": "user", "content": str(prompt)}]


def chat_prompt(tokenizer: Any, prompt: str, system: str | None = None) -> str:
    """The text a local model generates from: ``prompt_messages`` through the tokenizer's chat template."""
    return tokenizer.apply_chat_template(prompt_messages(prompt, system), tokenize=False, add_generation_prompt=True)
