"""fade-hub: discover, summarize and fade the failure modes of Hugging Face models."""

__version__ = "0.1.0"
