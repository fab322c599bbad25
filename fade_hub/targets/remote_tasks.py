"""One remote target per task: which ``AsyncInferenceClient`` method it calls and how the answer becomes a Prediction.

Remote classifiers need their class names before any query, to align the seeds' labels. They come, in
order, from ``--labels`` (in the model's id order), the model's ``config.json`` on the Hub (or in a local
folder), the server's ``/info`` (TEI lists them), and last from one probe request asking for every class:
its names get ids in alphabetical order, which is enough for seeds labelled by name (pass ``--labels``
when the seeds carry class ids). Every answer asks for all classes (``top_k``), so that ``probs`` is full.
"""

from __future__ import annotations

import io
import logging
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from PIL import Image

from fade_hub.errors import EndpointFailed
from fade_hub.targets.base import Prediction
from fade_hub.targets.chat import prompt_messages
from fade_hub.targets.endpoint import clip
from fade_hub.targets.remote import RemoteTarget
from fade_hub.targets.text_generation import generation_settings
from fade_hub.targets.text_to_image import PIPELINE_DEFAULTS, prompt_seed

logger = logging.getLogger(__name__)

LABEL_PROBE_TOP_K = 1000
_IMAGE_PARAMETERS = ("num_inference_steps", "guidance_scale", "negative_prompt", "height", "width")


def png_bytes(image: Image.Image) -> bytes:
    """An image as lossless PNG bytes, so the server sees exactly the pixels a local model would."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


class RemoteClassifier(RemoteTarget):
    """Shared by remote classifiers: the class names, and the ranked answer turned into a label id and scores."""

    probe_input: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.id2label = self._known_labels() or self._probed_labels()
        self.label2id = {name: label_id for label_id, name in self.id2label.items()}

    async def _classify(self, item: Any, top_k: int) -> Any:
        raise NotImplementedError

    async def _ask(self, item: Any) -> Prediction:
        return self._prediction(await self._classify(item, len(self.id2label)))

    def _known_labels(self) -> dict[int, str]:
        if self.remote.labels:
            return dict(enumerate(self.remote.labels))
        config = (self.hub.config or {}) if self.hub is not None else {}
        if config.get("id2label"):
            return {int(key): str(value) for key, value in config["id2label"].items()}
        return dict(self.served.get("id2label") or {})

    def _probed_labels(self) -> dict[int, str]:
        probe = self.dispatcher.run([self.probe_input], ask=lambda item: self._read(self._probe(item)))[0]
        names = sorted({str(element.label) for element in probe})
        if not names:
            raise EndpointFailed(f"{self.remote.where} answered no class for a probe input; pass --labels")
        logger.warning(
            "class names of %s taken from the endpoint's answer, ids in alphabetical order: %s; pass --labels in the "
            "model's id order if the seeds are labelled by class id", self.model_id, ", ".join(map(clip, names)),
        )  # fmt: skip
        return dict(enumerate(names))

    async def _probe(self, item: Any) -> list[Any]:
        return _elements(await self._classify(item, LABEL_PROBE_TOP_K))

    def _prediction(self, answer: Any) -> Prediction:
        elements = _elements(answer)
        if not elements:
            raise EndpointFailed(f"{self.remote.where} answered no class")
        scores = {str(element.label): float(element.score) for element in elements}
        name = max(scores, key=scores.get)
        if name not in self.label2id:
            known = ", ".join(clip(label) for label in list(self.label2id)[:8])
            advice = ("give --labels the names the server answers with, in id order" if self.remote.labels else
                      "pass --labels with every class name in id order")  # fmt: skip
            source = "--labels" if self.remote.labels else "the model's classes"
            raise EndpointFailed(
                f"{self.remote.where} answered class {clip(name)!r}, which is not one of {source} ({known}); {advice}"
            )
        ordered = [scores.get(self.id2label[i]) for i in sorted(self.id2label)]
        probs = ordered if all(p is not None for p in ordered) else None
        return Prediction(text=name, label=self.label2id[name], score=scores[name], probs=probs)


def _elements(answer: Any) -> list[Any]:
    """Classification answers as a flat list (servers send ``[...]`` or ``[[...]]``; one element comes bare), each
    checked to have a class name and a finite score (ValueError otherwise)."""
    elements = [answer] if not isinstance(answer, list) else \
        [e for item in answer for e in (item if isinstance(item, list) else [item])]  # fmt: skip
    for element in elements:
        label, score = getattr(element, "label", None), getattr(element, "score", None)
        if not isinstance(label, str) or isinstance(score, bool) or not isinstance(score, int | float) or \
                not math.isfinite(score):  # fmt: skip
            raise ValueError("a class needs a name and a finite score")
    return elements


def _text(value: Any) -> str:
    """A generated text as the server sent it; ValueError when it is not a string."""
    if not isinstance(value, str):
        raise ValueError(f"the generated text is a {type(value).__name__}, not a string")
    return value


class RemoteImageClassifier(RemoteClassifier):
    """An image classifier behind an endpoint: PNG bytes to ``image_classification``."""

    task = "image-classification"
    modality = "image"
    hf_task = "image-classification"
    probe_input = Image.new("RGB", (64, 64), (128, 128, 128))

    async def _classify(self, item: Image.Image, top_k: int) -> Any:
        return await self.client.image_classification(png_bytes(item), top_k=top_k)


class RemoteTextClassifier(RemoteClassifier):
    """A text classifier behind an endpoint: ``text_classification``."""

    task = "text-classification"
    modality = "text"
    hf_task = "text-classification"
    probe_input = "fade-hub label probe"

    async def _classify(self, item: str, top_k: int) -> Any:
        return await self.client.text_classification(str(item), top_k=top_k)


class RemoteGenerator(RemoteTarget):
    """Shared by remote generators: the generation settings the local target of the task uses, recorded."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.generation_kwargs = self._generation_settings()

    def _generation_settings(self) -> dict[str, Any]:
        return generation_settings(self.config)

    def describe(self) -> dict[str, Any]:
        """Base description plus the generation settings."""
        return {**super().describe(), "generation_kwargs": dict(self.generation_kwargs)}


