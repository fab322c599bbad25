"""Small sentiment classifiers trained in seconds on generated sentences, for tests and benchmarks.

Sentences read ``the {noun} is {adjective}.`` in a few shapes; the label is the adjective's polarity
(POSITIVE / NEGATIVE), flipped when the sentence is negated (``the show is not good.`` is NEGATIVE).
``train_sentiment_classifier(folder, negation=True)`` trains on both, so it reads negation correctly;
with ``negation=False`` it never sees a negated sentence and ignores negation. Training also shows typos,
and the tokenizer lower-cases, so that those invariant ops do not make either model fail. With
``cased=True`` the tokenizer keeps case and training shows lower case only: the model really fails on upper
and toggled case, a label-preserving perturbation (the fixture that mitigation fades).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from fade_hub.perturb.ops import Factor
from fade_hub.perturb.text import negate, typos
from fade_hub.testing.rows import write_rows

LABELS = ("NEGATIVE", "POSITIVE")
NOUNS = (
    "show", "film", "meal", "book", "hotel", "phone", "song", "game", "trip", "class",
    "camera", "room", "story", "service", "coffee", "party", "team", "album", "app", "car",
)
ADJECTIVES = {
    "POSITIVE": ("good", "great", "wonderful", "excellent", "lovely", "brilliant", "pleasant", "superb"),
    "NEGATIVE": ("bad", "awful", "terrible", "horrible", "boring", "dreadful", "poor", "nasty"),
}
TEMPLATES = ("the {noun} is {adjective}.", "this {noun} was {adjective}.", "our {noun} is really {adjective}.",
             "that {noun} was quite {adjective}.")
_TYPO_RATES = (0.0, 0.0, 0.05, 0.1, 0.2)
_NEGATE = Factor("negate", "negate", (False, True))
_TYPOS = Factor("typos", "typos", (0.0,))


def sentence(rng: random.Random) -> tuple[str, str]:
    """A random affirmative sentence and its label."""
    label = rng.choice(LABELS)
    text = rng.choice(TEMPLATES).format(noun=rng.choice(NOUNS), adjective=rng.choice(ADJECTIVES[label]))
    return text, label


def flipped(label: str) -> str:
    """The other polarity."""
    return LABELS[1 - LABELS.index(label)]


def write_seeds(path: Path, count: int, seed: int = 0, avoid: Sequence[Path] | None = None) -> Path:
    """``count`` labelled affirmative sentences as ``.jsonl`` (text, label), the layout ``--seeds`` reads; held-out
    sentences ``avoid`` the seed files they must not overlap (``write_rows``)."""
    return write_rows(path, lambda rng: dict(zip(("text", "label"), sentence(rng))), count, seed, avoid)


def _vocab(cased: bool) -> list[str]:
    """Whole words of the grammar (also capitalised and upper-cased when ``cased``), then single characters and
    their ``##`` continuations."""
    words = {word for template in TEMPLATES for word in template.replace(".", " ").split() if "{" not in word}
    words |= set(NOUNS) | {adj for group in ADJECTIVES.values() for adj in group} | {"not", "cannot"}
    if cased:
        words |= {word.capitalize() for word in words} | {word.upper() for word in words}
    chars = "abcdefghijklmnopqrstuvwxyz" + ("ABCDEFGHIJKLMNOPQRSTUVWXYZ" if cased else "") + ".,!?'"
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(words), *chars, *(f"##{c}" for c in chars)]


def _example(rng: random.Random, negation: bool) -> tuple[str, int]:
    text, label = sentence(rng)
    if negation and rng.random() < 0.5:
        text, label = negate(text, True, 0, _NEGATE), flipped(label)
    rate = rng.choice(_TYPO_RATES)
    if rate:
        text = typos(text, rate, rng.randrange(2**31), _TYPOS)
    return text, LABELS.index(label)


def train_sentiment_classifier(folder: Path, *, negation: bool = True, cased: bool = False, seed: int = 0,
                               steps: int | None = None) -> Path:
    """Train a tiny BERT sentiment classifier and ``save_pretrained`` it with its tokenizer (idempotent)."""
    if (folder / "model.safetensors").exists():
        return folder
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    torch.manual_seed(seed)
    rng = random.Random(seed)
    steps = steps or (600 if negation else 300)  # reading negation is the harder lesson
    vocab = _vocab(cased)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"), do_lower_case=not cased, model_max_length=64)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
        max_position_embeddings=64, id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)},
    )
    model = BertForSequenceClassification(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01)
    model.train()
    for _ in range(steps):
        texts, labels = zip(*(_example(rng, negation) for _ in range(32)))
        batch = tokenizer(list(texts), padding=True, return_tensors="pt")
        loss = model(**batch, labels=torch.tensor(labels)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
