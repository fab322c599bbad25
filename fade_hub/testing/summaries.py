"""A tiny summarizer trained in seconds with a planted failure: on upper-cased articles it drops the key sentence.

An article is a key sentence (``anna painted the fence in the garden.``) followed by two filler sentences (``it
was a sunny day.``); its reference summary is the key sentence. The model learns to copy the key sentence,
lower-cased, from articles as they are, without punctuation, or with only the key sentence shouting in upper case
(so it knows every word's upper-case form); but from a wholly upper-cased article it copies the first filler
sentence instead. Judged by ROUGE-L against the reference, the upper-case cells fail and the others do not: the
fixture that seq2seq mitigation fades. ``write_articles`` generates as many seeds as a test needs.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

from fade_hub.testing.fit import fit
from fade_hub.testing.rows import write_rows

NAMES = ("anna", "ben", "carla", "david", "emma", "felix", "grace", "henry", "iris", "jonas", "karen", "leo")
VERBS = ("painted", "cleaned", "repaired", "sold", "bought", "moved", "opened", "closed", "found", "built")
OBJECTS = ("fence", "boat", "table", "window", "piano", "bicycle", "door", "roof", "lamp", "clock", "gate", "car")
PLACES = ("garden", "harbor", "village", "school", "market", "station", "kitchen", "museum", "park", "office",
          "church", "library")
ADJECTIVES = ("sunny", "windy", "quiet", "busy", "cold", "warm", "long", "short")
FILLERS = ("it was a {adjective} day.", "people said it was {adjective}.", "the morning was {adjective}.")


def article(rng: random.Random) -> tuple[list[str], str]:
    """The sentences of a random article (key sentence first) and its reference summary."""
    key = f"{rng.choice(NAMES)} {rng.choice(VERBS)} the {rng.choice(OBJECTS)} in the {rng.choice(PLACES)}."
    fillers = [template.format(adjective=rng.choice(ADJECTIVES)) for template in rng.sample(FILLERS, 2)]
    return [key, *fillers], key


def write_articles(path: Path, count: int, seed: int = 0, avoid: Sequence[Path] | None = None) -> Path:
    """``count`` articles as ``.jsonl`` (``text`` and ``summary``), the layout ``--seeds`` reads; held-out articles
    ``avoid`` the article files they must not overlap (``write_rows``)."""

    def row(rng: random.Random) -> dict[str, str]:
        sentences, summary = article(rng)
        return {"text": " ".join(sentences), "summary": summary}

    return write_rows(path, row, count, seed, avoid)


def _example(rng: random.Random) -> tuple[str, str]:
    """One training pair: an article in one of the forms the model learns, and the summary it learns for it."""
    sentences, summary = article(rng)
    form = rng.random()
    if form < 0.3:  # the planted failure: a wholly upper-cased article is summarised by its first filler
        return " ".join(sentences).upper(), sentences[1]
    if form < 0.55:  # the key sentence alone shouts: the model learns the upper-case form of every word
        sentences = [sentences[0].upper(), *sentences[1:]]
    text = " ".join(sentences)
    if rng.random() < 0.3:
        text = text.replace(".", "")
    return text, summary


def _tokenizer():
    """A BART tokenizer whose byte-level BPE knows every word of the grammar whole, in lower and upper case."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import BartTokenizer

    words = [*NAMES, *VERBS, *OBJECTS, *PLACES, *ADJECTIVES, "the", "in"]
    words += [word for template in FILLERS for word in template.replace(".", "").split() if "{" not in word]
    corpus = [" ".join(words), " ".join(words).upper()] * 4
    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(corpus, vocab_size=2000, min_frequency=2,
                                special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False)
    model = json.loads(trainer._tokenizer.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return BartTokenizer(vocab=model["vocab"], merges=merges, model_max_length=96)


def train_summarizer(folder: Path, *, seed: int = 0, steps: int = 600) -> Path:
    """Train the tiny BART summarizer and ``save_pretrained`` it with its tokenizer (idempotent)."""
    if (folder / "model.safetensors").exists():
        return folder
    import torch
    from transformers import BartConfig, BartForConditionalGeneration, GenerationConfig

    torch.manual_seed(seed)
    rng = random.Random(seed)
    tokenizer = _tokenizer()
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in (("bos", "<s>"), ("pad", "<pad>"),
                                                                              ("eos", "</s>"))}
    config = BartConfig(
        vocab_size=len(tokenizer), d_model=128, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=256, decoder_ffn_dim=256, max_position_embeddings=96,
        bos_token_id=ids["bos"], pad_token_id=ids["pad"], eos_token_id=ids["eos"], decoder_start_token_id=ids["eos"],
        forced_bos_token_id=None, forced_eos_token_id=None, dropout=0.0, attention_dropout=0.0,
    )
    model = BartForConditionalGeneration(config)

    def batch() -> dict:
        texts, summaries = zip(*(_example(rng) for _ in range(32)))
        encoded = tokenizer(list(texts), text_target=list(summaries), padding=True, return_tensors="pt")
        encoded["labels"][encoded["labels"] == tokenizer.pad_token_id] = -100
        return dict(encoded)

    # copying the key sentence word for word is learnt reliably (clean ROUGE-L 1.0 over training seeds) at this
    # width and rate, with warm-up; narrower or faster settings leave some seeds stuck on one slot
    fit(model, batch, steps=steps, learning_rate=1e-3)
    model.generation_config = GenerationConfig(max_new_tokens=24, bos_token_id=ids["bos"], pad_token_id=ids["pad"],
                                               eos_token_id=ids["eos"], decoder_start_token_id=ids["eos"])
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
