"""What publishing a run must respect of its inputs: the licence they carry and who may see them.

A run republishes its model's outputs and its seeds (failing images, texts, prompts). Its dataset card
therefore takes the model's licence, else the seed dataset's, else ``other`` with a note; and a run
whose model or seeds are private or gated on the Hub is pushed private unless the user says ``--public``.
Both facts are looked up when the run starts (``publication_meta``) and kept in ``run.json``, so that
``fade-hub push`` can decide later, offline if need be.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import NETWORK_ERRORS, BadConfig

logger = logging.getLogger(__name__)

# the licence of the seed sets shipped with fade-hub (written for it, released with it)
BUILTIN_SEEDS_LICENSE = "apache-2.0"
# access levels whose data must not be republished in public by default
RESTRICTED = ("private", "gated", "unknown")
NO_LICENSE_NOTE = "neither the model nor the seed data declare a licence: set one before sharing this dataset"


@dataclass(frozen=True)
class Origin:
    """Where an input comes from, as publishing cares: its declared licence and its access on the Hub.

    ``access`` is ``public``, ``private``, ``gated`` (Hub repos), ``local`` (a folder or file of the user's),
    or ``unknown`` (the Hub could not be asked).
    """

    license: str | None = None
    access: str = "local"


def _card_license(card_data: Any, tags: list[str] | None) -> str | None:
    """The licence a Hub repo declares: its card's ``license`` (``license_name`` for ``other``), else a tag."""
    data = card_data.to_dict() if hasattr(card_data, "to_dict") else dict(card_data or {})
    declared = data.get("license")
    if isinstance(declared, list):
        declared = declared[0] if declared else None
    if declared == "other" and data.get("license_name"):
        declared = f"other ({data['license_name']})"
    if declared:
        return str(declared)
    return next((tag.split(":", 1)[1] for tag in tags or [] if tag.startswith("license:")), None)


def hub_origin(info: Any) -> Origin:
    """The origin of a Hub repo from its ``model_info`` / ``dataset_info``."""
    access = "gated" if getattr(info, "gated", False) else "private" if getattr(info, "private", False) else "public"
    return Origin(_card_license(getattr(info, "card_data", None), getattr(info, "tags", None)), access)


def folder_origin(folder: Path) -> Origin:
    """The origin of a local folder: the licence in the YAML header of its ``README.md``, if any."""
    from huggingface_hub.repocard import metadata_load

    readme = Path(folder) / "README.md"
    try:
        metadata = metadata_load(readme) if readme.is_file() else None
    except (ValueError, OSError, UnicodeDecodeError) as err:  # a README without valid YAML declares nothing
        logger.debug("cannot read the licence of %s: %s", readme, err)
        metadata = None
    return Origin(_card_license(metadata, None), "local")


def seeds_origin(source: str, *, token: str | bool | None = None) -> Origin:
    """The origin of a seed source: ``builtin:NAME``, a local folder or file, or a Hub dataset id."""
    if source.startswith("builtin:"):
        return Origin(BUILTIN_SEEDS_LICENSE, "public")
    path = Path(source).expanduser()
    if path.exists():
        return folder_origin(path) if path.is_dir() else Origin(None, "local")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return hub_origin(HfApi(token=token).dataset_info(source))
    except (*NETWORK_ERRORS, HfHubHTTPError) as err:
        logger.warning("could not ask the Hub whether seed dataset %s is public (%s): it counts as private when "
                       "the run is pushed", source, type(err).__name__)
        return Origin(None, "unknown")


def publication_meta(model: Origin | None, seeds: Origin | None) -> dict:
    """The ``run.json`` fields of a run's licence (``license``, ``license_from``) and of its inputs' access."""
    model, seeds = model or Origin(access="unknown"), seeds or Origin(access="local")
    if model.license:
        license_name, found_in = model.license, "model"
    elif seeds.license:
        license_name, found_in = seeds.license, "seeds"
    else:
        license_name, found_in = "other", None
    return {
        "license": license_name,
        "license_from": found_in,
        "inputs_access": {"model": model.access, "seeds": seeds.access},
    }


def license_text(meta: dict) -> str:
    """One line for the card on the dataset's licence and where it comes from."""
    found_in = {"model": "the model under test", "seeds": "the seed data"}.get(meta.get("license_from") or "")
    if found_in:
        return f"{meta.get('license')}, as declared by {found_in}"
    return f"{meta.get('license') or 'other'}: {NO_LICENSE_NOTE}"


def push_private(meta: dict, *, private: bool, public: bool) -> bool:
    """Whether a push creates a private repo: asked for, or (unless ``public``) forced by restricted inputs."""
    if private and public:
        raise BadConfig("--private and --public contradict each other; pass one of them")
    access = meta.get("inputs_access") or {}
    restricted = {name: kind for name, kind in access.items() if kind in RESTRICTED}
    if not restricted or private:
        return private
    what = " and ".join(f"the {name} ({kind})" for name, kind in restricted.items())
    if public:
        logger.warning("pushing in public, as --public asks, a run whose %s may not be republished in public", what)
        return False
    logger.warning("the run's %s may not be republished in public: pushing it as a private dataset; "
                   "pass --public to publish it anyway", what)
    return True
