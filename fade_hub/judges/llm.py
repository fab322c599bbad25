"""The LLM judge: a chat model reads a rubric, the input, the cell's expected behaviour and the answer, and replies
with a JSON verdict and its reason.

Deterministic: the judge decodes greedily (temperature 0), and its verdicts are cached by a hash of (rubric, judge
model and revision, case) (``fade_hub.judges.cache``), so ``--resume``, a repeated answer and ``fade-hub rejudge``
with the same judge ask nothing again. A reply that is not a verdict (``fade_hub.judges.reply``) is asked for once
more, with the reply shown back and the format restated; a second unreadable reply leaves the answer
``unjudged``: no verdict (``judged`` False), counted, never a pass or a failure. The reason is kept with every
verdict. ``take_usage`` says what the judge cost: requests (with the endpoint's retries and tokens), verdicts
served from the cache, second asks and unjudged answers.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import BadConfig
from ..perturb.expect import Expectation
from ..targets import Prediction, Target
from .base import Judge, JudgeConfig, Verdict
from .cache import VerdictCache, verdict_key
from .llm_backends import LocalChatJudge, RemoteChatJudge, JudgeRemoteConfig
from .reply import Reply, parse_reply
from .rubric import DEFAULT_RUBRICS, Rubric, load_rubric, retry_messages

logger = logging.getLogger(__name__)

INVARIANT = "an answer that passes, as it would for the unperturbed input"
SHOWN_REPLY = 80  # characters of an unreadable reply kept in the record


@dataclass(frozen=True)
class JudgedAnswer:
    """What the judge reads about one answer."""

    prompt: str
    expected: str
    answer: str
    reference: str = ""

    def texts(self) -> tuple[str, str, str, str]:
        """The case as the cache key's parts."""
        return self.prompt, self.expected, self.reference, self.answer


def expected_behaviour(expectation: Expectation) -> str:
    """The cell's expected behaviour in the judge's words."""
    return expectation.describe("the answer to the unperturbed input") if expectation.directional else INVARIANT


def rubric_for(config: JudgeConfig, task: str) -> Rubric:
    """The rubric a config names, else the task's default one."""
    name = config.rubric or DEFAULT_RUBRICS.get(task)
    if name is None:
        raise BadConfig(f"the LLM judge has no default rubric for {task}; pass --judge-rubric FILE")
    return load_rubric(name)


class LLMJudge(Judge):
    """Failure when the judge model answers ``{"verdict": "fail", ...}`` under the rubric (see module doc)."""

    name = "llm"

    @classmethod
    def from_config(cls, config: JudgeConfig, target: Target) -> LLMJudge:
        """The judge of a run on ``target``: its rubric defaults by the target's task."""
        return cls(config, target.task)

    def __init__(self, config: JudgeConfig, task: str, *, probe: bool = True, cache: VerdictCache | None = None) -> None:
        if not (config.llm or config.served.is_remote):
            raise BadConfig("the LLM judge needs --judge-llm MODEL_ID, --judge-endpoint URL or --judge-provider NAME")
        self.rubric = rubric_for(config, task)
        if config.served.is_remote:
            remote = JudgeRemoteConfig(**{**asdict(config.served), "generation_route": "chat"})
            self.backend: LocalChatJudge | RemoteChatJudge = RemoteChatJudge(remote, config.llm, probe=probe)
            self.identity = self.backend.identity
        else:
            self.backend = LocalChatJudge(config.llm, revision=config.loading.revision, device=config.loading.device,
                                          trust_remote_code=config.loading.trust_remote_code)
            self.identity = str(self.backend.model_id)
        self.cache = cache or VerdictCache()
        self.counts: Counter = Counter()
        self.expected = self.rubric.passes

    def _judge(self, seeds: list, inputs: list, predictions: list[Prediction], expectations: list) -> list[Verdict]:
        cases = [JudgedAnswer(str(item), expected_behaviour(expectation), prediction.text,
                      str(getattr(seed, "reference", None) or ""))
                 for seed, item, prediction, expectation in zip(seeds, inputs, predictions, expectations, strict=True)]
        return self.judge_cases(cases)

    def judge_cases(self, cases: Sequence[JudgedAnswer]) -> list[Verdict]:
        """One verdict per case: from the cache, else asked (once more when the reply does not parse)."""
        keys = [verdict_key(self.rubric.sha256, self.identity, self.backend.revision, case.texts()) for case in cases]
        replies: dict[str, Reply] = self.cache.get_many(keys)
        self.counts["cached"] += sum(key in replies for key in keys)
        asking: dict[str, JudgedAnswer] = {}
        for key, case in zip(keys, cases):
            if key not in replies:
                asking.setdefault(key, case)
        unreadable: dict[str, str] = {}
        if asking:
            conversations = {key: self.rubric.messages(c.prompt, c.expected, c.answer, c.reference)
                             for key, c in asking.items()}
            first = dict(zip(conversations, self.backend.complete(list(conversations.values())), strict=True))
            again = {key: retry_messages(conversations[key], text) for key, text in first.items()
                     if parse_reply(text) is None}
            self.counts["asked_again"] += len(again)
            second = dict(zip(again, self.backend.complete(list(again.values())), strict=True)) if again else {}
            fresh = {}
            for key in asking:
                text = second.get(key, first[key])
                reply = parse_reply(text)
                if reply is None:
                    unreadable[key] = text
                else:
                    fresh[key] = reply
            self.cache.put_many(fresh)
            replies.update(fresh)
        verdicts = [self._verdict(replies.get(key), unreadable.get(key, "")) for key in keys]
        self.counts["unjudged"] += sum(v.unjudged for v in verdicts)
        if unreadable:
            logger.warning("the judge's reply to %d answers was not a verdict twice: they are unjudged (neither pass "
                           "nor failure)", len(unreadable))
        return verdicts

    def _verdict(self, reply: Reply | None, unreadable: str) -> Verdict:
        source = f"LLM judge {self.identity}, rubric {self.rubric.name}"
        if reply is None:
            shown = unreadable.strip().replace("\n", " ")[:SHOWN_REPLY]
            return Verdict(False, 0.0, "unjudged", expected_source=source, judged=False, unjudged=True,
                           reason=f"no readable verdict after one retry (last reply: {shown!r})")
        return Verdict(is_failure=reply.failed, severity=float(reply.failed), expected=self.expected,
                       score=float(reply.failed), expected_source=source, reason=reply.reason)

    def take_usage(self) -> dict[str, int]:
        """What the judge cost since the last call: requests and the backend's counts, cache hits, second asks,
        unjudged answers (the counters restart)."""
        used = {**self.backend.take_usage(), **{k: int(self.counts[k]) for k in ("cached", "asked_again", "unjudged")}}
        self.counts.clear()
        return used

    def describe(self) -> dict[str, Any]:
        """Judge model, revision, where it runs, the rubric (name, source, SHA-256, text) and how it decodes."""
        return {"name": self.name, **self.backend.describe(), "rubric": self.rubric.name,
                "rubric_source": self.rubric.source, "rubric_sha256": self.rubric.sha256,
                "rubric_text": self.rubric.to_dict(), "temperature": 0.0, "json_mode": self.backend.json_mode,
                "retries_on_unreadable_reply": 1}

    def close(self) -> None:
        """Release the backend (the HTTP client of a served judge)."""
        self.backend.close()
