"""Offline test helpers: ``LocalHub`` (a Hub-compatible server over a folder); tiny models live in ``.tiny``."""

from .localhub import LocalHub

__all__ = ["LocalHub"]
