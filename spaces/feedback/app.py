"""fade-hub feedback Space: review a run's failure regions and give verdicts that land on the Hub.

Configured by Space variables and secrets (see README.md): FADE_FAILURES, FADE_FEEDBACK_REPO, HF_TOKEN, and
optionally FADE_REVIEWERS, FADE_ADAPTERS, FADE_ALLOW_ANONYMOUS. When one is missing the page says what to add.
Runs from this folder alone: `fade-hub space deploy` puts the few fade_hub modules it needs next to it.
"""

import logging
from pathlib import Path

import fade_hub
from fade_hub.feedback.app import serve_space

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("fade_hub.space").info(
    "fade_hub %s loaded from %s", fade_hub.__version__, Path(fade_hub.__file__).resolve().parent
)

if __name__ == "__main__":
    serve_space()
