"""Concept spaces and perturbation ops: ordered factors × levels from YAML, applied to images, text and prompts."""

from .builtin import list_builtin_spaces, load_space
from .concepts import ConceptSpace, ops_for
from .image import prepare_image
from .ops import Factor, Op, format_level

__all__ = [
    "ConceptSpace",
    "Factor",
    "Op",
    "format_level",
    "list_builtin_spaces",
    "load_space",
    "ops_for",
    "prepare_image",
]
