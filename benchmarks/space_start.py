"""Offline start of the feedback app: seconds from ``fade-hub space serve`` on a local run folder to its first page.

Builds a small run once (a grid exploration of the shipped shapes classifier over a 4x4 space, in a temp dir), then
starts ``fade-hub space serve --failures RUN --reviewer ada`` in a fresh process ``--repeats`` times with no network:
``HF_ENDPOINT`` names a port nobody listens on, and every other request would go through a local proxy that records
it and answers 502. Reports the median seconds to the port's first page (target < 10 s), beside the seconds a bare
``python -c "import gradio"`` takes on the same machine at the same time (the floor no app built on gradio goes
under), and every request the proxy saw (target: none).

    python benchmarks/space_start.py [--repeats 3] [--output PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "space_start.json"
SPACE = {"modality": "image", "factors": [{"name": "rotation", "op": "rotate", "levels": [0, 30, 45, 60]},
                                          {"name": "brightness", "op": "brightness", "levels": [1.0, 0.5, 0.3, 0.15]}]}


def free_port() -> int:
    """A TCP port that is free right now on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_run(folder: Path) -> Path:
    """A finished local run of the shipped shapes model (grid over ``SPACE``)."""
    from fade_hub.demo.shapes import shipped_model_dir, write_seed_folder
    from fade_hub.explore.config import ExploreConfig
    from fade_hub.explore.runner import explore
    from fade_hub.perturb import ConceptSpace

    space = folder / "space.yaml"
    ConceptSpace.from_dict(SPACE).to_yaml(space)
    seeds = write_seed_folder(folder / "seeds", per_class=6, seed=0)
    run = explore(ExploreConfig(model=str(shipped_model_dir()), seeds=str(seeds), space=str(space), algorithm="grid",
                                output=str(folder / "run"), show_progress=False))
    return run.path


def start_once(run_dir: Path, folder: Path, proxy_url: str) -> float:
    """Seconds from starting ``space serve`` to its first page, with no Hub and no network."""
    port = free_port()
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}", "NO_PROXY": "127.0.0.1,localhost",
           "no_proxy": "127.0.0.1,localhost", "HF_HOME": str(folder / "hf_home")}
    env.update({name: proxy_url for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")})
    env.pop("GRADIO_ANALYTICS_ENABLED", None)
    command = [sys.executable, "-m", "fade_hub.cli", "space", "serve", "--failures", str(run_dir), "--feedback-dir",
               str(folder / "fb"), "--port", str(port), "--reviewer", "ada"]
    started = time.perf_counter()
    with open(folder / "serve.log", "ab") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"space serve exited with {process.returncode}; see {folder / 'serve.log'}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
                    if page.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.05)
    finally:
        process.terminate()
        process.wait(timeout=30)


def import_gradio() -> float:
    """Seconds a fresh interpreter takes to import gradio (the floor of any gradio app's start)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import gradio"], check=True, capture_output=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    from fade_hub.testing.http_server import HTTPServerThread, Response

    seen: list[str] = []

    async def proxy(request):
        seen.append(f"{request.method} {request.path}")
        return Response(502, b"offline")

    with tempfile.TemporaryDirectory(prefix="space-start-") as temp, HTTPServerThread(proxy) as outside:
        folder = Path(temp)
        run_dir = build_run(folder)
        seconds, floor = [], []
        for _ in range(args.repeats):  # interleaved, so that both see the same load
            seconds.append(start_once(run_dir, folder, outside.url))
            floor.append(import_gradio())
    result = {
        "seconds_to_first_page": {"median": statistics.median(seconds), "all": seconds},
        "seconds_to_import_gradio": {"median": statistics.median(floor), "all": floor},
        "target_seconds": 10.0,
        "requests_to_other_hosts": seen,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average": list(os.getloadavg())},
    }
    print(f"space serve, local run, no network: first page after {statistics.median(seconds):.1f} s (median of "
          f"{len(seconds)}: {', '.join(f'{s:.1f}' for s in seconds)}); importing gradio alone: "
          f"{statistics.median(floor):.1f} s; requests to other hosts: {len(seen)}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
