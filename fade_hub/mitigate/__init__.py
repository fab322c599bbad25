"""Restructure: LoRA adapters trained on reviewers' feedback fade a model's failure modes.

``mitigate(MitigateConfig(run=..., feedback=[...], output=...))`` trains the adapter for the run's task (the
task registry names each task's ``Mitigator``), measures the shift on held-out seeds, and writes a mitigated
variant: a Hub model repo on disk that stock peft / diffusers / transformers code loads.
"""

from .config import MitigateConfig

__all__ = [
    "MitigateConfig", "Mitigation", "format_shift", "mitigate", "pull_adapter", "push_adapter", "read_figures",
]
_LAZY = {
    "Mitigation": "restructure", "mitigate": "restructure", "format_shift": "shift_text", "read_figures": "outputs",
    "pull_adapter": "publish", "push_adapter": "publish",
}


def __getattr__(name: str):
    # the model stack loads only when a mitigation runs, so that the CLI starts fast and the demo can start its Hub
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)
