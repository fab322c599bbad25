"""The training loop the small generative fixtures share: AdamW from scratch, warm-up, then a linear decay."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def fit(model: Any, batch: Callable[[], dict[str, Any]], *, steps: int, learning_rate: float) -> None:
    """Train ``model`` on ``steps`` batches of ``batch()`` (model kwargs with labels), then leave it in eval mode.

    The rate warms up over the first 10 % of the steps, stays, and decays linearly to zero over the last 30 %.
    """
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    warmup = max(steps // 10, 1)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, (steps - step) / (0.3 * steps), 1.0))
    model.train()
    for _ in range(steps):
        loss = model(**batch()).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    model.eval()
