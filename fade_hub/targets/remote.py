"""Remote targets: models behind an endpoint or an Inference Provider, queried through ``AsyncInferenceClient``.

``load_remote_target`` never downloads weights. The task comes from ``--task``, else from the model's Hub
metadata (``pipeline_tag`` or ``config.json``) when the Hub answers. The served model's revision comes
from the server when it reports one (TGI and TEI ``/info``), so that the run records what really answered.
Each task has one remote class (``TaskSpec.remote_target``); they share ``RemoteTarget``, which sends each
input as one request through a ``Dispatcher`` (concurrency, retries, usage counts) and hands each answer over
as it arrives (``predict_stream``). An answer that cannot be read as the task's (not JSON, the wrong shape, a
score that is not a number, ...) stops the run with one line saying what the server sent.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterator, Sequence
from typing import Any, ClassVar

from fade_hub.errors import EndpointFailed, FadeHubError, HubUnreachable, ModelNotFound, UnsupportedTask
from fade_hub.targets.base import Prediction, Target, TargetConfig, pick_device
from fade_hub.targets.batching import PROVISIONAL_BATCH_SIZE
from fade_hub.targets.detect import detect_source_task
from fade_hub.targets.dispatch import Dispatcher, Usage
from fade_hub.targets.endpoint import (
    RemoteConfig,
    check_provider,
    clear_response,
    describe_response,
    last_response,
    redact_url,
    served_model_info,
)
from fade_hub.targets.source import ModelSource, resolve_source
from fade_hub.tasks import TASKS, get_task

logger = logging.getLogger(__name__)

BATCH_ROUNDS = 4  # batches of fewer than this many rounds of --concurrency requests leave the endpoint idle


class RemoteTarget(Target):
    """A model answering over HTTP: one request per input, ``concurrency`` in flight, answers in input order.

    Nothing is loaded locally, so ``__init__`` does not call ``Target.__init__`` (which fetches weights).
    ``device`` is where fade-hub's own helper models (e.g. a CLIP or classifier judge) run; ``batch_size``
    is how many queries go to the endpoint at once (at most ``concurrency`` of them in flight). It is the
    explorers' batch too, so it stays what the user set: the same settings explore the same queries whatever
    the concurrency, and ``--resume`` may change the concurrency.
    """

    hf_task: ClassVar[str]  # the InferenceClient task name, for provider checks

    def __init__(
        self,
        model_id: str,
        remote: RemoteConfig,
        config: TargetConfig,
        *,
        hub: ModelSource | None = None,
        served: dict[str, Any] | None = None,
    ) -> None:
        self.model_id, self.remote, self.config = model_id, remote, config
        self.hub, self.served = hub, dict(served or {})
        self.revision = hub.revision if hub else None
        self.commit_sha = self.served.get("revision")
        self.device = pick_device(config.device)
        self.device_map = None
        self.batch_pending = False
        requested = PROVISIONAL_BATCH_SIZE if config.batch_size == "auto" else int(config.batch_size)
        self.batch_size = requested
        if requested < BATCH_ROUNDS * remote.concurrency:
            logger.warning(
                "--batch-size %d hands the endpoint fewer than %d x --concurrency %d queries at once, so it may sit "
                "idle while the next batch is chosen; a batch size of %d or more keeps it busy",
                requested, BATCH_ROUNDS, remote.concurrency, BATCH_ROUNDS * remote.concurrency,
            )  # fmt: skip
        self.local_path = None
        self.origin = hub.origin if hub else None  # licence and visibility of the Hub repo behind a provider
        self.input_side = None  # the server resizes its own inputs
        self.id2label = None
        self.model = self.processor = None
        self.lineage = None  # a served model is never a local adapter
        if remote.provider:
            check_provider(remote.provider, self.hf_task, model_id)
        from fade_hub.targets.client import make_client  # huggingface_hub.inference only for remote models

        self.client = make_client(model_id, remote)
        self.dispatcher = Dispatcher(
            lambda item: self._read(self._ask(item)), where=remote.where, concurrency=remote.concurrency,
            max_retries=remote.max_retries, timeout=remote.request_timeout, auth_advice=remote.auth_advice,
        )  # fmt: skip

    def predict(self, inputs: list) -> list[Prediction]:
        """One request per input, ``concurrency`` in flight, answers in input order; EndpointFailed on a stop."""
        return self.dispatcher.run(list(inputs))

    def predict_stream(self, inputs: Sequence) -> Iterator[list[tuple[int, Prediction]]]:
        """``predict``'s answers as they arrive: groups of ``(index, prediction)``; EndpointFailed on a stop."""
        return self.dispatcher.stream(inputs)

    def submit(self, inputs: Sequence) -> Any:
        """Start the requests of ``inputs`` (``concurrency`` in flight over everything submitted) without waiting."""
        return self.dispatcher.submit(inputs)

    def next_answers(self) -> list[tuple[Any, int, Prediction]]:
        """Answers of submitted inputs as they arrive: ``(handle, index, prediction)``; EndpointFailed on a stop."""
        return self.dispatcher.next_group()

    def halt(self) -> None:
        """Send nothing more of what is submitted; the requests in flight are still answered (``next_answers``)."""
        self.dispatcher.halt_all()

    def interruptible(self):
        """A first Ctrl-C halts what is submitted and still hands over the answers in flight (see ``dispatch``)."""
        return self.dispatcher.interruptible()

    async def _ask(self, item: Any) -> Prediction:
        """Ask the endpoint about one input (the task method of ``self.client``)."""
        raise NotImplementedError

    async def _read(self, answer: Awaitable[Any]) -> Any:
        """Await one request's answer; when the server answered (2xx) but the answer cannot be read, EndpointFailed
        saying in one line what it sent."""
        clear_response()
        try:
            return await answer
        except FadeHubError:
            raise
        except Exception as err:  # noqa: BLE001 - whatever reading a successful response raised
            response = last_response()
            if response is None or not response.is_success:
                raise
            reason = str(err).splitlines()[0][:80] if str(err) and not isinstance(err, RecursionError) else ""
            raise EndpointFailed(
                f"{self.remote.where} sent an answer that is not a {self.task} answer ({type(err).__name__}"
                f"{': ' + reason if reason else ''}): {describe_response(response)}"
            ) from None

    def take_usage(self) -> dict[str, int]:
        """Requests answered, retries, tokens and images reported since the last call (the counters restart)."""
        used, self.dispatcher.usage = self.dispatcher.usage, Usage()
        return used.as_dict()

    def describe(self) -> dict[str, Any]:
        """What was tested and where it was served: endpoint (redacted) or provider, served model and revision."""
        described: dict[str, Any] = {
            "model_id": self.model_id,
            "revision": self.revision,
            "commit_sha": self.commit_sha,
            "task": self.task,
            "endpoint": redact_url(self.remote.endpoint) if self.remote.endpoint else None,
            "provider": self.remote.provider,
            "served_model": {k: v for k, v in self.served.items() if k != "id2label"},
            "hub_commit_sha": self.hub.commit_sha if self.hub else None,
            "concurrency": self.remote.concurrency,
            "max_retries": self.remote.max_retries,
            "request_timeout_s": self.remote.request_timeout,
            "batch_size": self.batch_size,
            "helper_device": self.device,
        }
        if self.id2label:
            described["labels"] = [self.id2label[i] for i in sorted(self.id2label)]
        return described

    def close(self) -> None:
        """Close the HTTP client and stop the request loop."""
        try:
            self.dispatcher.call(self.client.close())
        finally:
            self.dispatcher.close()


