"""Restructure: LoRA adapters trained on reviewers' feedback fade a model's failure modes.

``mitigate(MitigateConfig(run=..., feedback=[...], output=...))`` trains the adapter for the run's task (the
task registry names each task's ``Mitigator``), measures the shift on held-out seeds, and writes a mitigated
variant: a Hub model repo on disk that stock peft / diffusers / transformers code loads.
"""

from .config import MitigateConfig
from .outputs import format_shift
from .restructure import Mitigation, mitigate, read_figures

__all__ = ["MitigateConfig", "Mitigation", "format_shift", "mitigate", "read_figures"]
