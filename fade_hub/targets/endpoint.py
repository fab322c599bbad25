"""How to reach a model fade-hub does not load: an endpoint URL or an Inference Provider, through ``huggingface_hub``.

``--endpoint URL`` calls a server directly: a TGI, vLLM or TEI server, an Inference Endpoint, or any
OpenAI-compatible base URL (ending in ``/v1``). ``--provider NAME`` routes through Hugging Face Inference
Providers. Which credential goes where:

* ``--endpoint-token`` (or ``FADE_HUB_ENDPOINT_TOKEN``) goes to the ``--endpoint`` host, and only there;
* the Hugging Face token (``HF_TOKEN`` or ``hf auth login``) goes to Hugging Face hosts only: an
  ``--endpoint`` on the Hub's host (``HF_ENDPOINT``), an Inference Endpoint (``*.endpoints.huggingface.cloud``)
  or the providers' router (``router.huggingface.co``), and with ``--provider`` (``huggingface_hub`` routes it);
* any other endpoint gets no token (user info in its URL is its own Basic credential), and no credential at
  all goes over plain http to a host other than this machine.

fade-hub never logs or records a credential, and records an endpoint only as ``scheme://host/path`` (no user
info, no query string), since either may carry a secret.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from fade_hub.errors import BadConfig
from fade_hub.config.target import RemoteOptions
from fade_hub.redact import redact_url

logger = logging.getLogger(__name__)

INFO_TIMEOUT_S = 10.0
INFO_MAX_BYTES = 1_000_000
ENDPOINT_TOKEN_ENV = "FADE_HUB_ENDPOINT_TOKEN"
HF_SERVICE_HOSTS = ("router.huggingface.co",)  # besides the Hub's own host and Inference Endpoints
HF_ENDPOINT_SUFFIX = ".endpoints.huggingface.cloud"
SHOWN_CHARS = 200  # of a server's answer, in an error line
HF_AUTH_ADVICE = "set HF_TOKEN or run `hf auth login`"
ENDPOINT_AUTH_ADVICE = (f"pass --endpoint-token TOKEN (or set {ENDPOINT_TOKEN_ENV}); HF_TOKEN goes to Hugging Face "
                        "hosts only")  # fmt: skip
_RESPONSE: ContextVar[Any] = ContextVar("fade_hub_endpoint_response", default=None)  # the request's, per asyncio task


@dataclass
class RemoteConfig(RemoteOptions):
    """A connection to a model served elsewhere: its ``RemoteOptions``, checked, with the token resolved
    (``endpoint_token``, else the variable ``token_env`` names)."""

    token_env: ClassVar[str] = ENDPOINT_TOKEN_ENV  # the variable a token defaults to (a judge's has its own)

    def __post_init__(self) -> None:
        if not (self.endpoint or self.provider):
            raise BadConfig("a remote model needs exactly one of --endpoint URL or --provider NAME")
        self.check()
        self.endpoint_token = self.endpoint_token or os.environ.get(self.token_env) or None
        if self.endpoint:
            check_plain_http(self.endpoint, self.credential is not None)

    @property
    def where(self) -> str:
        """The endpoint (redacted) or the provider, for messages and metadata."""
        return redact_url(self.endpoint) if self.endpoint else f"provider {self.provider}"

    @property
    def credential(self) -> str | None:
        """The bearer token the endpoint gets: ``endpoint_token``, else the Hugging Face token for a Hugging Face host, else
        none (a provider's requests carry what ``huggingface_hub`` gives them)."""
        if self.endpoint_token or not self.endpoint:
            return self.endpoint_token
        if is_hugging_face_url(self.endpoint):
            from huggingface_hub import get_token

            return get_token()
        return None

    @property
    def auth_advice(self) -> str:
        """What to do when the server refuses the credential."""
        if self.endpoint and not is_hugging_face_url(self.endpoint):
            return ENDPOINT_AUTH_ADVICE
        return HF_AUTH_ADVICE

    def uses_chat(self) -> bool:
        """Whether text generation goes through ``chat_completion`` (messages) rather than ``text_generation``."""
        if self.generation_route != "auto":
            return self.generation_route == "chat"
        return self.provider is not None or is_openai_base(self.endpoint or "")


def is_hugging_face_url(url: str) -> bool:
    """Whether a URL is a Hugging Face service, the only hosts the Hugging Face token goes to: the Hub's host
    (``HF_ENDPOINT``), an Inference Endpoint or the providers' router (those two over https)."""
    from huggingface_hub import constants

    parts, hub = urlsplit(url), urlsplit(constants.ENDPOINT)
    if (parts.scheme, parts.hostname, parts.port) == (hub.scheme, hub.hostname, hub.port):
        return True
    host = (parts.hostname or "").lower()
    return parts.scheme == "https" and (host in HF_SERVICE_HOSTS or host.endswith(HF_ENDPOINT_SUFFIX))


def is_loopback(host: str | None) -> bool:
    """Whether a host name or address is this machine."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_plain_http(endpoint: str, with_token: bool) -> None:
    """BadConfig when a credential (a token, or user info in the URL) would go over plain http to another machine."""
    parts = urlsplit(endpoint)
    carried = "a token" if with_token else "the user info in its URL" if parts.username or parts.password else None
    if parts.scheme == "http" and carried and not is_loopback(parts.hostname):
        raise BadConfig(
            f"--endpoint {redact_url(endpoint)} is plain http to another machine, and fade-hub sends no credential "
            f"over it ({carried} would be readable on the way): use https, or drop --endpoint-token / "
            f"{ENDPOINT_TOKEN_ENV} and the URL's user info if the server needs none"
        )


def endpoint_route(url: str, route: str) -> str:
    """``route`` appended to the URL's path, its user info and query kept (e.g. ``/info`` of a server)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + route))


def is_openai_base(url: str) -> bool:
    """Whether a URL is an OpenAI-compatible base URL (its path ends in ``/v1``)."""
    return urlsplit(url).path.rstrip("/").endswith("/v1")


def keep_response(response: Any) -> None:
    """Keep the response to this asyncio task's request (the client's response hook)."""
    _RESPONSE.set(response)


def clear_response() -> None:
    """Forget the response kept for this asyncio task (call before a request)."""
    _RESPONSE.set(None)


def last_response() -> Any:
    """The response to this asyncio task's last request (after ``clear_response``), or None."""
    return _RESPONSE.get()


def describe_response(response: Any) -> str:
    """What a server sent, in one line: status, content type, size and the first characters of the body."""
    body = response.content if response.is_stream_consumed else b""
    text = body[: SHOWN_CHARS * 4].decode("utf-8", errors="replace")  # a character takes at most 4 bytes
    shown = text[:SHOWN_CHARS]
    more = "..." if len(shown) < len(text) or len(body) > SHOWN_CHARS * 4 else ""
    content_type = response.headers.get("content-type") or "no content type"
    return f"HTTP {response.status_code}, {content_type}, {len(body)} bytes: {shown!r}{more}"


def clip(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters (saying how long it was) for an error line."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def check_provider(provider: str, hf_task: str, model_id: str) -> None:
    """BadConfig when ``huggingface_hub`` knows no such provider or the provider does not serve the task."""
    if provider == "auto":
        return
    from huggingface_hub.inference._providers import get_provider_helper

    try:
        get_provider_helper(provider, task=hf_task, model=model_id)  # a table lookup for a named provider
    except ValueError as err:
        raise BadConfig(f"--provider {provider}: {str(err).splitlines()[0]}") from None


def _get_json(url: str, credential: str | None) -> Any:
    """GET a small JSON document within ``INFO_TIMEOUT_S`` (body included), sending ``credential`` only (None on any
    failure: these probes are optional)."""
    from huggingface_hub.utils import build_hf_headers, get_session

    deadline = time.monotonic() + INFO_TIMEOUT_S
    headers = build_hf_headers(token=credential or False)
    try:
        with get_session().stream("GET", url, headers=headers, timeout=INFO_TIMEOUT_S) as response:
            if response.status_code != 200:
                return None
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if time.monotonic() > deadline or len(body) > INFO_MAX_BYTES:
                    raise TimeoutError("too slow or too large")
        return json.loads(body)
    except Exception as err:  # noqa: BLE001 - servers without these routes are normal
        logger.debug("no server info at %s (%s)", redact_url(url), type(err).__name__)
        return None


def served_model_info(endpoint: str, credential: str | None = None) -> dict[str, Any]:
    """What the server says it serves: model id, revision (commit sha), server kind and version, classifier labels.

    TGI and TEI answer ``GET /info``; OpenAI-compatible servers (vLLM, TGI's ``/v1``) list ``GET /v1/models``.
    """
    info: dict[str, Any] = {}
    if is_openai_base(endpoint):
        listing = _get_json(endpoint_route(endpoint, "/models"), credential)
        ids = [str(m.get("id")) for m in (listing or {}).get("data", []) if isinstance(m, dict) and m.get("id")]
        return {"model_ids": ids, "server": "openai-compatible"} if ids else {}
    found = _get_json(endpoint_route(endpoint, "/info"), credential)
    if isinstance(found, dict) and found.get("model_id"):
        info = {"model_id": str(found["model_id"]), "server": "tei" if "model_type" in found else "tgi"}
        if found.get("model_sha"):
            info["revision"] = str(found["model_sha"])
        if found.get("version"):
            info["version"] = str(found["version"])
        classifier = (found.get("model_type") or {}).get("classifier") if isinstance(found.get("model_type"), dict) else None
        if isinstance(classifier, dict) and classifier.get("id2label"):
            info["id2label"] = {int(k): str(v) for k, v in classifier["id2label"].items()}
    return info