class RemoteTextGenerator(RemoteGenerator):
    """A language model behind an endpoint: ``chat_completion`` (messages from ``prompt_messages``) or ``text_generation``.

    Greedy unless ``do_sample`` is set, as locally. The chat route leaves the chat template to the server,
    which applies the served model's own; token counts come from ``usage`` (chat) or TGI's ``details``. A model
    that samples gets ``temperature`` and ``top_p`` as set, and each copy of a prompt within one call its own
    request seed (the run's seed plus the copy's number), so that the samples of one query differ while the same
    call is answered the same again.
    """

    task = "text-generation"
    modality = "text"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ids = self.served.get("model_ids") or []
        # an OpenAI-compatible server may serve the model under another name (vLLM's --served-model-name)
        self.served_name = ids[0] if len(ids) == 1 and self.model_id not in ids else self.model_id

    @property
    def route(self) -> str:
        """``chat`` (messages to ``chat_completion``) or ``text-generation`` (the raw prompt)."""
        return "chat" if self.remote.uses_chat() else "text-generation"

    @property
    def hf_task(self) -> str:  # type: ignore[override]
        """The InferenceClient task of the route: ``conversational`` for chat."""
        return "conversational" if self.route == "chat" else "text-generation"

    def predict(self, inputs: list) -> list[Prediction]:
        """One request per input (each copy of a prompt with its own seed when sampling), answers in input order."""
        return self.dispatcher.run(self._seeded(inputs))

    def predict_stream(self, inputs: Sequence) -> Iterator[list[tuple[int, Prediction]]]:
        """``predict``'s answers as they arrive: groups of ``(index, prediction)``."""
        return self.dispatcher.stream(self._seeded(inputs))

    def submit(self, inputs: Sequence) -> Any:
        """Start the requests of ``inputs`` (each copy of a prompt with its own seed when sampling) without waiting."""
        return self.dispatcher.submit(self._seeded(inputs))

    def _seeded(self, inputs: Sequence) -> list[tuple[str, int]]:
        """Each prompt with its request seed: the run's seed, plus the copy's number among equal prompts when sampling."""
        copies: Counter = Counter()
        seeded = []
        for prompt in map(str, inputs):
            seeded.append((prompt, self.config.seed + (copies[prompt] if self.samples else 0)))
            copies[prompt] += 1
        return seeded

    async def _ask(self, item: tuple[str, int]) -> Prediction:
        prompt, seed = item
        settings = self.generation_kwargs
        sample = bool(settings.get("do_sample", False))
        if self.route == "chat":
            out = await self.client.chat_completion(
                prompt_messages(prompt), model=self.served_name, max_tokens=settings.get("max_new_tokens"),
                temperature=settings.get("temperature", 1.0) if sample else 0.0,
                top_p=settings.get("top_p") if sample else None, seed=seed,
            )  # fmt: skip
            if out.usage is not None:
                self.dispatcher.usage.add(prompt_tokens=out.usage.prompt_tokens, completion_tokens=out.usage.completion_tokens)
            return Prediction(text=_text(out.choices[0].message.content or ""))
        out = await self.client.text_generation(
            prompt, max_new_tokens=settings.get("max_new_tokens"), do_sample=sample, details=True,
            return_full_text=False, seed=seed, temperature=settings.get("temperature") if sample else None,
            top_p=settings.get("top_p") if sample else None,
        )  # fmt: skip
        if isinstance(out, str):  # servers other than TGI give no details
            return Prediction(text=out)
        if out.details is not None:
            self.dispatcher.usage.add(completion_tokens=out.details.generated_tokens)
        return Prediction(text=_text(out.generated_text))

    def describe(self) -> dict[str, Any]:
        """Base description plus the route and the generation settings."""
        return {**super().describe(), "route": self.route}


class RemoteSummarizer(RemoteGenerator):
    """A summarizer behind an endpoint: ``summarization`` with the local target's generation settings."""

    task = "summarization"
    modality = "text"
    hf_task = "summarization"

    async def _ask(self, document: str) -> Prediction:
        out = await self.client.summarization(str(document), generate_parameters=dict(self.generation_kwargs))
        return Prediction(text=_text(out.summary_text or "").strip())


class RemoteTextToImage(RemoteGenerator):
    """A text-to-image model behind an endpoint or provider: ``text_to_image``, one seeded image per prompt."""

    task = "text-to-image"
    modality = "prompt"
    hf_task = "text-to-image"

    def _generation_settings(self) -> dict[str, Any]:
        return {**PIPELINE_DEFAULTS, **self.config.generation_kwargs}

    async def _ask(self, prompt: str) -> Prediction:
        known = {k: v for k, v in self.generation_kwargs.items() if k in _IMAGE_PARAMETERS}
        extra = {k: v for k, v in self.generation_kwargs.items() if k not in _IMAGE_PARAMETERS}
        image = await self.client.text_to_image(
            str(prompt), seed=prompt_seed(str(prompt), self.config.seed), extra_body=extra or None, **known
        )
        self.dispatcher.usage.add(images=1)
        return Prediction(text="<image>", image=image.convert("RGB"))

