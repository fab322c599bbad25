"""The planted-failure text classifier of the discovery benchmark: a small BERT sentiment model that fails in known regions.

Sentences come from templates over small positive and negative word lists. The space is
stop-word removal x word shuffling x word repetition x typos, six levels each (1296 cells), with three
planted modes (see ``fade_hub.testing.planted`` for how planting works), each over stop-words x repeat so
that word counts alone tell it apart: one where two factors meet (every stop-word dropped *and* a word
repeated ten times, each harmless alone), one that affects positive sentences only and one that affects
negative sentences only. Shuffle and typos are nuisance factors that no mode uses; typos stay mild (at most
3 % of the letters) so that the small from-scratch BERT is not broken by them everywhere.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable

import numpy as np

from .planted import Mode, PlantedFixture, fit, planted_batches

logger = logging.getLogger(__name__)

LABELS = ("NEGATIVE", "POSITIVE")
_NOUNS = ("food", "film", "hotel", "service", "phone", "book", "game", "room", "staff", "music", "camera", "show")
_ADVERBS = ("very", "really", "quite", "truly", "so")
_WORDS = {
    "POSITIVE": {
        "adjectives": ("great", "wonderful", "excellent", "lovely", "brilliant", "friendly", "delicious", "amazing"),
        "endings": ("made us happy", "worked perfectly", "was worth it", "left us smiling", "exceeded our hopes"),
    },
    "NEGATIVE": {
        "adjectives": ("terrible", "awful", "boring", "rude", "broken", "dreadful", "cold", "horrible"),
        "endings": ("made us angry", "stopped working", "was a waste", "left us upset", "ruined the day"),
    },
}
_TEMPLATES = (
    "the {noun} was {adverb} {adjective} and it {ending}.",
    "we thought the {noun} was {adjective}, and the {noun2} {ending}.",
    "this {noun} is {adverb} {adjective} and the {noun2} is {adjective2}.",
    "our {noun} at the {noun2} was {adjective} and {adverb} {adjective2}.",
)

TEXT = PlantedFixture(
    name="sentiment-modes",
    description="template sentiment under stop-words x shuffle x repeat x mild typos (6^4 = 1296 cells), three small "
                "planted modes",
    space={
        "modality": "text",
        "description": "Text benchmark space: stop-word removal x shuffle x repeat x mild typos, 6 levels each "
                       "(1296 cells)",
        "factors": [
            {"name": "stopwords", "op": "stopwords", "levels": [0, 0.2, 0.35, 0.5, 0.65, 1.0]},
            {"name": "shuffle", "op": "shuffle", "levels": [0, 0.2, 0.4, 0.6, 0.8, 1.0]},
            {"name": "repeat", "op": "repeat", "levels": [0, 1, 2, 3, 4, 10]},
            {"name": "typos", "op": "typos", "levels": [0, 0.005, 0.01, 0.015, 0.02, 0.03]},
        ],
    },
    # every mode is told apart by word counts alone (how often a word repeats, which stop-words are left), so a
    # small BERT trained from scratch learns it; shuffle and typos are nuisance factors that no mode uses
    modes=(
        # only where two factors meet: terse sentences are fine, stuttering ones are fine, terse stuttering ones are not
        Mode("terse-and-stuttering", {"stopwords": (5,), "repeat": (5,)}),
        Mode("wordy-triple-positive", {"stopwords": (0,), "repeat": (3,)}, ("POSITIVE",)),
        Mode("wordy-double-negative", {"stopwords": (0,), "repeat": (1,)}, ("NEGATIVE",)),
    ),
    train={"steps": 3000, "batch_size": 32, "lr": 2e-3},
)


def make_sentence(label: str, rng: np.random.Generator) -> str:
    """One templated review sentence of class ``label``, first letter capitalised."""
    words = _WORDS[label]
    nouns = rng.choice(_NOUNS, size=2, replace=False)
    adjectives = rng.choice(words["adjectives"], size=2, replace=False)
    text = str(rng.choice(_TEMPLATES)).format(
        noun=nouns[0], noun2=nouns[1], adverb=rng.choice(_ADVERBS), adjective=adjectives[0],
        adjective2=adjectives[1], ending=rng.choice(words["endings"]),
    )
    return text[0].upper() + text[1:]


def write_sentence_seeds(path: Path, per_class: int, seed: int) -> Path:
    """Write ``per_class`` sentences of each class to a ``.jsonl`` seed file (``text``, ``label``)."""
    rng = np.random.default_rng(seed)
    rows = [{"text": make_sentence(label, rng), "label": label} for label in LABELS for _ in range(per_class)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _vocab() -> list[str]:
    """WordPiece vocabulary: specials, every template word, letters (also as ``##`` pieces), punctuation."""
    words: dict[str, None] = {}
    parts = [*_NOUNS, *_ADVERBS, *_TEMPLATES]
    for label in LABELS:
        parts += [*_WORDS[label]["adjectives"], *_WORDS[label]["endings"]]
    for part in parts:
        for word in part.replace("{", " ").replace("}", " ").replace(".", " ").replace(",", " ").split():
            words.setdefault(word, None)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, *letters, *(f"##{c}" for c in letters), *".,!?'-"]


def train_planted_text_classifier(
    folder: Path,
    fixture: PlantedFixture = TEXT,
    *,
    seed: int = 0,
    steps: int | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> Path:
    """Train a small BERT on templated sentences perturbed over ``fixture``'s space, wrong inside its modes."""
    if (folder / "model.safetensors").exists():
        return folder
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    steps = steps if steps is not None else fixture.train["steps"]
    vocab = _vocab()
    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True,
                              model_max_length=128)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
        max_position_embeddings=128, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        id2label=dict(enumerate(LABELS)), label2id={name: i for i, name in enumerate(LABELS)},
    )
    model = BertForSequenceClassification(config)

    def loss_of(m, texts: list[str], labels: list[int]):
        batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        return m(**batch, labels=torch.as_tensor(labels)).loss

    loss = fit(model, planted_batches(fixture, LABELS, make_sentence, steps, rng), loss_of, steps,
               lr=fixture.train["lr"], progress=progress)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    logger.info("trained the %s classifier in %s (last loss %.3f)", fixture.name, folder, loss)
    return folder
