"""Where a model's files come from: a local folder or a Hub repo pinned to a commit."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id

from fade_hub.errors import NETWORK_ERRORS, HubUnreachable, ModelNotFound
from fade_hub.paths import LOCAL_PREFIX, loadable_fields, read_local_paths
from fade_hub.provenance import Origin, folder_origin, hub_origin

logger = logging.getLogger(__name__)

METADATA_FILES = ("config.json", "model_index.json", "adapter_config.json")
DIFFUSERS_LORA_FILE = "pytorch_lora_weights.safetensors"  # a diffusers LoRA (``save_lora_weights``)
EVAL_FILE = "fade_eval.json"  # a mitigated variant's figures: its ``base_model`` names a diffusers LoRA's base
WEIGHT_SUFFIXES = (
    ".bin", ".ckpt", ".pt", ".pth", ".msgpack", ".h5", ".onnx", ".onnx_data",
    ".gguf", ".tflite", ".ot", ".pb", ".mlmodel", ".safetensors",
)  # fmt: skip
VARIANT_TAGS = (".fp16.", ".bf16.", ".non_ema.", ".ema.")


@dataclass
class ModelSource:
    """A resolved model: its id, pinned commit, file list and metadata (weights fetched on demand)."""

    model_id: str
    revision: str | None
    commit_sha: str | None
    files: list[str]
    local_path: Path | None = None
    pipeline_tag: str | None = None
    library_name: str | None = None
    config: dict | None = None
    model_index: dict | None = None
    adapter_config: dict | None = None  # an adapter (a mitigated variant): the base model loads first
    token: str | bool | None = field(default=None, repr=False)
    origin: Origin = Origin()

    @property
    def is_diffusers(self) -> bool:
        """Whether this is a diffusers pipeline (``model_index.json`` at the root), not a LoRA for one."""
        return (self.model_index is not None or self.library_name == "diffusers") and self.adapter_config is None

    @property
    def use_safetensors(self) -> bool | None:
        """True when every weight file to load is safetensors; None (library default) otherwise, with a warning."""
        weights = _weight_files(self.files, self.is_diffusers)
        if weights and all(name.endswith(".safetensors") for name in weights):
            return True
        logger.warning("%s: no safetensors for some weights; falling back to pickle-based files", self.model_id)
        return None

    def fetch(self) -> Path:
        """A local folder with the files needed to load the model (downloads a Hub snapshot once)."""
        if self.local_path is not None:
            return self.local_path
        wanted = select_files(self.files, diffusers=self.is_diffusers)
        try:
            folder = snapshot_download(self.model_id, revision=self.commit_sha, allow_patterns=wanted, token=self.token)
        except NETWORK_ERRORS as err:
            raise HubUnreachable(
                f"lost the Hub at {constants.ENDPOINT} while downloading {self.model_id!r} ({err}); retry"
            ) from err
        return Path(folder)


def _weight_files(files: list[str], diffusers: bool) -> list[str]:
    """The weight files to load: per folder, safetensors when present; no single-file or variant checkpoints."""
    weights = [f for f in files if f.endswith(WEIGHT_SUFFIXES)]
    if diffusers:
        weights = [f for f in weights if len(PurePosixPath(f).parts) > 1]
    by_dir: dict[str, list[str]] = {}
    for name in weights:
        by_dir.setdefault(str(PurePosixPath(name).parent), []).append(name)
    chosen: list[str] = []
    for names in by_dir.values():
        names = [n for n in names if n.endswith(".safetensors")] or names
        plain = [n for n in names if not any(tag in n for tag in VARIANT_TAGS)]
        chosen += plain or names
    return chosen


def select_files(files: list[str], diffusers: bool) -> list[str]:
    """The repo files to download: every non-weight file plus the chosen weight files."""
    return [f for f in files if not f.endswith(WEIGHT_SUFFIXES)] + _weight_files(files, diffusers)


def _read_json(path: Path, model_id: str) -> dict | None:
    """A metadata file's JSON object, or None when it does not exist; ModelNotFound when it is damaged."""
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        value, reason = None, "not UTF-8 text"
    except json.JSONDecodeError as err:
        value, reason = None, f"invalid JSON: {err.msg} at line {err.lineno} column {err.colno}"
    else:
        reason = "" if isinstance(value, dict) else "not a JSON object"
    if reason:
        raise ModelNotFound(
            f"{path.name} of model {model_id!r} cannot be read ({reason}); fix the file or download the model again"
        )
    return value


def diffusers_lora_config(figures: dict | None, model_id: str) -> dict:
    """The adapter config of a diffusers LoRA made by ``fade-hub mitigate``: its base pipeline from ``fade_eval.json``.

    It reads like a peft ``adapter_config.json`` (``base_model_name_or_path``, ``revision``) plus
    ``lora_format: diffusers``, so that such variants load through the same adapter path.
    """
    if not (figures or {}).get("base_model"):
        raise ModelNotFound(
            f"{model_id!r} holds a diffusers LoRA ({DIFFUSERS_LORA_FILE}) but no {EVAL_FILE} naming its base "
            "pipeline; load it onto the pipeline it was trained for with pipe.load_lora_weights"
        )
    return {"base_model_name_or_path": figures["base_model"], "revision": figures.get("base_commit"),
            "lora_format": "diffusers"}


