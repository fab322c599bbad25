"""Keyword / regex judge for generated text: a match is a failure of severity 1."""

from __future__ import annotations

import re
from typing import Any

from fade_hub.errors import BadConfig
from fade_hub.judges.base import Judge, Verdict
from fade_hub.targets import Prediction


def keyword_pattern(keywords: list[str]) -> re.Pattern[str]:
    """A case-insensitive pattern matching any keyword as a whole word."""
    alternatives = "|".join(re.escape(word) for word in keywords)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


class PatternJudge(Judge):
    """Failure when the output contains one of the keywords (whole word, any case) or matches the regex."""

    @classmethod
    def from_config(cls, config, target) -> PatternJudge:
        """The config's keywords and regex."""
        return cls(config.keywords, config.regex)

    def __init__(self, keywords: list[str], regex: str | None) -> None:
        self.keywords = [word.strip() for word in keywords if word.strip()]
        self.regex = regex
        if not self.keywords and not regex:
            raise BadConfig("the keyword judge needs --judge-keywords WORD,... or --judge-regex PATTERN")
        self.patterns = [keyword_pattern(self.keywords)] if self.keywords else []
        if regex:
            try:
                self.patterns.append(re.compile(regex))
            except re.error as err:
                raise BadConfig(f"--judge-regex {regex!r} is not a valid regular expression: {err}") from err
        self.name = "+".join(n for n, on in (("keywords", self.keywords), ("regex", regex)) if on)
        shown = ", ".join(self.keywords + ([f"/{regex}/"] if regex else []))
        self.expected = f"no match for {shown}"

    def _judge(self, seeds: list, inputs: list, predictions: list[Prediction], expectations: list) -> list[Verdict]:
        verdicts = []
        for prediction in predictions:
            hit = any(pattern.search(prediction.text) for pattern in self.patterns)
            verdicts.append(Verdict(is_failure=hit, severity=float(hit), expected=self.expected, score=float(hit),
                                    expected_source="no banned pattern"))
        return verdicts

    def describe(self) -> dict[str, Any]:
        """Judge name, keywords and regex."""
        return {"name": self.name, "keywords": list(self.keywords), "regex": self.regex}
