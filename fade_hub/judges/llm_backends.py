"""Where an LLM judge runs: a local chat model (transformers, on ``--judge-device``) or a chat endpoint / Inference
Provider (``huggingface_hub``'s ``chat_completion``), both answering whole conversations with text.

A served judge goes through the same ``Dispatcher`` as a remote target (``--concurrency`` requests in flight,
retries of 429/5xx after ``Retry-After`` or a back-off, usage counts) and the same credential rules: the Hugging
Face token goes to Hugging Face hosts only, ``--judge-endpoint-token`` (or ``FADE_HUB_JUDGE_TOKEN``) to
``--judge-endpoint`` only, nothing over plain http to another machine. It is asked for JSON in the server's own
mode (``response_format`` with the verdict's JSON schema: TGI turns it into a grammar, OpenAI-compatible servers
into structured output). Before a run writes anything, ``probe`` sends one small request, so that a refused
credential or a wrong route stops the run at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..redact import redact_url
from ..targets.endpoint import HF_AUTH_ADVICE, RemoteConfig, is_hugging_face_url, served_model_info
from .rubric import REPLY_FORMAT, VERDICT_SCHEMA


MAX_NEW_TOKENS = 96  # a verdict and a one-sentence reason
JUDGE_TOKEN_ENV = "FADE_HUB_JUDGE_TOKEN"
JUDGE_AUTH_ADVICE = (f"pass --judge-endpoint-token TOKEN (or set {JUDGE_TOKEN_ENV}); HF_TOKEN goes to Hugging Face "
                     "hosts only")  # fmt: skip
RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "verdict", "schema": VERDICT_SCHEMA, "strict": True}}
PROBE = [{"role": "user", "content": f"Is this line readable? {REPLY_FORMAT}"}]


class LocalChatJudge:
    """A chat model loaded here: greedy replies, batched, through its own chat template."""

    json_mode = "strict parser (local greedy decoding)"

    def __init__(self, model_id: str, *, revision: str | None, device: str | None, trust_remote_code: bool,
                 batch_size: int = 8) -> None:  # fmt: skip
        from ..targets import load_target

        self.target = load_target(model_id, task="text-generation", revision=revision, device=device,
                                  trust_remote_code=trust_remote_code, batch_size=batch_size,
                                  generation_kwargs={"max_new_tokens": MAX_NEW_TOKENS, "do_sample": False})
        if not self.target.uses_chat_template:
            from ..errors import BadConfig

            raise BadConfig(f"judge model {model_id} has no chat template: --judge-llm needs a chat model")
        self.model_id, self.revision = self.target.model_id, self.target.commit_sha
        self.requests = 0

    def complete(self, conversations: list[list[dict[str, str]]]) -> list[str]:
        """The judge's reply to each conversation."""
        self.requests += len(conversations)
        return self.target.chat(conversations)

    def take_usage(self) -> dict[str, int]:
        """Replies generated since the last call."""
        used, self.requests = self.requests, 0
        return {"requests": used}

    def describe(self) -> dict[str, Any]:
        """Model, commit and device."""
        return {"model_id": self.model_id, "commit_sha": self.revision, "device": self.target.device}

    def close(self) -> None:
        """Nothing to release besides the weights."""


class RemoteChatJudge:
    """A chat model served elsewhere, asked through ``chat_completion`` at temperature 0 in JSON mode."""

    json_mode = "response_format json_schema"

    def __init__(self, remote: RemoteConfig, model_id: str | None, *, probe: bool = True) -> None:
        from ..targets.client import make_client
        from ..targets.dispatch import Dispatcher

        self.remote = remote
        self.served = served_model_info(remote.endpoint, remote.credential) if remote.endpoint else {}
        ids = self.served.get("model_ids") or []
        self.model_id = model_id or self.served.get("model_id") or (ids[0] if len(ids) == 1 else None)
        self.revision = self.served.get("revision")
        self.client = make_client(model_id or "", remote)
        advice = JUDGE_AUTH_ADVICE if remote.endpoint and not is_hugging_face_url(remote.endpoint) else HF_AUTH_ADVICE
        self.dispatcher = Dispatcher(self._ask, where=f"judge {remote.where}", concurrency=remote.concurrency,
                                     max_retries=remote.max_retries, timeout=remote.request_timeout, auth_advice=advice)
        if probe:
            self.complete([PROBE])

    @property
    def identity(self) -> str:
        """Who answers, for the cache key: the model id, else the endpoint (redacted)."""
        return self.model_id or redact_url(self.remote.endpoint or "")

    async def _ask(self, messages: list[dict[str, str]]) -> str:
        out = await self.client.chat_completion(messages, model=self.model_id, max_tokens=MAX_NEW_TOKENS,
                                                temperature=0.0, seed=0, response_format=RESPONSE_FORMAT)
        if out.usage is not None:
            self.dispatcher.usage.add(prompt_tokens=out.usage.prompt_tokens,
                                      completion_tokens=out.usage.completion_tokens)
        content = out.choices[0].message.content if out.choices else None
        return content if isinstance(content, str) else ""

    def complete(self, conversations: list[list[dict[str, str]]]) -> list[str]:
        """The judge's reply to each conversation (EndpointFailed when the server keeps failing)."""
        return self.dispatcher.run(conversations)

    def take_usage(self) -> dict[str, int]:
        """Requests, retries and tokens since the last call."""
        from ..targets.dispatch import Usage

        used, self.dispatcher.usage = self.dispatcher.usage, Usage()
        return used.as_dict()

    def describe(self) -> dict[str, Any]:
        """Served model, revision, where it is served (redacted) and the request settings."""
        return {"model_id": self.model_id, "commit_sha": self.revision,
                "endpoint": redact_url(self.remote.endpoint) if self.remote.endpoint else None,
                "provider": self.remote.provider, "served_model": dict(self.served),
                "concurrency": self.remote.concurrency, "max_retries": self.remote.max_retries}

    def close(self) -> None:
        """Close the HTTP client and stop the request loop."""
        try:
            self.dispatcher.call(self.client.close())
        finally:
            self.dispatcher.close()


@dataclass
class JudgeRemoteConfig(RemoteConfig):
    """A served judge's RemoteConfig: its token defaults to ``FADE_HUB_JUDGE_TOKEN``, never to the model's."""

    token_env: ClassVar[str] = JUDGE_TOKEN_ENV
