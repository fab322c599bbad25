"""Publish a mitigated variant as a Hub model repo, and pull one back (as it is, or merged into a plain model)."""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from pathlib import Path

from huggingface_hub.errors import HfHubHTTPError

from ..errors import NETWORK_ERRORS, BadConfig, HubUnreachable, RunNotFound
from ..paths import check_repo_id
from ..variant_links import link_variant
from .card import build_model_card
from .outputs import EVAL_FILE, read_figures


def push_adapter(folder: str | Path, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
    """Push a mitigated variant (an adapter folder) as a model repo; its local card names the repo once pushed."""
    from huggingface_hub import HfApi, constants

    folder = Path(folder)
    check_repo_id(repo_id, "REPO_ID")
    figures = read_figures(folder)
    card = build_model_card(figures, repo_id)
    retry = f"the adapter in {folder} is intact — retry with: fade-hub push {folder} {repo_id}"
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="fade-push-") as scratch:
        staged = Path(shutil.copytree(folder, Path(scratch) / "adapter", ignore=shutil.ignore_patterns(".*")))
        card.save(staged / "README.md")
        _publish_base_name(staged / "adapter_config.json", figures.get("base_model"))
        try:
            api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
            with warnings.catch_warnings():  # eval/examples.parquet belongs in the model repo: the Space reads it
                warnings.filterwarnings("ignore", message=".*data file.*model repository.*")
                api.upload_folder(repo_id=repo_id, folder_path=staged, commit_message=f"fade-hub mitigated variant "
                                  f"of {card.data.base_model or 'a local model'}")
        except (*NETWORK_ERRORS, OSError) as err:
            raise HubUnreachable(f"could not reach the Hub at {constants.ENDPOINT} ({type(err).__name__}); "
                                 f"{retry}") from None
        except HfHubHTTPError as err:
            raise HubUnreachable(f"the Hub refused the push to {repo_id}: {str(err).splitlines()[0]}; {retry}") from None
    card.save(folder / "README.md")
    link_variant(str(figures.get("failures") or ""), figures["run_id"], repo_id, token=token)  # the run's card lists it
    return f"{constants.ENDPOINT}/{repo_id}"


def _publish_base_name(path: Path, published: str | None) -> None:
    """Name the base model in a peft ``adapter_config.json`` as ``fade_eval.json`` publishes it: locally it is the
    path stock peft loads the base from, which must not leave this machine."""
    if not path.is_file() or not published:
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("base_model_name_or_path") != published:
        config["base_model_name_or_path"] = published
        path.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")


def pull_adapter(source: str, output: str | Path, *, merge: bool = False, base: str | None = None,
                 token: str | None = None) -> Path:
    """Download a mitigated variant into ``output``; with ``merge``, write a plain model with the LoRA merged in
    (peft's ``merge_and_unload``; for a text-to-image variant, diffusers' ``fuse_lora``, saved as a full pipeline).

    ``base`` applies the adapter to another copy of its base model (e.g. a local folder); AdapterMismatch when
    its layers do not fit.
    """
    from ..targets import load_target, resolve_source
    from ..targets.adapter import apply_adapter, is_diffusers_lora

    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise BadConfig(f"{output} is not an empty folder; choose a new --output")
    adapter = resolve_source(source, token=token)
    if adapter.adapter_config is None:
        raise RunNotFound(f"{source} is not a mitigated variant (it has no adapter_config.json or "
                          "pytorch_lora_weights.safetensors)")
    folder = adapter.fetch()
    if not merge:
        shutil.copytree(folder, output, dirs_exist_ok=True)
        return output
    figures = json.loads((folder / EVAL_FILE).read_text(encoding="utf-8")) if (folder / EVAL_FILE).is_file() else {}
    config = adapter.adapter_config
    target = load_target(base or config["base_model_name_or_path"], task=figures.get("task"),
                         revision=None if base else config.get("revision"), token=token)
    apply_adapter(target, folder, source)
    output.mkdir(parents=True, exist_ok=True)
    if is_diffusers_lora(folder):  # a text-to-image variant: the LoRA fused into a plain pipeline
        target.save_fused(output)
        return output
    merged = target.model.merge_and_unload()
    merged.save_pretrained(output)
    target.processor.save_pretrained(output)
    return output
