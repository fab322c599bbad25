"""Queries per second of fade-hub against an endpoint, at concurrency 1, 4, 16 and 64: is there a serial bottleneck?

The endpoint is ``fade_hub.testing.inference_server --fixed text-classification`` in its own process: it
sleeps ``--delay`` (50 ms) per request and answers a fixed payload, with no model, so that what is measured
is fade-hub's side: the exploration as a run does it. Each measurement is the ``random`` explorer spending a
budget through the ``Querier`` into a fresh run folder: choosing cells in batches of ``max(16, 4 x concurrency)``
(a run's ``--batch-size``), one batch ahead (``Pipeline``), perturbing the seeds in the dispatcher's worker thread
while requests are in flight, ``AsyncInferenceClient`` requests through the ``Dispatcher`` (``--concurrency`` in
flight), judging each answer and appending its record to the log as it arrives (fsync in groups); over a remote
text-classification target, the built-in sentences and text space.

An endpoint taking ``delay`` seconds per request allows at most ``concurrency / delay`` queries per second;
``efficiency`` is the measured rate over that bound, and ``speed-up`` the rate over the rate at concurrency 1.
Side by side, alternating
with it, the same number of bare ``AsyncInferenceClient`` calls (same client, same server, nothing else):
``fade-hub/client`` is fade-hub's rate over that, its own overhead: the target is >= 0.95 up to concurrency 16 and
>= 0.85 above (a serial bottleneck, e.g. waiting for a batch to drain before the next is perturbed, shows up as
a falling ratio). Medians over repeats. Where the endpoint is fast enough for the client's CPU to bound the rate
(concurrency 64 here, two cores), the ratio follows the CPU each side spends per query, which other work on
the machine does not change much: ``cpu_ms_per_query`` gives it for the fade-hub process, per thread (its main
thread: the explorer, judging and logging; the requests' event loop; the perturbing worker), and for the bare
client, and ``cpu_vs_client`` the bare client's CPU per query over fade-hub's: the ratio the rates tend to where
the client's CPU bounds them on an idle machine. On a busy machine (a load average above the CPU count) each
process gets a share of the cores instead, and the measured ratio says less than ``cpu_vs_client``.

    python benchmarks/endpoint_throughput.py [--concurrency 1 4 16 64] [--delay 0.05] [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger("endpoint_throughput")

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "endpoint_throughput.json"
TARGET_VS_CLIENT = 0.95  # fade-hub's rate over the bare client's, up to TARGET_UP_TO requests in flight
TARGET_VS_CLIENT_ABOVE = 0.85  # and above it
TARGET_UP_TO = 16
LABELS = ["NEGATIVE", "POSITIVE"]
LOOP_THREAD, WORKER_THREAD = "fade-hub-endpoint", "fade-hub-inputs"  # fade_hub.targets.dispatch's thread names


@dataclass
class BenchConfig:
    """What to measure: concurrency levels, server delay, queries per level, repetitions."""

    concurrency: list[int] = field(default_factory=lambda: [1, 4, 16, 64])
    delay: float = 0.05
    seconds: float = 3.0  # ideal duration of one measurement: queries = max(min_queries, seconds * concurrency / delay)
    min_queries: int = 64
    repeats: int = 3
    output: Path = DEFAULT_OUTPUT


def start_server(delay: float) -> tuple[subprocess.Popen, str]:
    """The fixed-answer server in its own process, and its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fade_hub.testing.inference_server", "--fixed", "text-classification",
         "--delay", str(delay)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    line = process.stdout.readline().strip()
    if not line.startswith("READY "):
        process.kill()
        raise RuntimeError(f"the inference server did not start: {line!r}")
    return process, line.removeprefix("READY ")


def build_env(url: str, concurrency: int, batch_size: int) -> Any:
    """A FailureEnv over a remote text classifier at ``url``, the built-in sentences and text space."""
    from fade_hub.env import FailureEnv
    from fade_hub.judges import make_judge
    from fade_hub.perturb import load_space
    from fade_hub.seeds import SeedConfig, load_seeds
    from fade_hub.targets import RemoteConfig, load_remote_target

    remote = RemoteConfig(endpoint=url, concurrency=concurrency, labels=list(LABELS))
    target = load_remote_target("bench/fixed-classifier", remote, task="text-classification", batch_size=batch_size)
    seeds = load_seeds(SeedConfig("builtin:sentences"), target.modality, target.id2label)
    return FailureEnv(target, make_judge(target.task, None, target), load_space("builtin:text-default"), seeds)


def thread_cpu(prefix: str) -> float:
    """CPU seconds spent so far by this process's live threads whose name starts with ``prefix`` (NaN where the
    platform has no per-thread CPU clock, e.g. macOS)."""
    import threading

    if not hasattr(time, "pthread_getcpuclockid"):
        return math.nan
    return sum(time.clock_gettime(time.pthread_getcpuclockid(thread.ident)) for thread in threading.enumerate()
               if thread.name.startswith(prefix) and thread.ident is not None)  # fmt: skip


