"""InferenceClient: ``huggingface_hub``'s ``AsyncInferenceClient`` with two request hooks fade-hub needs.

It keeps each request's response (``fade_hub.targets.endpoint.last_response``), so that an answer the client
cannot read becomes one line saying what the server sent; and with ``drop_token`` it sends no token: the client
holds a placeholder in place of one, so that ``huggingface_hub`` never reads the machine's Hugging Face token
(it would, for every request, given none), and the ``Authorization`` header it makes of it is removed from
every request, so that an endpoint that is not a Hugging Face host receives no token (user info in the URL
stays the server's own Basic credential). Imported only when a remote target is built:
``huggingface_hub.inference`` takes time.
``make_client`` builds the client of a remote target.
"""

from __future__ import annotations

from typing import Any

from huggingface_hub import AsyncInferenceClient

from fade_hub.targets.endpoint import RemoteConfig, keep_response


NO_TOKEN = "fade-hub-sends-no-token"  # what a client that sends no token holds (removed from every request)


class InferenceClient(AsyncInferenceClient):
    """``AsyncInferenceClient`` that keeps each response and, with ``drop_token``, sends no Hugging Face token."""

    def __init__(self, *args: Any, drop_token: bool = False, **kwargs: Any) -> None:
        if drop_token:
            kwargs["token"] = NO_TOKEN
        super().__init__(*args, **kwargs)
        self.drop_token = drop_token

    async def _get_async_client(self) -> Any:
        client = await super()._get_async_client()
        hooks = client.event_hooks
        if _keep_response not in hooks["response"]:
            requests = [_drop_token, *hooks["request"]] if self.drop_token else hooks["request"]
            client.event_hooks = {"request": requests, "response": [*hooks["response"], _keep_response]}
        return client


async def _drop_token(request: Any) -> None:
    """Remove the ``Authorization`` huggingface_hub adds (of ``NO_TOKEN``), unless the URL's user info set it."""
    if not request.url.userinfo:
        request.headers.pop("authorization", None)


async def _keep_response(response: Any) -> None:
    keep_response(response)


def make_client(model_id: str, remote: RemoteConfig) -> InferenceClient:
    """The ``InferenceClient`` of a remote target: bound to the endpoint URL (with only its own credential), or to the
    model and provider."""
    if remote.endpoint:
        credential = remote.credential
        return InferenceClient(base_url=remote.endpoint, timeout=remote.request_timeout, token=credential,
                               drop_token=credential is None)  # fmt: skip
    return InferenceClient(model=model_id, provider=remote.provider, timeout=remote.request_timeout)
