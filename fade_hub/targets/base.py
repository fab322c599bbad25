"""The target protocol: a loaded model that answers batches of inputs with ``Prediction`` objects."""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from PIL import Image

from fade_hub.choices import AUTO
from fade_hub.errors import BadConfig, ModelNotFound, RemoteCodeRequired
from fade_hub.options import check_ranges
from fade_hub.targets.batching import (
    PROVISIONAL_BATCH_SIZE,
    batch_limit,
    is_out_of_memory,
    largest_fitting,
    probe_inputs,
    release_memory,
)
from fade_hub.config.target import TargetOptions
from fade_hub.targets.placement import DTYPES, out_of_memory_error, plan_device_map, resolve_device
from fade_hub.targets.source import ModelSource

logger = logging.getLogger(__name__)

_LONG_CONTEXT = 100_000


@dataclass
class Prediction:
    """One model output: a readable summary plus the task-specific fields."""

    text: str
    label: int | None = None
    score: float | None = None
    probs: list[float] | None = None
    image: Image.Image | None = None


@dataclass
class TargetConfig(TargetOptions):
    """How to load and run a target: its ``TargetOptions`` plus what the caller settles (the generation settings,
    given outright, and the random seed of sampled answers)."""

    generation_kwargs: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        check_ranges(self)
        self.check()

    @property
    def torch_dtype(self) -> torch.dtype | str:
        """The dtype to load weights in: float32 unless asked otherwise; ``"auto"`` keeps the checkpoint's."""
        return AUTO if self.dtype == AUTO else DTYPES[self.dtype or "float32"]


def pick_device(device: str | None) -> str:
    """The given device (checked to exist), or the best one accelerate sees for ``auto``/None."""
    return resolve_device(device)


