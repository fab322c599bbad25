"""Push runs to the Hub and read them back; the token comes from HF_TOKEN or the stored login only."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx2
import pandas as pd
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

from .errors import HubUnreachable, RunNotFound
from .store import LANDSCAPE_FILE, META_FILE, RunStore

logger = logging.getLogger(__name__)

# Never uploaded: the policy checkpoint and temp files (media stay: the card shows them).
PUSH_IGNORE = (".policy/**", "**/.*.tmp", ".*")


# What a Hub that cannot be reached raises through huggingface_hub 2.x (it sends HTTP with httpx2).
NETWORK_ERRORS = (httpx2.TransportError, OfflineModeIsEnabled, ConnectionError, TimeoutError)


def push_run(run_dir: str | Path, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
    """Push a finished run directory as a dataset repo; pushing unchanged content again adds no commit."""
    from huggingface_hub import HfApi, constants

    from .summarize import write_card

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


def run_file(spec: str | Path, name: str, *, token: str | None = None) -> Path:
    """Path of one file of a run: in a local run directory, or downloaded from a pushed dataset repo."""
    path = Path(spec)
    if path.is_dir():
        if not (path / name).exists():
            status = RunStore(path).read_meta().get("status")
            raise RunNotFound(f"{path} has no {name} yet (status {status!r}); finish the run with --resume")
        return path / name
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(hf_hub_download(str(spec), name, repo_type="dataset", token=token))
    except RepositoryNotFoundError:
        raise RunNotFound(f"{spec!s} is neither a local run directory nor a dataset repo on the Hub") from None
    except EntryNotFoundError:
        raise RunNotFound(f"dataset {spec!s} is not a fade-hub run (no {name})") from None
    except NETWORK_ERRORS as err:
        raise HubUnreachable(f"could not reach the Hub to read {spec!s} ({type(err).__name__}); check HF_ENDPOINT") from None


def open_run(spec: str | Path, *, token: str | None = None) -> tuple[dict[str, Any], pd.DataFrame]:
    """Read a run's metadata and landscape from a local run directory or a pushed dataset repo."""
    meta = json.loads(run_file(spec, META_FILE, token=token).read_text(encoding="utf-8"))
    return meta, pd.read_parquet(run_file(spec, LANDSCAPE_FILE, token=token))
