"""Pushing a mitigated variant links it from the card of the run it was made for.

The variants a run knows of are the adapters the Hub lists for it (their card metadata names the run:
``fade_hub.feedback.variants.published_for``); ``push`` writes them into the run's card
(``fade_hub.card.variants_section``), and pushing a variant (``push_adapter``) rewrites that section of the run's
card on the Hub, so that it lists the new variant too. The section sits between two HTML comments, so that it is
replaced, never repeated.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from .card import VARIANTS_END, VARIANTS_START, variants_section
from .feedback.variants import published_for

logger = logging.getLogger(__name__)

BEFORE = "## Concept space"  # a card without the section gets it above this heading (else at its end)


def with_variants(card: str, variants: list[str]) -> str:
    """The card text with its variants section replaced by (or given) one listing ``variants``."""
    section = "\n".join(variants_section(variants))
    pattern = re.compile(re.escape(VARIANTS_START) + r".*?" + re.escape(VARIANTS_END) + r"\n?", re.DOTALL)
    if pattern.search(card):
        return pattern.sub(lambda _: section, card, count=1)
    if not section:
        return card
    where = card.find(f"\n{BEFORE}\n")
    return card[: where + 1] + section + "\n" + card[where + 1 :] if where >= 0 else card.rstrip("\n") + "\n\n" + section


def link_variant(run_repo: str, run_id: str, adapter_repo: str, token: str | None = None) -> bool:
    """List ``adapter_repo`` (and every variant the Hub knows of) on the card of the run dataset ``run_repo``; False
    when the run is not a dataset repo (a local run folder), or, with a warning, when its card cannot be read or
    changed (e.g. no write access to the run's repo)."""
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError

    from .errors import NETWORK_ERRORS
    from .paths import looks_like_path

    if not run_repo or looks_like_path(run_repo) or Path(run_repo).exists():
        return False
    try:
        path = hf_hub_download(run_repo, "README.md", repo_type="dataset", token=token)
        with open(path, encoding="utf-8") as handle:
            card = handle.read()
        updated = with_variants(card, sorted({*published_for([run_id], token=token), adapter_repo}))
        if updated != card:
            HfApi(token=token).upload_file(path_or_fileobj=updated.encode("utf-8"), path_in_repo="README.md",
                                           repo_id=run_repo, repo_type="dataset",
                                           commit_message=f"fade-hub: link the mitigated variant {adapter_repo}")
    except (*NETWORK_ERRORS, HfHubHTTPError, HFValidationError, OSError) as err:
        logger.warning("could not link %s from the card of the run %s (%s); the variant itself is pushed",
                       adapter_repo, run_repo, type(err).__name__)
        return False
    return True