@contextmanager
def seeded(seed: int, device: str) -> Iterator[None]:
    """Run a block with torch's RNG seeded, restoring the caller's RNG state afterwards."""
    dev = torch.device(device)
    devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def batched(items: Sequence, size: int) -> Iterator[list]:
    """Consecutive chunks of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def text_max_length(tokenizer: Any, config: Any) -> int:
    """The longest input the model accepts, from the tokenizer or, failing that, the model config."""
    limit = getattr(tokenizer, "model_max_length", None) or _LONG_CONTEXT
    if limit >= _LONG_CONTEXT:
        limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 512
    return int(limit)


def ensure_pad_token(tokenizer: Any, model: Any) -> None:
    """Give tokenizers without a pad token their EOS token as padding (GPT-style models)."""
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id


def remote_code_error(model_id: str, err: Exception | None = None) -> RemoteCodeRequired:
    """The error for a model that needs its own code from the repository."""
    detail = f" ({err})" if err else ""
    return RemoteCodeRequired(
        f"model {model_id!r} runs custom code from its repository{detail}; review that code, then pass "
        "--trust-remote-code (trust_remote_code=True) to allow it"
    )


class Target:
    """Base class of the model under test: ``predict`` answers a list of inputs, one forward per batch."""

    task: ClassVar[str]
    modality: ClassVar[str]

    def __init__(self, source: ModelSource, config: TargetConfig) -> None:
        self.model_id = source.model_id
        self.revision = source.revision
        self.commit_sha = source.commit_sha
        self.origin = source.origin
        self.config = config
        self.device = pick_device(config.device)
        self.device_map: dict[str, Any] | None = None
        self.batch_pending = config.batch_size == AUTO
        self.batch_size: int = PROVISIONAL_BATCH_SIZE if self.batch_pending else int(config.batch_size)
        self.local_path: Path = source.fetch()
        self.id2label: dict[int, str] | None = None
        self.input_side: int | None = None  # images: the side the model's processor resizes to
        self.model: Any = None
        self.processor: Any = None
        self.lineage: dict[str, Any] | None = None  # set when the model is a mitigated variant (an adapter)

    def predict(self, inputs: Sequence) -> list[Prediction]:
        """Outputs for ``inputs`` (PIL images or strings), one model call per batch; halves a batch that OOMs."""
        inputs = list(inputs)
        if self.batch_pending and inputs:
            self.find_batch_size(inputs)
        outputs: list[Prediction] = []
        while len(outputs) < len(inputs):
            chunk = inputs[len(outputs) : len(outputs) + self.batch_size]
            answered = self._try_batch(chunk)
            if answered is not None:
                outputs.extend(answered)
            elif len(chunk) == 1:
                raise BadConfig(
                    f"model {self.model_id!r} runs out of memory on {self.device} even for one input; use --device "
                    "auto to spread it over the GPUs and CPU memory, or --dtype bfloat16"
                )
            else:
                self.batch_size = len(chunk) // 2
                logger.warning("out of memory at batch size %d on %s: retrying with %d", len(chunk), self.device,
                               self.batch_size)  # fmt: skip
        return outputs

    def predict_stream(self, inputs: Sequence) -> Iterator[list[tuple[int, Prediction]]]:
        """``predict``'s outputs as they come, in groups of ``(index, prediction)`` (here: all of them at once)."""
        yield list(enumerate(self.predict(inputs)))

    def submit(self, inputs: Sequence) -> Any:
        """Start answering ``inputs``; returns the handle their answers come with out of ``next_answers``. A local
        model answers when they are read, one submitted batch after the other."""
        self._queue().append(inputs)
        return inputs

    def next_answers(self) -> list[tuple[Any, int, Prediction]]:
        """Answers of submitted inputs: ``(handle, index, prediction)``, at least one; [] once none is left."""
        if not self._queue():
            return []
        inputs = self._queue().popleft()
        return [(inputs, index, prediction) for index, prediction in enumerate(self.predict(inputs))]

    def halt(self) -> None:
        """Answer nothing more of what is submitted (a local model: drop the batches not computed yet)."""
        self._queue().clear()

    def _queue(self) -> deque:
        """The inputs submitted and not answered yet, oldest first."""
        return self.__dict__.setdefault("_submitted", deque())

    @contextmanager
    def interruptible(self) -> Iterator[list[bool]]:
        """The block in which ``next_answers`` is read; a remote target lets a first Ctrl-C hand over what is in
        flight (the yielded flag), a local one lets ``KeyboardInterrupt`` through."""
        yield []

    def find_batch_size(self, samples: Sequence) -> int:
        """Set ``batch_size`` to the largest batch of the biggest sample that runs without running out of memory."""
        if not samples:
            raise BadConfig("finding a batch size needs at least one sample input")
        limit = batch_limit(self.device)
        size = largest_fitting(lambda n: self._try_batch(probe_inputs(samples, n)) is not None, limit)
        if size == 0:
            raise BadConfig(
                f"model {self.model_id!r} runs out of memory on {self.device} even for one input; use --device auto "
                "to spread it over the GPUs and CPU memory, or --dtype bfloat16"
            )
        self.batch_size, self.batch_pending = size, False
        logger.info("batch size auto: %d fits on %s (searched up to %d)", size, self.device, limit)
        return size

    def _try_batch(self, batch: list) -> list[Prediction] | None:
        """The batch's outputs, or None when the device ran out of memory (its cache is freed first)."""
        try:
            with torch.inference_mode():
                return self._predict_batch(batch)
        except Exception as err:  # noqa: BLE001 - only out-of-memory errors are swallowed
            if not is_out_of_memory(err):
                raise
        release_memory()
        return None

    def _predict_batch(self, batch: list) -> list[Prediction]:
        raise NotImplementedError

    @property
    def samples(self) -> bool:
        """Whether the model samples its answers, so that one (cell, seed) pair asked twice may be answered twice."""
        return bool((self.config.generation_kwargs or {}).get("do_sample"))

    @property
    def dtype(self) -> str:
        """The dtype the weights run in, as a name (``float32``, ``bfloat16``, ...)."""
        dtype = getattr(self.model, "dtype", None) if self.model is not None else None
        dtype = dtype if isinstance(dtype, torch.dtype) else self.config.torch_dtype
        return str(dtype).removeprefix("torch.")

    def describe(self) -> dict[str, Any]:
        """What was tested, for run metadata: model, revision, commit, task, device, dtype, batch size, labels."""
        described = {
            "model_id": self.model_id,
            "revision": self.revision,
            "commit_sha": self.commit_sha,
            "task": self.task,
            "device": self.device,
            "dtype": self.dtype,
            "batch_size": self.batch_size,
        }
        if self.device_map:
            described["device_map"] = {str(k): str(v) for k, v in self.device_map.items()}
        if self.id2label:
            described["labels"] = [self.id2label[i] for i in sorted(self.id2label)]
        return described

    def close(self) -> None:
        """Release what the target holds besides its weights (nothing for local models)."""


