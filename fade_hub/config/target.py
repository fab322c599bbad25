"""The options of the model under test: how it is loaded and prompted (``TargetOptions``) and where it is served when
it is not loaded here (``RemoteOptions``); sections of ``ExploreConfig``, and the base of the runtime configs of the
targets (``TargetConfig``, ``RemoteConfig``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fade_hub.choices import DTYPE_CHOICES, GENERATION_ROUTES
from fade_hub.errors import BadConfig
from fade_hub.options import check_ranges, option
from fade_hub.redact import redact_url
from fade_hub.tasks import TASK_NAMES

MODEL_GROUP = "model"
REMOTE_GROUP = "model served elsewhere (an endpoint URL or an Inference Provider; nothing is downloaded)"


@dataclass
class TargetOptions:
    """How the model under test is loaded, batched and prompted."""

    task: str | None = option(None, group=MODEL_GROUP, choices=TASK_NAMES,
                              help="Override the task detected from the model's metadata.")
    revision: str | None = option(None, group=MODEL_GROUP,
                                  help="Model branch, tag or commit sha (the resolved sha is recorded).")
    device: str | None = option(None, group=MODEL_GROUP, help="auto, cpu, cuda, cuda:N or mps. auto (the default) "
                                "picks the best device and, when the model does not fit that GPU, spreads it over the "
                                "GPUs and CPU memory with accelerate (device_map='auto'); a named device is used as "
                                "given.")
    dtype: str | None = option(None, group=MODEL_GROUP, choices=DTYPE_CHOICES, help="Weights dtype: auto (the "
                               "checkpoint's), float16, bfloat16 or float32 (default: float32).")
    trust_remote_code: bool = option(False, group=MODEL_GROUP, help="Allow the model's own Python code to run (off "
                                     "by default: only for models you trust). Also allows --allow-user-code.")
    allow_user_code: bool = option(False, group=MODEL_GROUP, help="Import your own Python named by the concept space "
                                   "(op: package.module:function) or by --judge package.module:Class.")
    batch_size: int | str = option(16, group=MODEL_GROUP, low=1, auto=True, help="Inputs per model forward pass, or "
                                   "auto: the largest batch that fits the device (halved on out-of-memory). With "
                                   "--endpoint/--provider: queries handed to the endpoint at once; 4 x --concurrency "
                                   "or more keeps the requests flowing.")
    max_new_tokens: int | None = option(None, group=MODEL_GROUP, low=1,
                                        help="Generation length for text-generation and summarization.")
    num_inference_steps: int | None = option(None, group=MODEL_GROUP, low=1,
                                             help="Denoising steps for text-to-image.")
    system_prompt: str | None = option(None, group=MODEL_GROUP, metavar="TEXT", help="Text generation: a system "
                                       "message sent before every prompt through the model's chat template (prepended "
                                       "as plain text when the model has none).")
    raw_prompts: bool = option(False, group=MODEL_GROUP, help="Text generation: send prompts as plain text, not "
                               "through the model's chat template (used by default when the tokenizer has one).")
    sampling: bool = option(False, group=MODEL_GROUP, help="Text generation: sample answers as deployed "
                            "(--temperature, --top-p) instead of greedily; each (cell, seed) pair then stands for the "
                            "share of its --samples-per-query answers that failed.")
    temperature: float = option(1.0, group=MODEL_GROUP, low=0.0, low_open=True, help="With --sampling: temperature.")
    top_p: float = option(1.0, group=MODEL_GROUP, low=0.0, high=1.0, low_open=True,
                          help="With --sampling: nucleus top-p.")
    samples_per_query: int = option(1, group=MODEL_GROUP, low=1, help="With --sampling: answers asked per (cell, "
                                    "seed) pair; all of them count as one seed, failing on the share of them that "
                                    "fail.")

    def check(self) -> None:
        """BadConfig on options that contradict each other."""
        if self.dtype is not None and self.dtype not in DTYPE_CHOICES:
            raise BadConfig(f"dtype {self.dtype!r} not supported; use one of {', '.join(DTYPE_CHOICES)}")
        if self.samples_per_query > 1 and not self.sampling:
            raise BadConfig(f"--samples-per-query {self.samples_per_query} asks a greedy model the same question "
                            "again: pass --sampling")

    def generation(self) -> dict[str, Any] | None:
        """The generation settings these options give the target (None: the target's defaults); ``--sampling``
        turns on ``do_sample`` with its temperature and top-p."""
        settings: dict[str, Any] = {
            key: value for key, value in (("max_new_tokens", self.max_new_tokens),
                                          ("num_inference_steps", self.num_inference_steps)) if value is not None
        }
        if self.sampling:
            settings.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
        return settings or None

    @property
    def user_code_allowed(self) -> bool:
        """Whether user Python named by the space or the judge may be imported."""
        return self.allow_user_code or self.trust_remote_code


@dataclass
class RemoteOptions:
    """Where a model that is not loaded here is served, and how hard to push it."""

    endpoint: str | None = option(None, group=REMOTE_GROUP, metavar="URL", help="Query MODEL at this URL instead of "
                                  "loading it: a TGI, vLLM or TEI server, an Inference Endpoint, or an "
                                  "OpenAI-compatible base URL ending in /v1. Recorded without user info or query.")
    endpoint_token: str | None = option(None, group=REMOTE_GROUP, metavar="TOKEN", secret=True, help="Bearer token sent to "
                                        "--endpoint and nowhere else (default: $FADE_HUB_ENDPOINT_TOKEN, which keeps it "
                                        "out of the process list); never recorded. Without it an endpoint gets "
                                        "HF_TOKEN only if it is a Hugging Face host (the Hub at HF_ENDPOINT, "
                                        "*.endpoints.huggingface.cloud, router.huggingface.co), else no token; "
                                        "--provider uses HF_TOKEN. No token goes over plain http to another machine.")
    provider: str | None = option(None, group=REMOTE_GROUP, metavar="NAME", help="Query MODEL through this Hugging "
                                  "Face Inference Provider (e.g. together, fal-ai, hf-inference, or auto), with "
                                  "HF_TOKEN.")
    concurrency: int = option(8, group=REMOTE_GROUP, low=1, help="Requests in flight at once.")
    max_retries: int = option(5, group=REMOTE_GROUP, low=0, help="Retries of a request answered 429/5xx, timed out "
                              "or dropped (after Retry-After, else an exponential back-off) before the run stops; "
                              "answered queries are kept for --resume.")
    request_timeout: float = option(120.0, group=REMOTE_GROUP, low=0.0, low_open=True, help="Seconds one answer may "
                                    "take, body included (per attempt).")
    labels: list[str] = option(group=REMOTE_GROUP, csv=True, default_factory=list, help="A remote classifier's class "
                               "names in id order (default: the model's config on the Hub, the server's /info, else "
                               "the names of a first probe answer in alphabetical order).")
    generation_route: str = option("auto", group=REMOTE_GROUP, choices=GENERATION_ROUTES, help="Text generation: "
                                   "chat (messages to chat_completion; the server applies the model's chat template), "
                                   "text-generation (the raw prompt), or auto: chat for --provider or a URL ending in "
                                   "/v1, else text-generation.")

    @property
    def is_remote(self) -> bool:
        """Whether the model is queried over HTTP (--endpoint or --provider) rather than loaded."""
        return bool(self.endpoint or self.provider)

    def check(self) -> None:
        """BadConfig when the endpoint options contradict each other, the URL cannot be called, or a number is out of
        its range (the one check of these options, for the flags and for every ``RemoteConfig``)."""
        if self.endpoint and self.provider:
            raise BadConfig("--endpoint and --provider exclude each other (a remote model needs exactly one of them): "
                            "an endpoint URL is called directly")
        if self.endpoint:
            check_url(self.endpoint)
        if self.endpoint_token and not self.endpoint:
            raise BadConfig("--endpoint-token is sent to --endpoint, and none is given (--provider uses HF_TOKEN)")
        check_ranges(self)
        if self.generation_route not in GENERATION_ROUTES:
            raise BadConfig(f"--generation-route must be one of {', '.join(GENERATION_ROUTES)}")


def check_url(endpoint: str) -> None:
    """BadConfig when ``--endpoint`` is not an http(s) URL with a host and a valid port (checked before any request)."""
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as err:
        raise BadConfig(f"--endpoint is not a URL fade-hub can call ({err}); give scheme://host[:port]/path") from None
    if parts.scheme not in ("http", "https"):
        raise BadConfig(f"--endpoint must be an http:// or https:// URL ({redact_url(endpoint)!r} is not an http or "
                        "https one)")
    if not parts.hostname:
        raise BadConfig("--endpoint names no host; give scheme://host[:port]/path")
