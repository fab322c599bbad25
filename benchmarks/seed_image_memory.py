"""Peak memory of reading image seeds: a 20 KB decompression-bomb PNG and a large JPEG against a small image.

Writes three seed folders to a temp dir and reads each through fade-hub's real ``read_seeds`` in its own
child process, which reports its peak resident set size (``ru_maxrss``):

* small: one 32x32 PNG (the baseline: the interpreter, PIL and fade-hub's imports);
* bomb:  the same PNG plus a 13000x13000 one-bit PNG that compresses to about 20 KB (169 megapixels);
* jpeg:  the same PNG plus an 8000x6000 JPEG (48 megapixels).

Each folder is read in a fresh process, the three one after the other, repeated ``--repeats`` times; the
medians are reported with the extra peak over the baseline, and which seeds were kept at which size.
Nothing reaches the network.

    python benchmarks/seed_image_memory.py [--repeats 3] [--output PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "seed_image_memory.json"
BOMB_SIDE = 13000
JPEG_SIZE = (8000, 6000)
CHILD = """
import json, logging, resource, sys
logging.disable(logging.CRITICAL)
from fade_hub.seeds import SeedConfig, read_seeds
seeds, _ = read_seeds(SeedConfig(sys.argv[1]), "image")
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_mib": peak_kib / 1024, "seeds": {s.seed_id: list(s.input.size) for s in seeds}}))
"""


def write_folders(root: Path) -> dict[str, Path]:
    """The three seed folders (each a LABEL/file layout) under ``root``."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # writing the bomb, not reading it
    folders = {name: root / name / "circle" for name in ("small", "bomb", "jpeg")}
    for folder in folders.values():
        folder.mkdir(parents=True)
        Image.new("RGB", (32, 32), (200, 30, 30)).save(folder / "small.png")
    Image.new("1", (BOMB_SIDE, BOMB_SIDE), 0).save(folders["bomb"] / "bomb.png", optimize=True)
    gradient = Image.linear_gradient("L").resize(JPEG_SIZE).convert("RGB")
    gradient.save(folders["jpeg"] / "photo.jpg", quality=85)
    return {name: folder.parent for name, folder in folders.items()}


def measure(folder: Path) -> dict:
    """Peak RSS and kept seeds of one ``read_seeds`` call in a fresh process."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(folder)], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ))
    if done.returncode != 0:
        raise SystemExit(f"reading {folder} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Measure, print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="Fresh-process reads per folder (default 3).")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="Where to write the JSON results.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="seed-memory-") as tmp:
        folders = write_folders(Path(tmp))
        sizes = {name: sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
                 for name, folder in folders.items()}
        runs: dict[str, list[dict]] = {name: [] for name in folders}
        for _ in range(args.repeats):
            for name, folder in folders.items():
                runs[name].append(measure(folder))
    peaks = {name: statistics.median(run["peak_mib"] for run in found) for name, found in runs.items()}
    result = {
        "peak_mib": {name: round(value, 1) for name, value in peaks.items()},
        "extra_over_small_mib": {name: round(peaks[name] - peaks["small"], 1) for name in ("bomb", "jpeg")},
        "seeds_kept": {name: found[-1]["seeds"] for name, found in runs.items()},
        "folder_bytes": sizes,
        "setup": {"bomb": f"{BOMB_SIDE}x{BOMB_SIDE} one-bit PNG", "jpeg": f"{JPEG_SIZE[0]}x{JPEG_SIZE[1]} JPEG",
                  "repeats": args.repeats},
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count()},
    }
    for name in folders:
        kept = ", ".join(f"{seed} {w}x{h}" for seed, (w, h) in result["seeds_kept"][name].items())
        print(f"{name:<6} {sizes[name] / 1024:8.1f} KiB on disk  peak RSS {peaks[name]:7.1f} MiB  "
              f"(+{peaks[name] - peaks['small']:6.1f})  kept: {kept}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    print(f"written: {args.output}")


if __name__ == "__main__":
    main()