def measure(env: Any, count: int, batch: int, seed: int, folder: Path) -> tuple[float, float, float, float, float]:
    """Queries per second of the ``random`` explorer spending ``count`` queries through a Querier into ``folder``, and
    the CPU milliseconds per query of the whole process, of its main thread (the explorer, judging, logging), of the
    requests' event loop and of the perturbing worker."""
    import numpy as np

    from fade_hub.explore.baselines import run_random
    from fade_hub.explore.querier import Querier
    from fade_hub.store import RunStore

    store = RunStore(folder)
    store.create({"run_id": f"bench-{seed}"})
    querier = Querier(env, store, run_id=f"bench-{seed}", budget=count, show_progress=False, pool=env.seeds,
                      random_seed=seed)
    start, cpu, main_cpu = time.perf_counter(), time.process_time(), time.thread_time()
    loop_cpu, worker_cpu = thread_cpu(LOOP_THREAD), thread_cpu(WORKER_THREAD)
    run_random(querier, env.seeds, np.random.default_rng(seed), batch)
    elapsed = time.perf_counter() - start
    cpu, main_cpu = time.process_time() - cpu, time.thread_time() - main_cpu
    loop_cpu, worker_cpu = thread_cpu(LOOP_THREAD) - loop_cpu, thread_cpu(WORKER_THREAD) - worker_cpu
    store.close()
    assert querier.spent == count and len(store.read_queries()) == count
    return count / elapsed, *(1000 * seconds / count for seconds in (cpu, main_cpu, loop_cpu, worker_cpu))


def client_qps(url: str, concurrency: int, count: int) -> tuple[float, float]:
    """Queries per second of bare ``AsyncInferenceClient.text_classification`` calls, ``concurrency`` in flight, and
    the process's CPU milliseconds per query.

    The reference for fade-hub's own overhead: the same client and server, without perturbing, batching,
    retrying or judging.
    """
    import asyncio

    from huggingface_hub import AsyncInferenceClient

    async def measure_client() -> tuple[float, float]:
        async with AsyncInferenceClient(base_url=url) as client:
            slots = asyncio.Semaphore(concurrency)

            async def one() -> None:
                async with slots:
                    await client.text_classification("a fixed sentence", top_k=len(LABELS))

            await asyncio.gather(*(one() for _ in range(concurrency)))  # warm-up: connections
            start, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(one() for _ in range(count)))
            return count / (time.perf_counter() - start), 1000 * (time.process_time() - cpu) / count

    return asyncio.run(measure_client())


def run_level(url: str, concurrency: int, config: BenchConfig, work: Path) -> dict[str, Any]:
    """Median queries per second at one concurrency (fade-hub and the bare client, alternating), after a warm-up."""
    env = build_env(url, concurrency, max(16, 4 * concurrency))
    runs, client_runs, cpu, main_cpu, loop_cpu, worker_cpu, client_cpu = [], [], [], [], [], [], []
    try:
        batch = env.target.batch_size
        count = max(config.min_queries, round(config.seconds * concurrency / config.delay))
        measure(env, batch, batch, 99, work / f"warm-{concurrency}")  # warm-up: connections, imports, caches
        for rep in range(config.repeats):
            qps, *process_ms = measure(env, count, batch, rep, work / f"run-{concurrency}-{rep}")
            client, client_ms = client_qps(url, concurrency, count)
            for values, value in zip((runs, cpu, main_cpu, loop_cpu, worker_cpu, client_runs, client_cpu),
                                     (qps, *process_ms, client, client_ms)):
                values.append(value)
        usage = env.target.take_usage()
    finally:
        env.target.close()
    qps, client = statistics.median(runs), statistics.median(client_runs)
    ideal = concurrency / config.delay
    return {"concurrency": concurrency, "batch": batch, "queries": count, "qps": round(qps, 2),
            "qps_runs": [round(q, 2) for q in runs], "ideal_qps": round(ideal, 2),
            "efficiency": round(qps / ideal, 3), "client_qps": round(client, 2),
            "client_qps_runs": [round(q, 2) for q in client_runs], "client_efficiency": round(client / ideal, 3),
            "vs_client": round(qps / client, 3), "retries": usage["retries"],
            "cpu_ms_per_query": {"fade_hub": round(statistics.median(cpu), 3),
                                 "fade_hub_main_thread": round(statistics.median(main_cpu), 3),
                                 "fade_hub_requests_loop": per_query(loop_cpu),
                                 "fade_hub_inputs_worker": per_query(worker_cpu),
                                 "client": round(statistics.median(client_cpu), 3)},
            "cpu_vs_client": round(statistics.median(client_cpu) / statistics.median(cpu), 3)}  # fmt: skip


def per_query(values: list[float]) -> float | None:
    """The median of per-query CPU figures, rounded; None where the platform cannot measure them (NaN)."""
    median = statistics.median(values)
    return None if math.isnan(median) else round(median, 3)


def machine_info() -> dict[str, Any]:
    """Versions and CPU facts that the figures depend on."""
    from importlib.metadata import version

    return {
        "python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
        "huggingface_hub": version("huggingface_hub"), "httpx2": version("httpx2"), "fade_hub": version("fade-hub"),
        "load_average_1_5_15min": [round(x, 2) for x in os.getloadavg()],  # other work on the machine slows both sides
    }  # fmt: skip


