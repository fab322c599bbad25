"""The suite's trained fixture models, shipped as bytes under ``tests/data/models``, and the command that rebuilds them.

Training them took about two and a half minutes of every run's slow tier (the drawing pipeline alone 77 s), on every
run, and a recipe trained on another CPU can give other weights. Each shipped folder holds ``fingerprint.txt``: a hash
of its recipe (the builder, its arguments and the source files it trains from). A folder whose fingerprint no longer
matches (its sources changed) is not used: the fixture trains the model in the session instead, as before, and
``tests/test_shipped_models.py`` fails with the command that rebuilds it::

    python tests/shipped_models.py [NAME ...]

(every model without a name; one thread, as the suite trains and runs them).
"""

from __future__ import annotations

import hashlib
import importlib
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parents[1] / "fade_hub"
SHIPPED = Path(__file__).resolve().parent / "data" / "models"
FINGERPRINT = "fingerprint.txt"


@dataclass(frozen=True)
class Recipe:
    """How a fixture model is trained: ``builder`` (``module:function``) called with the folder and ``kwargs``, from
    ``sources`` (files under ``fade_hub``: the builder's module and what makes its training data)."""

    builder: str
    sources: tuple[str, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """A hash of the builder, its arguments and its sources' bytes."""
        digest = hashlib.sha256(f"{self.builder} {sorted(self.kwargs.items())!r}".encode())
        for source in self.sources:
            digest.update(source.encode() + b"\0" + (PACKAGE / source).read_bytes())
        return digest.hexdigest()

    def build(self, folder: Path) -> Path:
        """Train the model into ``folder`` (on this process's threads)."""
        module, function = self.builder.split(":")
        return getattr(importlib.import_module(module), function)(folder, **self.kwargs)


_CHAT = ("testing/generation.py", "testing/fit.py", "testing/rows.py", "perturb/text.py", "perturb/ops.py")
_SENTIMENT = ("testing/sentiment.py", "testing/rows.py", "perturb/text.py", "perturb/ops.py")
RECIPES = {
    "drawing": Recipe("fade_hub.testing.drawing:train_drawing_pipeline", ("testing/drawing.py", "demo/shapes.py")),
    "chat-typos": Recipe("fade_hub.testing.generation:train_chat_model", _CHAT),
    "chat-typos-sampled": Recipe("fade_hub.testing.generation:train_chat_model", _CHAT, {"failure_rate": 0.3}),
    "judge": Recipe("fade_hub.testing.judge_model:train_judge_model",
                    ("testing/judge_model.py", *_CHAT, "judges/llm.py", "judges/rubric.py")),
    "summarizer-upper": Recipe("fade_hub.testing.summaries:train_summarizer",
                               ("testing/summaries.py", "testing/fit.py", "testing/rows.py")),
    "sentiment-cased": Recipe("fade_hub.testing.sentiment:train_sentiment_classifier", _SENTIMENT,
                              {"negation": False, "cased": True}),
    "sentiment-reads-negation": Recipe("fade_hub.testing.sentiment:train_sentiment_classifier", _SENTIMENT,
                                       {"negation": True}),
    "sentiment-ignores-negation": Recipe("fade_hub.testing.sentiment:train_sentiment_classifier", _SENTIMENT,
                                         {"negation": False}),
}


def fresh(name: str) -> Path | None:
    """The shipped folder of model ``name`` when its fingerprint matches its recipe now, else None."""
    folder = SHIPPED / name
    stamp = folder / FINGERPRINT
    if stamp.is_file() and stamp.read_text().strip() == RECIPES[name].fingerprint():
        return folder
    return None


def place(name: str, folder: Path) -> Path:
    """Model ``name`` in ``folder``: a copy of the shipped bytes when they are fresh, else trained there."""
    shipped = fresh(name)
    if shipped is None:
        return RECIPES[name].build(folder)
    shutil.copytree(shipped, folder, ignore=shutil.ignore_patterns(FINGERPRINT))
    return folder


def rebuild(name: str) -> Path:
    """Train model ``name`` anew on one thread and replace its shipped folder, fingerprint included."""
    import torch

    torch.set_num_threads(1)
    SHIPPED.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=SHIPPED) as staging:
        built = RECIPES[name].build(Path(staging) / name)
        (built / FINGERPRINT).write_text(RECIPES[name].fingerprint() + "\n")
        shutil.rmtree(SHIPPED / name, ignore_errors=True)
        built.rename(SHIPPED / name)
    return SHIPPED / name


if __name__ == "__main__":
    names = sys.argv[1:] or list(RECIPES)
    unknown = sorted(set(names) - set(RECIPES))
    if unknown:
        sys.exit(f"unknown fixture model(s) {unknown}; known: {sorted(RECIPES)}")
    for model in names:
        print(f"{model}: {rebuild(model)}")
