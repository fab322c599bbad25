"""Push runs (dataset repos) and mitigated variants (model repos) to the Hub; the token comes from HF_TOKEN or the
stored login only (read runs with ``fade_hub.run``)."""

from __future__ import annotations

import logging
from pathlib import Path

from huggingface_hub.errors import HfHubHTTPError

from .card import write_card
from .errors import NETWORK_ERRORS, BadRepoId, HubUnreachable, RunNotFound
from .store import RunStore

logger = logging.getLogger(__name__)

# Never uploaded: the policy checkpoint and temp files (media stay: the card shows them).
PUSH_IGNORE = (".policy/**", "**/.*.tmp", ".*")


def push_run(run_dir: str | Path, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
    """Push a finished run directory as a dataset repo; pushing unchanged content again adds no commit."""
    from huggingface_hub import HfApi, constants

    store = RunStore(run_dir)
    meta = store.read_meta()
    if meta.get("status") != "finished":
        raise RunNotFound(f"{store.root} is not finished (status {meta.get('status')!r}); resume it with --resume first")
    write_card(store, repo_id)
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=store.root,
            ignore_patterns=list(PUSH_IGNORE),
            commit_message=f"fade-hub run {meta['run_id']} of {meta['model_id']}",
        )
    except (*NETWORK_ERRORS, OSError) as err:
        raise HubUnreachable(
            f"could not reach the Hub at {constants.ENDPOINT} ({type(err).__name__}); the run in {store.root} is "
            f"intact — retry with: fade-hub push {store.root} {repo_id}"
        ) from None
    except HfHubHTTPError as err:
        raise HubUnreachable(
            f"the Hub refused the push to {repo_id}: {str(err).splitlines()[0]}; the run in {store.root} is intact — "
            f"check the token's write access, then retry with: fade-hub push {store.root} {repo_id}"
        ) from None
    return f"{constants.ENDPOINT}/datasets/{repo_id}"


def push_adapter(folder: str | Path, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
    """Push a mitigated variant (an adapter folder) as a model repo; its local card names the repo once pushed."""
    import shutil
    import tempfile

    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    from .mitigate.card import build_model_card
    from .mitigate.restructure import read_figures

    folder = Path(folder)
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise BadRepoId(f"{repo_id!r} is not a repo id ({err}); use NAMESPACE/NAME") from None
    card = build_model_card(read_figures(folder), repo_id)
    retry = f"the adapter in {folder} is intact — retry with: fade-hub push {folder} {repo_id}"
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="fade-push-") as scratch:
        staged = Path(shutil.copytree(folder, Path(scratch) / "adapter", ignore=shutil.ignore_patterns(".*")))
        card.save(staged / "README.md")
        try:
            api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
            api.upload_folder(repo_id=repo_id, folder_path=staged, commit_message=f"fade-hub mitigated variant of "
                              f"{card.data.base_model or 'a local model'}")
        except (*NETWORK_ERRORS, OSError) as err:
            raise HubUnreachable(f"could not reach the Hub at {constants.ENDPOINT} ({type(err).__name__}); "
                                 f"{retry}") from None
        except HfHubHTTPError as err:
            raise HubUnreachable(f"the Hub refused the push to {repo_id}: {str(err).splitlines()[0]}; {retry}") from None
    card.save(folder / "README.md")
    return f"{constants.ENDPOINT}/{repo_id}"


def pull_adapter(source: str, output: str | Path, *, merge: bool = False, base: str | None = None,
                 token: str | None = None) -> Path:
    """Download a mitigated variant into ``output``; with ``merge``, write a plain model with the LoRA merged in.

    ``base`` applies the adapter to another copy of its base model (e.g. a local folder); AdapterMismatch when
    its layers do not fit.
    """
    import json
    import shutil

    from .targets import load_target, resolve_source
    from .targets.adapter import EVAL_FILE, apply_adapter

    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise BadRepoId(f"{output} is not an empty folder; choose a new --output")
    adapter = resolve_source(source, token=token)
    if adapter.adapter_config is None:
        raise RunNotFound(f"{source} is not a mitigated variant (it has no adapter_config.json)")
    folder = adapter.fetch()
    if not merge:
        shutil.copytree(folder, output, dirs_exist_ok=True)
        return output
    figures = json.loads((folder / EVAL_FILE).read_text(encoding="utf-8")) if (folder / EVAL_FILE).is_file() else {}
    config = adapter.adapter_config
    target = load_target(base or config["base_model_name_or_path"], task=figures.get("task"),
                         revision=None if base else config.get("revision"), token=token)
    apply_adapter(target, folder, source)
    merged = target.model.merge_and_unload()
    output.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(output)
    target.processor.save_pretrained(output)
    return output