def load_transformers(auto_cls: Any, target: Target, use_safetensors: bool | None) -> Any:
    """Load ``auto_cls`` from the target's folder in eval mode on its device, or spread over devices when needed."""
    from safetensors import SafetensorError

    dtype = target.config.torch_dtype
    split = plan_device_map(target.config.device, target.device, target.local_path, None if dtype == AUTO else dtype)
    try:
        model = auto_cls.from_pretrained(
            target.local_path,
            use_safetensors=use_safetensors,
            trust_remote_code=target.config.trust_remote_code,
            dtype=dtype,
            **({"device_map": AUTO} if split else {}),
        )
        if not split:
            model = model.to(target.device)
    except ValueError as err:
        if "trust_remote_code" in str(err):
            raise remote_code_error(target.model_id, err) from err
        raise
    except torch.OutOfMemoryError as err:
        raise out_of_memory_error(target.model_id, target.device, err) from err
    except (SafetensorError, OSError) as err:
        raise ModelNotFound(
            f"the weights of model {target.model_id!r} cannot be read ({damaged_weights(target.local_path) or err}); "
            "the file is truncated or not a model file: download the model again"
        ) from err
    if split:
        target.device_map = dict(getattr(model, "hf_device_map", None) or {})
        target.device = str(model.device)
    return model.eval()


def damaged_weights(folder: Path) -> str | None:
    """``NAME: reason`` for the first safetensors file in ``folder`` whose header does not parse, else None."""
    from safetensors import SafetensorError, safe_open

    for path in sorted(Path(folder).rglob("*.safetensors")):
        try:
            with safe_open(path, framework="pt"):
                pass
        except (SafetensorError, OSError) as err:
            return f"{path.relative_to(folder).as_posix()}: {str(err).splitlines()[0]}"
    return None


def load_processor(auto_cls: Any, target: Target) -> Any:
    """Load a tokenizer or image processor from the target's folder."""
    try:
        return auto_cls.from_pretrained(target.local_path, trust_remote_code=target.config.trust_remote_code)
    except ValueError as err:
        if "trust_remote_code" in str(err):
            raise remote_code_error(target.model_id, err) from err
        if not isinstance(err, json.JSONDecodeError):
            raise
        reason = f"invalid JSON: {err.msg}"
    except OSError as err:
        reason = str(err).splitlines()[0]
    raise ModelNotFound(
        f"the {auto_cls.__name__.removeprefix('Auto')} files of model {target.model_id!r} cannot be read ({reason}); "
        "fix them or download the model again"
    )


class Classifier(Target):
    """Shared logic of classifiers: one forward per batch, softmax, top class."""

    def _encode(self, batch: list) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _set_labels(self) -> None:
        """Read ``id2label`` from the model config, with integer keys."""
        self.id2label = {int(k): str(v) for k, v in self.model.config.id2label.items()}

    def _predict_batch(self, batch: list) -> list[Prediction]:
        encoded = {k: v.to(self.device) for k, v in self._encode(batch).items()}
        probs = self.model(**encoded).logits.float().softmax(dim=-1).cpu()
        top = probs.argmax(dim=-1).tolist()
        return [
            Prediction(
                text=self.id2label.get(label, str(label)), label=label, score=float(row[label]), probs=row.tolist()
            )
            for label, row in zip(top, probs, strict=True)
        ]