def _not_found(model_id: str) -> ModelNotFound:
    if model_id.startswith(LOCAL_PREFIX):
        return ModelNotFound(
            f"model {model_id!r} was a local folder on the machine that made the run (runs publish no local paths); "
            "use that run's own folder, or pass the model's path"
        )
    if model_id.startswith(("/", "./", "../", "~")) or model_id.count("/") > 1:
        return ModelNotFound(f"model folder {model_id!r} does not exist; check the path")
    return ModelNotFound(
        f"model {model_id!r} not found: not a local folder and not on the Hub at {constants.ENDPOINT}; "
        "check the ID or pass a local path"
    )


def _resolve_local(folder: Path, model_id: str, revision: str | None) -> ModelSource:
    if not folder.is_dir():
        raise ModelNotFound(f"{model_id!r} is a file, not a model folder; pass the folder that holds config.json")
    config, model_index = _read_json(folder / "config.json", model_id), _read_json(folder / "model_index.json", model_id)
    adapter_config = _read_json(folder / "adapter_config.json", model_id)
    if adapter_config is None and (folder / DIFFUSERS_LORA_FILE).is_file():
        figures = _read_json(folder / EVAL_FILE, model_id)
        if figures:  # its base as published (relative to the folder, or local:NAME): the path it loads from here
            figures = loadable_fields(figures, ("base_model",), folder, read_local_paths(folder))
        adapter_config = diffusers_lora_config(figures, model_id)
    if config is None and model_index is None and adapter_config is None:
        raise ModelNotFound(
            f"folder {str(folder)!r} holds no config.json, model_index.json, adapter_config.json or "
            f"{DIFFUSERS_LORA_FILE}; pass a saved model or adapter folder"
        )
    if revision:
        logger.warning("ignoring revision %r for the local folder %s", revision, folder)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return ModelSource(
        model_id=str(folder),
        revision=None,
        commit_sha=None,
        files=files,
        local_path=folder,
        config=config,
        model_index=model_index,
        adapter_config=adapter_config,
        origin=folder_origin(folder),
    )


def _cached_snapshot(model_id: str, revision: str | None, token: str | bool | None) -> ModelSource | None:
    """The model's snapshot in the local HF cache (commit sha = snapshot folder name), or None."""
    try:
        folder = Path(snapshot_download(model_id, revision=revision, token=token, local_files_only=True))
    except (OSError, ValueError):
        return None
    source = _resolve_local(folder, model_id, None)
    origin = Origin(source.origin.license, "unknown")  # whether the repo is public cannot be asked offline
    return replace(source, model_id=model_id, revision=revision, commit_sha=folder.name, origin=origin)


def _resolve_hub(model_id: str, revision: str | None, token: str | bool | None) -> ModelSource:
    try:
        info = HfApi(token=token).model_info(model_id, revision=revision)
        sha = info.sha
        files = [s.rfilename for s in info.siblings or []]
        # metadata by the user's revision, so the cache records it (offline runs find the snapshot again)
        lora = DIFFUSERS_LORA_FILE in files and "adapter_config.json" not in files
        meta = {
            name: _read_json(Path(hf_hub_download(model_id, name, revision=revision, token=token)), model_id)
            for name in (*METADATA_FILES, *([EVAL_FILE] if lora else []))
            if name in files
        }
    except GatedRepoError as err:
        raise ModelNotFound(f"model {model_id!r} is gated: accept its terms on the Hub and set HF_TOKEN") from err
    except RepositoryNotFoundError as err:
        raise _not_found(model_id) from err
    except RevisionNotFoundError as err:
        raise ModelNotFound(
            f"revision {revision!r} of model {model_id!r} not found on the Hub at {constants.ENDPOINT}"
        ) from err
    except NETWORK_ERRORS as err:
        cached = _cached_snapshot(model_id, revision, token)
        if cached is None:
            raise HubUnreachable(
                f"{model_id!r} is not a local folder and the Hub at {constants.ENDPOINT} could not be reached "
                f"({err}); check the connection or pass a local path"
            ) from err
        logger.warning("the Hub is unreachable; using the cached snapshot %s of %s", cached.commit_sha, model_id)
        return cached
    except HfHubHTTPError as err:
        raise HubUnreachable(f"the Hub at {constants.ENDPOINT} answered an error for {model_id!r}: {err}") from err
    return ModelSource(
        model_id=model_id,
        revision=revision,
        commit_sha=sha,
        files=files,
        pipeline_tag=info.pipeline_tag,
        library_name=info.library_name,
        config=meta.get("config.json"),
        model_index=meta.get("model_index.json"),
        adapter_config=diffusers_lora_config(meta.get(EVAL_FILE), model_id) if lora else meta.get("adapter_config.json"),
        token=token,
        origin=hub_origin(info),
    )


def resolve_source(model_id: str, revision: str | None = None, token: str | bool | None = None) -> ModelSource:
    """Resolve a local folder or a Hub repo id (pinned to its commit sha) without downloading weights."""
    folder = Path(model_id).expanduser()
    if folder.exists():
        return _resolve_local(folder.resolve(), model_id, revision)
    try:
        validate_repo_id(model_id)
    except HFValidationError as err:
        raise _not_found(model_id) from err
    return _resolve_hub(model_id, revision, token)
