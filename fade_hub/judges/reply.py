"""Reading a judge's reply: one JSON object ``{"verdict": "pass" | "fail", "reason": "..."}`` and nothing else.

The parser is strict: the reply must be that object (surrounding white space and one Markdown code fence are
tolerated, since chat models wrap JSON in them), ``verdict`` exactly ``pass`` or ``fail`` (any case), ``reason``
text when given. Anything else is not a verdict: the judge is asked once more, then the answer is ``unjudged``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .rubric import VERDICTS

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class Reply:
    """A judge's readable verdict: failure or not, and its reason."""

    failed: bool
    reason: str


def parse_reply(text: str | None) -> Reply | None:
    """The verdict of a judge's reply, or None when the reply is not exactly one verdict object."""
    if not isinstance(text, str):
        return None
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    verdict, reason = data.get("verdict"), data.get("reason", "")
    if not isinstance(verdict, str) or verdict.strip().lower() not in VERDICTS or not isinstance(reason, str):
        return None
    return Reply(failed=verdict.strip().lower() == "fail", reason=reason.strip())
