"""LocalHub: a Hugging Face Hub-compatible server over a folder, the embedded Hub of ``fade-hub demo``.

``fade-hub localhub serve`` runs it standalone; the tests use it as their Hub. The unmodified
huggingface_hub, datasets, transformers, peft, diffusers and gradio clients talk to it once
``HF_ENDPOINT`` points at it and ``HF_HUB_DISABLE_XET=1`` is set.
"""

from .server import LocalHub

__all__ = ["LocalHub"]
