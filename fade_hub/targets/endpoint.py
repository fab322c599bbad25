"""How to reach a model fade-hub does not load: an endpoint URL or an Inference Provider, through ``huggingface_hub``.

``--endpoint URL`` calls a server directly: a TGI, vLLM or TEI server, an Inference Endpoint, or any
OpenAI-compatible base URL (ending in ``/v1``). ``--provider NAME`` routes through Hugging Face Inference
Providers. The token is whatever ``huggingface_hub`` finds (``HF_TOKEN`` or ``hf auth login``); fade-hub
never passes, logs or records it, and records an endpoint only as ``scheme://host/path`` (no user info,
no query string), since either may carry a secret.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fade_hub.choices import GENERATION_ROUTES
from fade_hub.errors import BadConfig

logger = logging.getLogger(__name__)

INFO_TIMEOUT_S = 10.0


@dataclass
class RemoteConfig:
    """Where the model is served and how hard to push it: the options of a remote target besides the model id."""

    endpoint: str | None = None
    provider: str | None = None
    concurrency: int = 8
    max_retries: int = 5
    timeout: float = 120.0
    labels: list[str] = field(default_factory=list)
    generation_route: str = "auto"

    def __post_init__(self) -> None:
        if bool(self.endpoint) == bool(self.provider):
            raise BadConfig("a remote model needs exactly one of --endpoint URL or --provider NAME")
        if self.endpoint and urlsplit(self.endpoint).scheme not in ("http", "https"):
            raise BadConfig(f"--endpoint {redact_url(self.endpoint)!r} is not an http(s) URL")
        if self.concurrency < 1 or self.max_retries < 0 or not self.timeout > 0:
            raise BadConfig("--concurrency must be >= 1, --max-retries >= 0 and --request-timeout > 0")
        if self.generation_route not in GENERATION_ROUTES:
            raise BadConfig(f"--generation-route must be one of {', '.join(GENERATION_ROUTES)}")

    @property
    def where(self) -> str:
        """The endpoint (redacted) or the provider, for messages and metadata."""
        return redact_url(self.endpoint) if self.endpoint else f"provider {self.provider}"

    def uses_chat(self) -> bool:
        """Whether text generation goes through ``chat_completion`` (messages) rather than ``text_generation``."""
        if self.generation_route != "auto":
            return self.generation_route == "chat"
        return self.provider is not None or is_openai_base(self.endpoint or "")


def redact_url(url: str) -> str:
    """``scheme://host[:port]/path`` of a URL: user info, query string and fragment dropped (they may hold secrets)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def endpoint_route(url: str, route: str) -> str:
    """``route`` appended to the URL's path, its user info and query kept (e.g. ``/info`` of a server)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + route))


def is_openai_base(url: str) -> bool:
    """Whether a URL is an OpenAI-compatible base URL (its path ends in ``/v1``)."""
    return urlsplit(url).path.rstrip("/").endswith("/v1")


def make_client(model_id: str, remote: RemoteConfig) -> Any:
    """The ``AsyncInferenceClient`` of a remote target: bound to the endpoint URL, or to the model and provider."""
    from huggingface_hub import AsyncInferenceClient

    if remote.endpoint:
        return AsyncInferenceClient(base_url=remote.endpoint, timeout=remote.timeout)
    return AsyncInferenceClient(model=model_id, provider=remote.provider, timeout=remote.timeout)


def check_provider(provider: str, hf_task: str, model_id: str) -> None:
    """BadConfig when ``huggingface_hub`` knows no such provider or the provider does not serve the task."""
    if provider == "auto":
        return
    from huggingface_hub.inference._providers import get_provider_helper

    try:
        get_provider_helper(provider, task=hf_task, model=model_id)  # a table lookup for a named provider
    except ValueError as err:
        raise BadConfig(f"--provider {provider}: {str(err).splitlines()[0]}") from None


def _get_json(url: str) -> Any:
    """GET a JSON document with the user's Hugging Face headers (None on any failure: these probes are optional)."""
    from huggingface_hub.utils import build_hf_headers, get_session

    try:
        response = get_session().get(url, headers=build_hf_headers(), timeout=INFO_TIMEOUT_S)
        return response.json() if response.status_code == 200 else None
    except Exception as err:  # noqa: BLE001 - servers without these routes are normal
        logger.debug("no server info at %s (%s)", redact_url(url), type(err).__name__)
        return None


def served_model_info(endpoint: str) -> dict[str, Any]:
    """What the server says it serves: model id, revision (commit sha), server kind and version, classifier labels.

    TGI and TEI answer ``GET /info``; OpenAI-compatible servers (vLLM, TGI's ``/v1``) list ``GET /v1/models``.
    """
    info: dict[str, Any] = {}
    if is_openai_base(endpoint):
        listing = _get_json(endpoint_route(endpoint, "/models"))
        ids = [str(m.get("id")) for m in (listing or {}).get("data", []) if isinstance(m, dict) and m.get("id")]
        return {"model_ids": ids, "server": "openai-compatible"} if ids else {}
    found = _get_json(endpoint_route(endpoint, "/info"))
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
