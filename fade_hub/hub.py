"""Push runs to the Hub; the token comes from HF_TOKEN or the stored login only (read runs with ``fade_hub.run``,
push and pull mitigated variants with ``fade_hub.mitigate.publish``)."""

from __future__ import annotations

import logging
from pathlib import Path

from huggingface_hub.errors import HfHubHTTPError

from .card import write_card
from .errors import NETWORK_ERRORS, HubUnreachable, RunNotFound
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

