"""Push runs to the Hub; the token comes from HF_TOKEN or the stored login only (read runs with ``fade_hub.run``,
push and pull mitigated variants with ``fade_hub.mitigate.publish``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from huggingface_hub.errors import HfHubHTTPError

from .card import run_card
from .errors import NETWORK_ERRORS, BadConfig, HubUnreachable, RunNotFound
from .paths import check_repo_id
from .provenance import push_private
from .store import RunStore

logger = logging.getLogger(__name__)

# Never uploaded: the policy checkpoint and temp files (media stay: the card shows them).
PUSH_IGNORE = (".policy/**", "**/.*.tmp", ".*")
CARD_FILE = "README.md"


def push_run(
    run_dir: str | Path, repo_id: str, *, private: bool = False, public: bool = False, token: str | None = None
) -> str:
    """Push a finished run directory as a dataset repo; pushing unchanged content again adds no commit.

    The repo is private when asked, or when the run's model or seeds are private or gated on the Hub
    (unless ``public``). The card that names the repo is built in memory and uploaded with the run; the
    local ``README.md`` is rewritten to name the repo only once the Hub has accepted the commit. The run folder is
    held while it is pushed (FolderBusy while another process explores it).
    """
    check_repo_id(repo_id, "REPO_ID")
    store = RunStore(run_dir)
    store.read_meta()
    store.hold(instead=None)  # no resume may change the run while it is pushed
    try:
        return _push(store, repo_id, private=private, public=public, token=token)
    finally:
        store.release()


def _push(store: RunStore, repo_id: str, *, private: bool, public: bool, token: str | None) -> str:
    """``push_run`` once the run folder is held."""
    from huggingface_hub import HfApi, constants

    meta = store.read_meta()
    if meta.get("status") != "finished":
        raise RunNotFound(f"{store.root} is not finished (status {meta.get('status')!r}); resume it with --resume first")
    private = push_private(meta, private=private, public=public)
    api = HfApi(token=token)
    retry = f"the run in {store.root} is intact — retry with: fade-hub push {store.root} {repo_id}"
    with _hub_errors(repo_id, retry):
        repo_id = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True).repo_id
        is_public = private and not api.dataset_info(repo_id).private
    if is_public:
        raise BadConfig(f"{repo_id} already exists and is public, and this run must be pushed private; pass --public "
                        "to publish it there, or push to another repo")
    card = run_card(store, repo_id, token)
    with _hub_errors(repo_id, retry):
        api.create_commit(
            repo_id=repo_id,
            repo_type="dataset",
            operations=_operations(store.root, str(card)),
            commit_message=f"fade-hub run {meta['run_id']} of {meta['model_id']}",
        )
    card.save(store.root / CARD_FILE)
    return f"{constants.ENDPOINT}/datasets/{repo_id}"


@contextmanager
def _hub_errors(repo_id: str, retry: str) -> Iterator[None]:
    """Map what the Hub client raises during a push to HubUnreachable, with a retry hint."""
    from huggingface_hub import constants

    try:
        yield
    except HfHubHTTPError as err:
        raise HubUnreachable(f"the Hub refused the push to {repo_id}: {str(err).splitlines()[0]}; check the token's "
                             f"write access; {retry}") from None
    except (*NETWORK_ERRORS, OSError) as err:
        raise HubUnreachable(f"could not reach the Hub at {constants.ENDPOINT} ({type(err).__name__}); {retry}") \
            from None


def _operations(root: Path, card: str) -> list:
    """The commit: every file of the run except the ignored ones, with ``card`` as its README."""
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.utils import filter_repo_objects

    files = sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())
    kept = [name for name in filter_repo_objects(files, ignore_patterns=list(PUSH_IGNORE)) if name != CARD_FILE]
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=root / name) for name in kept]
    return operations + [CommitOperationAdd(path_in_repo=CARD_FILE, path_or_fileobj=card.encode("utf-8"))]
