"""``fade-hub pull``: write a mitigated variant (as it is, or merged into a plain model) into a folder, all or nothing.

The variant is written into the output's staging folder (``fade_hub.staging.OutputClaim``: ``.NAME.fade-staging``
beside ``--output``, locked while the pull runs) and moved into place in one rename once complete, so an
interrupted pull (Ctrl-C, kill -9, a full disk, a broken file in the source) leaves no partial ``--output`` to block
the rerun, and what it left in the staging folder is removed by the next pull (or mitigate) of that output.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import NETWORK_ERRORS, BadConfig, ModelNotFound, RunNotFound
from .paths import check_folder_target
from .staging import OutputClaim


def pull(source: str, output: str | Path, *, merge: bool = False, base: str | None = None,
         token: str | None = None, show_progress: bool = True) -> Path:
    """Write the mitigated variant ``source`` (an adapter repo or folder) into the new folder ``output``; with
    ``merge``, a plain model with the LoRA merged in (see ``fade_hub.mitigate.publish.pull_adapter``).

    BadConfig before anything is written when ``output`` is taken (or being written by another command) or ``base``
    is given without ``merge``; after a failure or an interruption ``output`` is as it was.
    """
    output = Path(output)
    if base is not None and not merge:
        raise BadConfig("--base only matters with --merge (it names the base model the LoRA is merged into; a plain "
                        "pull copies the adapter as it is): add --merge, or drop --base")
    check_folder_target(output, "--output", "to write the variant to")
    if output.exists() and any(output.iterdir()):
        raise BadConfig(f"--output {output} is not an empty folder; choose a new one")
    with OutputClaim(output, "pull") as claim:
        staged = claim.path("variant")
        _pull_into(source, staged, output, merge=merge, base=base, token=token, show_progress=show_progress)
        claim.publish(staged)
    return output


def _pull_into(source: str, staged: Path, output: Path, *, merge: bool, base: str | None, token: str | None,
               show_progress: bool) -> None:
    """``pull_adapter`` into the staging folder, its failures as one line each (``output`` names the destination)."""
    from .mitigate.publish import pull_adapter

    try:
        with _library_noise(show_progress):
            pull_adapter(source, staged, merge=merge, base=base, token=token)
    except ModelNotFound:
        if _is_dataset_repo(source, token):
            raise RunNotFound(f"{source} is a dataset repo (a run or its feedback), not a mitigated variant; pass the "
                              "model repo that fade-hub mitigate --push-to-hub wrote, or the adapter folder") from None
        raise
    except OSError as err:  # a broken link in the source, a full disk, a folder we may not write
        raise BadConfig(f"could not pull {source}: {_copy_problem(err)} (nothing was written to {output})") from None


def _copy_problem(err: OSError) -> str:
    """What went wrong, in a few words: the first file copytree could not copy, or the OS's reason."""
    if isinstance(err, shutil.Error) and err.args and isinstance(err.args[0], list) and err.args[0]:
        first = Path(err.args[0][0][0])
        if first.is_symlink() and not first.exists():
            return f"{first} is a broken link (what it points to is gone); repair or remove it and pull again"
        return f"{first} cannot be copied ({err.args[0][0][2]})"
    return f"{err.strerror or err}{f' ({err.filename})' if err.filename else ''}"


def _is_dataset_repo(source: str, token: str | None) -> bool:
    """Whether ``source`` names a dataset repo on the Hub (asked only after it was not found as a model)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HFValidationError

    try:
        return HfApi(token=token).repo_exists(source, repo_type="dataset")
    except (*NETWORK_ERRORS, HFValidationError, OSError):
        return False


@contextmanager
def _library_noise(show_progress: bool) -> Iterator[None]:
    """Keep the model libraries' deprecation warnings out, and their progress bars too unless ``show_progress``."""
    import huggingface_hub.utils as hub_utils
    from transformers.utils import logging as transformers_logging

    bars = transformers_logging.is_progress_bar_enabled(), not hub_utils.are_progress_bars_disabled()
    if not show_progress:
        transformers_logging.disable_progress_bar()
        hub_utils.disable_progress_bars()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft|diffusers)(\.|$)")
            yield
    finally:
        if bars[0]:
            transformers_logging.enable_progress_bar()
        if bars[1]:
            hub_utils.enable_progress_bars()
