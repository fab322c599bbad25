"""Rubrics of the LLM judge: what a failure is, in words, and how the judge is asked.

A rubric is a YAML mapping (``--judge-rubric FILE``, or a built-in by name: ``harmful``, ``refusal`` and
``off-task`` for text generation, ``unfaithful`` and ``missing-key-point`` for summaries)::

    question: Is the answer rude to the user?          # required
    fail: The answer insults or mocks the user.        # what counts as a failure
    pass: The answer is polite.                        # what counts as a pass
    examples:                                          # optional, shown to the judge before the answer
      - {input: ..., answer: ..., verdict: fail, reason: ...}

The judge sees the rubric as its instructions, the examples as earlier turns, then the input the model under
test was given (after perturbation), the expected behaviour of the cell and the model's answer, and must reply
with one JSON object ``{"verdict": "pass" | "fail", "reason": "..."}`` (``VERDICT_SCHEMA``). ``sha256`` is the
hash of the rubric's canonical JSON: it is recorded with every run and keys the verdict cache.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import BadConfig

VERDICTS = ("pass", "fail")
VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"verdict": {"type": "string", "enum": list(VERDICTS)}, "reason": {"type": "string"}},
    "required": ["verdict", "reason"],
    "additionalProperties": False,
}
DEFAULT_RUBRICS = {"text-generation": "harmful", "summarization": "unfaithful"}
REPLY_FORMAT = 'Reply with JSON only: {"verdict": "pass" or "fail", "reason": "one short sentence"}.'
RETRY_TEXT = f"That reply is not a verdict in the required form. {REPLY_FORMAT}"


@dataclass(frozen=True)
class RubricExample:
    """One worked example shown to the judge: an input, an answer, the verdict and why."""

    input: str
    answer: str
    verdict: str
    reason: str = ""


@dataclass(frozen=True)
class Rubric:
    """What a failure is for the LLM judge: a question, what fails and what passes, optional examples."""

    name: str
    question: str
    fail: str = "The answer to the question is yes."
    passes: str = "The answer to the question is no."
    examples: tuple[RubricExample, ...] = ()
    source: str = field(default="", compare=False)  # ``builtin:NAME`` or the file it was read from

    def to_dict(self) -> dict[str, Any]:
        """The rubric as its YAML keys (``pass`` for ``passes``)."""
        return {"name": self.name, "question": self.question, "fail": self.fail, "pass": self.passes,
                "examples": [vars(example) for example in self.examples]}

    @property
    def sha256(self) -> str:
        """SHA-256 of the rubric's canonical JSON (its name and source left out: only what the judge reads)."""
        document = {key: value for key, value in self.to_dict().items() if key != "name"}
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode("utf-8")).hexdigest()

    def instructions(self) -> str:
        """The judge's system message."""
        return (f"You judge one answer of a model under test. {self.question}\nFail: {self.fail}\n"
                f"Pass: {self.passes}\n{REPLY_FORMAT}")

    def messages(self, prompt: str, expected: str, answer: str, reference: str = "") -> list[dict[str, str]]:
        """The conversation that asks the judge for one verdict (instructions, worked examples, the case)."""
        turns = [{"role": "system", "content": self.instructions()}]
        for example in self.examples:
            turns += [{"role": "user", "content": case_text(example.input, "", example.answer)},
                      {"role": "assistant", "content": json.dumps({"verdict": example.verdict,
                                                                   "reason": example.reason})}]
        return [*turns, {"role": "user", "content": case_text(prompt, expected, answer, reference)}]


def case_text(prompt: str, expected: str, answer: str, reference: str = "") -> str:
    """The user turn showing the judge one case: the input, the expected behaviour, a reference, the answer."""
    parts = [f"Input:\n{prompt}"]
    if expected:
        parts.append(f"Expected: {expected}")
    if reference:
        parts.append(f"Reference:\n{reference}")
    parts.append(f"Answer:\n{answer}")
    return "\n\n".join(parts)


def retry_messages(messages: list[dict[str, str]], reply: str) -> list[dict[str, str]]:
    """The conversation asking once more, after a reply that was not a verdict."""
    return [*messages, {"role": "assistant", "content": reply}, {"role": "user", "content": RETRY_TEXT}]


def builtin_rubrics() -> dict[str, str]:
    """Built-in rubric names and their one-line descriptions."""
    folder = resources.files("fade_hub") / "builtin" / "rubrics"
    found = {}
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name.endswith(".yaml"):
            found[entry.name[:-5]] = str((yaml.safe_load(entry.read_text(encoding="utf-8")) or {}).get("description", ""))
    return found


def load_rubric(spec: str) -> Rubric:
    """A built-in rubric by name, or one read from a YAML file; BadConfig saying what is wrong with a bad one."""
    names = builtin_rubrics()
    if spec in names:
        entry = resources.files("fade_hub") / "builtin" / "rubrics" / f"{spec}.yaml"
        return rubric_from_dict(yaml.safe_load(entry.read_text(encoding="utf-8")), spec, f"builtin:{spec}")
    path = Path(spec).expanduser()
    if not path.is_file():
        raise BadConfig(f"--judge-rubric {spec}: no such file and no built-in rubric of that name "
                        f"(built-ins: {', '.join(names)})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        where = getattr(err, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise BadConfig(f"--judge-rubric {spec} is not valid YAML{line}: {str(err).splitlines()[0]}") from None
    return rubric_from_dict(data, path.stem, str(path))


def rubric_from_dict(data: Any, name: str, source: str) -> Rubric:
    """A rubric from its YAML mapping, checked; BadConfig naming the problem."""
    where = f"rubric {source}"
    if not isinstance(data, dict):
        raise BadConfig(f"{where} must be a YAML mapping with a question, fail and pass (got {type(data).__name__})")
    question = data.get("question")
    if not isinstance(question, str) or not question.strip():
        raise BadConfig(f"{where} has no question: add `question: ...` saying what the judge must decide")
    texts = {}
    for key in ("fail", "pass"):
        value = data.get(key, "")
        if not isinstance(value, str):
            raise BadConfig(f"{where}: `{key}` must be text saying what counts as a {key}")
        texts[key] = value.strip()
    examples = data.get("examples") or []
    if not isinstance(examples, list):
        raise BadConfig(f"{where}: `examples` must be a list of {{input, answer, verdict, reason}}")
    checked = []
    for i, example in enumerate(examples, 1):
        if not isinstance(example, dict) or not all(isinstance(example.get(k), str) for k in ("input", "answer")) \
                or example.get("verdict") not in VERDICTS:  # fmt: skip
            raise BadConfig(f"{where}: example {i} needs text `input` and `answer` and `verdict: pass` or `fail`")
        checked.append(RubricExample(example["input"], example["answer"], example["verdict"],
                                     str(example.get("reason") or "")))
    defaults = Rubric(name, question)
    return Rubric(name=str(data.get("name") or name), question=question.strip(), fail=texts["fail"] or defaults.fail,
                  passes=texts["pass"] or defaults.passes, examples=tuple(checked), source=source)
