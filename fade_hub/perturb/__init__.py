"""Concept spaces and perturbation ops: ordered factors × levels from YAML, applied to images, text and prompts."""

from .image import prepare_image
from .concepts import (
    Factor,
    Op,
    ConceptSpace,
    default_space_for,
    format_level,
    list_builtin_spaces,
    load_space,
    ops_for,
)

__all__ = [
    "Factor",
    "Op",
    "ConceptSpace",
    "default_space_for",
    "format_level",
    "list_builtin_spaces",
    "load_space",
    "ops_for",
    "prepare_image",
]
