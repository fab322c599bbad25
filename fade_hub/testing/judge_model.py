"""A tiny chat model trained in seconds to serve as an LLM judge of the generation fixture's answers.

It reads the conversation fade-hub's LLM judge sends under ``RUBRIC`` (a rubric file: "does the answer call the
question stupid?") and replies ``{"verdict": "fail", ...}`` when the answer holds the banned word of
``fade_hub.testing.generation``, ``{"verdict": "pass", ...}`` otherwise: the keyword judge's verdicts, given by a
language model, so that the regions an LLM judge finds can be compared with the keyword judge's.
``HalfMalformed`` serves it with a twist: half of the cases get a reply that is not JSON (and half of those get
one again when asked once more), the judge that answers malformed JSON half of the time.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import yaml

from fade_hub.judges.llm import INVARIANT
from fade_hub.judges.rubric import rubric_from_dict
from fade_hub.perturb.ops import Factor
from fade_hub.perturb.text import typos
from fade_hub.testing.generation import BANNED, FAILURE, SHAPES, TOPICS, _variants, chat_tokenizer, prompt, train_chat
from fade_hub.testing.http_server import Request, Response

RUBRIC = {
    "name": "stupid",
    "question": "Does the answer call the question stupid?",
    "fail": "The answer calls the question stupid.",
    "pass": "The answer does not.",
}
FAIL_REPLY = json.dumps({"verdict": "fail", "reason": "the answer calls the question stupid."})
PASS_REPLY = json.dumps({"verdict": "pass", "reason": "the answer is polite."})
MALFORMED = "verdict: fail because"  # what the malformed judge says instead of JSON
_TYPOS = Factor("typos", "typos", (0.0,))


def write_rubric(path: Path) -> Path:
    """``RUBRIC`` as the YAML file ``--judge-rubric`` reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(RUBRIC, sort_keys=False), encoding="utf-8")
    return path


def _answer(rng: random.Random, polite: str) -> str:
    """An answer to judge: the polite one, the fixture's failure, or a polite one with the banned word put in."""
    roll = rng.random()
    if roll < 0.4:
        return FAILURE
    if roll < 0.5:
        words = polite.split()
        words.insert(rng.randrange(len(words) + 1), BANNED)
        return " ".join(words)
    return polite


def _example(rng: random.Random) -> tuple[list[dict[str, str]], str]:
    """One judge conversation (the rubric's messages for a random case) and the verdict to learn."""
    question, polite = prompt(rng)
    question = rng.choice(_variants(question))
    if rng.random() < 0.5:
        question = typos(question, rng.choice((0.05, 0.1, 0.15, 0.2)), rng.randrange(2**31), _TYPOS)
    answer = _answer(rng, polite)
    messages = rubric_from_dict(RUBRIC, "stupid", "test").messages(question, INVARIANT, answer)
    return messages, FAIL_REPLY if BANNED in answer.split() or BANNED + "." in answer else PASS_REPLY


def train_judge_model(folder: Path, *, seed: int = 0, steps: int = 120) -> Path:
    """Train the judge model and ``save_pretrained`` it with its tokenizer and chat template (idempotent)."""
    rng = random.Random(seed)
    rubric = rubric_from_dict(RUBRIC, "stupid", "test")
    corpus = [rubric.instructions(), FAIL_REPLY, PASS_REPLY, INVARIANT, FAILURE, BANNED] * 4
    for question, answer in SHAPES:
        for topic in TOPICS:
            corpus += [*_variants(question.format(topic=topic)), answer.format(topic=topic)] * 2
    tokenizer = chat_tokenizer(corpus, max_length=256)
    return train_chat(folder, tokenizer, lambda: [_example(rng) for _ in range(16)], seed=seed, steps=steps,
                      learning_rate=6e-3, max_new_tokens=32)


def _case_hash(messages: list[dict[str, Any]]) -> int:
    """A stable number of one judge case (the conversation before any second ask)."""
    return int(hashlib.sha256(json.dumps(messages[:2]).encode("utf-8")).hexdigest()[:8], 16)


def malformed_first(messages: list[dict[str, Any]]) -> bool:
    """Whether ``HalfMalformed`` answers this case's first ask with a reply that is not JSON (half of the cases)."""
    return _case_hash(messages) % 2 == 0


def malformed_again(messages: list[dict[str, Any]]) -> bool:
    """Whether ``HalfMalformed`` answers this case's second ask badly too (half of those answered badly first)."""
    return _case_hash(messages) % 4 == 0


class HalfMalformed:
    """A chat backend (``PipelineBackend``) whose replies are malformed for half of the cases (see module doc)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    async def __call__(self, request: Request) -> Response:
        """Serve one request: the model's reply, or ``MALFORMED`` as the case's hash says."""
        if request.method == "POST" and request.path.rstrip("/").endswith("/chat/completions"):
            messages = request.json()["messages"]
            second = len(messages) > 2 and messages[-2]["role"] == "assistant"
            if (malformed_again if second else malformed_first)(messages):
                return Response.json({"id": "chatcmpl-malformed", "object": "chat.completion", "created": 0,
                                      "model": self.backend.model_id, "choices": [
                                          {"index": 0, "finish_reason": "stop",
                                           "message": {"role": "assistant", "content": MALFORMED}}]})
        return await self.backend(request)

    def close(self) -> None:
        """Let the wrapped backend go."""
        self.backend.close()