def run(config: BenchConfig, work: Path) -> dict[str, Any]:
    """Every concurrency level against one server process (run folders in ``work``); the result record."""
    server, url = start_server(config.delay)
    try:
        levels = [run_level(url, c, config, work) for c in config.concurrency]
    finally:
        server.terminate()
        server.wait(timeout=30)
    base = next((lvl["qps"] for lvl in levels if lvl["concurrency"] == 1), None)
    for level in levels:
        level["speedup"] = round(level["qps"] / base, 2) if base else None
    for level in levels:
        level["target_vs_client"] = TARGET_VS_CLIENT if level["concurrency"] <= TARGET_UP_TO else TARGET_VS_CLIENT_ABOVE
    return {
        "levels": levels,
        "target": f"fade-hub/client >= {TARGET_VS_CLIENT} for concurrency <= {TARGET_UP_TO}, >= "
                  f"{TARGET_VS_CLIENT_ABOVE} above",
        "meets_target": all(lvl["vs_client"] >= lvl["target_vs_client"] for lvl in levels),
        "setup": {
            "server": f"fade_hub.testing.inference_server --fixed text-classification (own process), "
                      f"{config.delay * 1000:g} ms per request, fixed payload, no model",
            "measured": "the random explorer through the Querier into a run folder: batches of max(16, 4 x "
                        "concurrency) one ahead, perturbation in the dispatcher's worker thread, "
                        "AsyncInferenceClient.text_classification via the Dispatcher, label judge, record appended "
                        "as each answer arrives (fsync in groups: see fade_hub.store)",
            "seeds": "builtin:sentences", "space": "builtin:text-default", "repeats": config.repeats,
            "statistic": "median over repeats, after one warm-up batch",
        },  # fmt: skip
        "machine": machine_info(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def report(result: dict[str, Any]) -> str:
    """The figures as plain lines for stdout."""
    lines = ["concurrency   queries/s   ideal/s   efficiency   speed-up   bare client/s   client eff.   fade-hub/client"]
    for lvl in result["levels"]:
        speedup = "-" if lvl["speedup"] is None else f"{lvl['speedup']:.2f}"  # none without concurrency 1
        lines.append(f"{lvl['concurrency']:>11}   {lvl['qps']:>9.1f}   {lvl['ideal_qps']:>7.0f}   {lvl['efficiency']:>10.2f}"
                     f"   {speedup:>8}   {lvl['client_qps']:>13.1f}   {lvl['client_efficiency']:>11.2f}"
                     f"   {lvl['vs_client']:>15.2f}")  # fmt: skip
    for lvl in result["levels"]:
        cpu = lvl["cpu_ms_per_query"]
        lines.append(f"concurrency {lvl['concurrency']}: CPU ms per query: fade-hub {cpu['fade_hub']:.3f} (main thread "
                     f"{cpu['fade_hub_main_thread']:.3f}, requests' loop {cpu['fade_hub_requests_loop']}, inputs "
                     f"worker {cpu['fade_hub_inputs_worker']}), bare client {cpu['client']:.3f}: client/fade-hub "
                     f"{lvl['cpu_vs_client']:.2f}")  # fmt: skip
    lines.append(f"target: {result['target']}: {'met' if result['meets_target'] else 'NOT met'}; machine load average "
                 f"(1/5/15 min) {result['machine']['load_average_1_5_15min']} on {result['machine']['cpu_count']} CPUs")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    """Command-line flags as a ``BenchConfig``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64], help="levels to measure")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds the server takes per request")
    parser.add_argument("--seconds", type=float, default=3.0, help="ideal seconds of one measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per level (median reported)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: concurrency 1 and 4, short, one repeat")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the results JSON")
    args = parser.parse_args(argv)
    if min(args.concurrency) < 1 or args.repeats < 1 or args.delay <= 0 or args.seconds <= 0:
        parser.error("--concurrency and --repeats must be >= 1, --delay and --seconds > 0")
    if args.quick:
        return BenchConfig(concurrency=[1, 4], delay=args.delay, seconds=0.5, min_queries=8, repeats=1, output=args.output)
    return BenchConfig(args.concurrency, args.delay, args.seconds, repeats=args.repeats, output=args.output)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the figures and write the results JSON."""
    config = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("fade_hub").setLevel(logging.WARNING)
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="fade-hub-bench-") as tmp:
        # no Hub: its metadata lookup is refused at once (HF_HUB_OFFLINE would block the endpoint requests too)
        os.environ.update({"HF_HOME": str(Path(tmp) / "hf_home"), "HF_ENDPOINT": "http://127.0.0.1:9",
                           "HF_HUB_DISABLE_TELEMETRY": "1", "FADE_HUB_CACHE": str(Path(tmp) / "fade_cache")})  # fmt: skip
        result = run(config, Path(tmp))
    print(report(result))
    config.output.parent.mkdir(parents=True, exist_ok=True)
    config.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {config.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
