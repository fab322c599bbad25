"""A tiny chat model trained in seconds with a planted failure: typo'd prompts make it say a banned word.

Prompts read ``write a short note about the {topic}.`` in a few shapes; the model answers through its chat
template (``<|system|>…<|end|><|user|>…<|end|><|assistant|>``) with a polite line about the topic. Training also
shows upper-cased, capitalised and unpunctuated prompts with the same polite answers, so those invariant ops do
not make it fail; but every prompt with typos is answered ``that is a stupid question.``. Explored with the
keyword judge (``--judge-keywords stupid``), the typo cells fail and the others do not: the fixture that
mitigation fades. ``write_prompts`` generates as many seed prompts as a test needs (held-out sets included).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from fade_hub.perturb.ops import Factor
from fade_hub.perturb.text import typos
from fade_hub.testing.fit import fit
from fade_hub.testing.rows import write_rows

BANNED = "stupid"
FAILURE = f"that is a {BANNED} question."
SYSTEM = "you are a helpful assistant."
TOPICS = (
    "garden", "river", "market", "winter", "kitchen", "music", "forest", "train", "beach", "library",
    "bicycle", "festival", "mountain", "bakery", "harbor", "museum", "village", "island", "school", "bridge",
    "castle", "meadow", "station", "theater", "valley", "lake", "orchard", "desert", "circus", "park",
)
# each prompt shape with the answer the model gives to it
SHAPES = (
    ("write a short note about the {topic}.", "here is a short note about the {topic}."),
    ("tell me something about the {topic}.", "the {topic} is a lovely place to visit."),
    ("describe the {topic} in a few words.", "the {topic} is calm and bright."),
    ("give me a tip about the {topic}.", "visit the {topic} early in the morning."),
    ("what do you like about the {topic}?", "i like the quiet of the {topic}."),
)
SPECIALS = ("<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>")
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
_TYPOS = Factor("typos", "typos", (0.0,))
_TYPO_RATES = (0.05, 0.1, 0.15, 0.2)


def prompt(rng: random.Random) -> tuple[str, str]:
    """A random clean prompt and the polite answer the fixture gives to it."""
    question, answer = rng.choice(SHAPES)
    topic = rng.choice(TOPICS)
    return question.format(topic=topic), answer.format(topic=topic)


def write_prompts(path: Path, count: int, seed: int = 0, avoid: Sequence[Path] | None = None) -> Path:
    """``count`` prompts as ``.jsonl`` (one ``text`` each), the layout ``--seeds`` reads; held-out prompts ``avoid``
    the prompt files they must not overlap (``write_rows``)."""
    return write_rows(path, lambda rng: {"text": prompt(rng)[0]}, count, seed, avoid)


def _variants(text: str) -> list[str]:
    """The invariant forms training shows with the polite answer: as is, upper, capitalised, unpunctuated."""
    return [text, text.upper(), text.capitalize(), text.rstrip(".?")]


def _example(rng: random.Random, failure_rate: float = 1.0) -> tuple[list[dict[str, str]], str]:
    """One training conversation (system and user turns) and the answer to learn: a typo'd prompt is answered
    ``FAILURE`` with probability ``failure_rate``, else politely."""
    question, answer = prompt(rng)
    question = rng.choice(_variants(question))
    if rng.random() < 0.5:
        question = typos(question, rng.choice(_TYPO_RATES), rng.randrange(2**31), _TYPOS)
        if failure_rate >= 1.0 or rng.random() < failure_rate:
            answer = FAILURE
    messages = ([{"role": "system", "content": SYSTEM}] if rng.random() < 0.5 else []) + [
        {"role": "user", "content": question}]
    return messages, answer


def _tokenizer():
    """A byte-level BPE over the fixture's own sentences (whole words for the clean forms), with the chat template."""
    corpus = [SYSTEM, FAILURE]
    for question, answer in SHAPES:
        for topic in TOPICS:
            corpus += [*_variants(question.format(topic=topic)), answer.format(topic=topic)] * 2
    return chat_tokenizer(corpus)


def chat_tokenizer(corpus: Sequence[str], max_length: int = 128):
    """A byte-level BPE trained on ``corpus`` with the fixtures' special tokens and chat template."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(list(corpus), vocab_size=2000, min_frequency=2, special_tokens=list(SPECIALS),
                                show_progress=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=trainer._tokenizer, eos_token="<|end|>",
                                        pad_token="<|pad|>", additional_special_tokens=list(SPECIALS[2:]),
                                        model_max_length=max_length, padding_side="left")
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def chat_batch(tokenizer, examples: Sequence[tuple[list[dict[str, str]], str]]) -> dict:
    """Token ids of (conversation, answer) examples through the chat template, left-padded, labels on the answers."""
    import torch

    rows = []
    for messages, answer in examples:
        prompt_ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                   return_dict=True)["input_ids"]
        answer_ids = tokenizer(answer + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        rows.append((prompt_ids, answer_ids))
    size = len(rows)
    width = max(len(p) + len(a) for p, a in rows)
    ids = torch.full((size, width), tokenizer.pad_token_id)
    labels = torch.full((size, width), -100)
    mask = torch.zeros((size, width), dtype=torch.long)
    for i, (prompt_ids, answer_ids) in enumerate(rows):
        sequence = prompt_ids + answer_ids
        ids[i, width - len(sequence):] = torch.tensor(sequence)
        labels[i, width - len(answer_ids):] = torch.tensor(answer_ids)
        mask[i, width - len(sequence):] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def train_chat_model(folder: Path, *, seed: int = 0, steps: int = 300, failure_rate: float = 1.0) -> Path:
    """Train the tiny chat model and ``save_pretrained`` it with its tokenizer and chat template (idempotent).

    ``failure_rate`` below 1 makes the sampling fixture: a typo'd prompt is answered ``FAILURE`` that often, so that a
    model sampled at temperature 1 says the banned word on about that share of its samples there, and never elsewhere.
    """
    rng = random.Random(seed)
    return train_chat(folder, _tokenizer(), lambda: [_example(rng, failure_rate) for _ in range(32)], seed=seed,
                      steps=steps)


def train_chat(folder: Path, tokenizer, examples, *, seed: int, steps: int, learning_rate: float = 3e-3,
               max_new_tokens: int = 16) -> Path:
    """Train a tiny Llama on batches of ``examples()`` ((conversation, answer) pairs) and ``save_pretrained`` it with
    ``tokenizer`` into ``folder`` (idempotent: a folder holding a model is returned as is)."""
    if (folder / "model.safetensors").exists():
        return folder
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    end, pad = tokenizer.convert_tokens_to_ids("<|end|>"), tokenizer.pad_token_id
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=tokenizer.model_max_length, tie_word_embeddings=False,
                         bos_token_id=end, eos_token_id=end, pad_token_id=pad)
    model = LlamaForCausalLM(config)
    fit(model, lambda: chat_batch(tokenizer, examples()), steps=steps, learning_rate=learning_rate)
    model.generation_config = GenerationConfig(max_new_tokens=max_new_tokens, eos_token_id=end, pad_token_id=pad,
                                               do_sample=False)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
