"""Seed files of generated text rows (one JSON object per line), held-out ones disjoint from the others."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def write_rows(path: Path, make: Callable[[random.Random], dict[str, Any]], count: int, seed: int,
               avoid: Sequence[Path] | None = None) -> Path:
    """``count`` rows drawn by ``make`` as ``.jsonl``; with ``avoid`` (the seed files a held-out file must not share
    an input with), the rows are distinct and none has the ``text`` of a row there. ValueError when ``make`` runs out
    of such rows."""
    rng = random.Random(seed)
    taken = {json.loads(line)["text"] for file in avoid or () for line in Path(file).read_text().splitlines()
             if line.strip()}
    rows: list[dict[str, Any]] = []
    for _ in range(1000 * count):
        if len(rows) == count:
            break
        row = make(rng)
        if avoid is not None:
            if row["text"] in taken:
                continue
            taken.add(row["text"])
        rows.append(row)
    if len(rows) < count:
        raise ValueError(f"only {len(rows)} distinct rows not in {[str(file) for file in avoid or ()]}; asked {count}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path