def hub_metadata(model_id: str, revision: str | None) -> ModelSource | None:
    """The model's Hub (or local folder) metadata when it can be had without weights; None otherwise."""
    try:
        return resolve_source(model_id, revision)
    except (ModelNotFound, HubUnreachable) as err:
        logger.info("no Hub metadata for %s (%s); relying on the server and the options", model_id, err)
        return None


def remote_task(model_id: str, remote: RemoteConfig, hub: ModelSource | None) -> str:
    """The task of a served model, from its Hub metadata; UnsupportedTask asking for --task when unknown."""
    if hub is None:
        raise UnsupportedTask(
            f"cannot tell the task of {model_id!r} served by {remote.where}: it is not a local folder and the Hub "
            f"did not describe it; pass --task with one of: {', '.join(TASKS)}"
        )
    return detect_source_task(hub)


def load_remote_target(
    model_id: str,
    remote: RemoteConfig,
    task: str | None = None,
    revision: str | None = None,
    device: str | None = None,
    batch_size: int | str = 16,
    generation_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
) -> RemoteTarget:
    """A target for ``model_id`` served at ``remote.endpoint`` or by ``remote.provider`` (nothing is downloaded)."""
    config = TargetConfig(device=device, batch_size=batch_size, generation_kwargs=dict(generation_kwargs or {}), seed=seed)
    hub = hub_metadata(model_id, revision)
    spec = get_task(task or remote_task(model_id, remote, hub))
    served = served_model_info(remote.endpoint, remote.credential) if remote.endpoint else {}
    target = spec.remote_target_class()(model_id, remote, config, hub=hub, served=served)
    logger.info("remote %s target %s at %s (revision %s)", spec.name, model_id, remote.where, target.commit_sha)
    return target

