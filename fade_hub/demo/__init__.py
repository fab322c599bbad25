"""``fade-hub demo``: the whole loop on a small real model (``shapes``), offline, on an embedded Hub."""

from .run import DemoConfig, DemoResult, run_demo

__all__ = ["DemoConfig", "DemoResult", "run_demo"]
