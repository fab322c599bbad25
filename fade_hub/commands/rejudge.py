"""`fade-hub rejudge`: a finished run's answers judged again by an LLM judge, into a new run folder.

No model is loaded or queried: every recorded answer (inputs after perturbation, outputs as the model gave them) is
judged under the rubric against its cell's expectation, the landscape, regions and card are computed again, and
``run.json`` records the source run (``rejudged_from``: its run id, folder and judge). Verdicts come from the judge
cache when the same judge already read the same case (a second ``rejudge`` asks the judge nothing).
"""

from __future__ import annotations

import argparse
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ..config.judge import JudgeOptions
from ..config.output import OutputOptions, SourceOptions
from ..config.target import RemoteOptions
from ..options import ConfigTree, add_options, build_config, check_ranges, recorded_options, section

_JUDGE = "LLM judge"


@dataclass(init=False)
class RejudgeConfig(ConfigTree):
    """Settings of ``fade-hub rejudge``: the source run, where the new run goes, and the LLM judge (the sections
    ``explore`` names them with, offered with rejudge's wording)."""

    source: SourceOptions = section(SourceOptions, helps={
        "run": "The finished run directory (or pushed dataset repo ID) to judge again."})
    result: OutputOptions = section(OutputOptions, only=("output",), group=None, helps={
        "output": "The new run directory (default: RUN-rejudged next to RUN)."})
    judging: JudgeOptions = section(JudgeOptions, group=_JUDGE, only=(
        "judge_llm", "judge_endpoint", "judge_provider", "judge_endpoint_token", "judge_rubric", "judge_device"), helps={
        "judge_llm": "The judge chat model (local, or the one --judge-endpoint / --judge-provider serves).",
        "judge_endpoint": "The judge is served at this URL.",
        "judge_provider": "The judge is asked through this Inference Provider, with HF_TOKEN.",
        "judge_endpoint_token": "Bearer token for --judge-endpoint only (default: $FADE_HUB_JUDGE_TOKEN); never "
                                "recorded.",
        "judge_rubric": "A built-in rubric or a YAML file (default: the task's: harmful, or unfaithful for summaries).",
        "judge_device": "Where a local judge runs (default: auto)."})
    served: RemoteOptions = section(RemoteOptions, group=_JUDGE, only=("concurrency", "max_retries", "request_timeout"),
                                    helps={"concurrency": "A served judge: requests in flight at once.",
                                           "max_retries": "A served judge: retries of a 429/5xx answer.",
                                           "request_timeout": "A served judge: seconds one answer may take."})

    def validate(self) -> None:
        """Check ranges and that one LLM judge is named; BadConfig naming the flag."""
        from ..errors import BadConfig

        check_ranges(self)
        if not (self.judge_llm or self.judge_endpoint or self.judge_provider):
            raise BadConfig("rejudge needs an LLM judge: pass --judge-llm MODEL_ID or --judge-endpoint URL")
        self.judging.check_llm()

    @property
    def run_dir(self) -> Path:
        """Where the new run goes."""
        return Path(self.output) if self.output else Path(str(self.run).rstrip("/") + "-rejudged")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `rejudge` subcommand."""
    p = subparsers.add_parser(
        "rejudge", help="Judge a finished run's answers again with an LLM judge (no model query), into a new run.",
        description="Judge every answer of RUN again with an LLM judge and a rubric, without querying the model, "
                    "into a new run folder that records where it came from; verdicts are cached.",
    )
    p.add_argument("run", help="Run directory or dataset repo ID.")
    add_options(p, RejudgeConfig, skip=("run",))
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Re-judge the run and print where the new one is."""
    config = build_config(RejudgeConfig, args, run=args.run)
    run = rejudge(config)
    print(run.path)
    return 0


def rejudge(config: RejudgeConfig) -> Any:
    """Judge the source run's answers with the configured LLM judge into a new run; the new ``Run``."""
    import pandas as pd

    from ..assembly import judge_settings
    from ..config.target import TargetOptions
    from ..judges.llm import LLMJudge
    from ..run import Run
    from ..store import RunStore
    from ..summarize import summarize

    config.validate()
    source = Run.open(config.run)
    store = RunStore(config.run_dir)
    store.check_output(False)
    queries = pd.DataFrame(source.queries)
    judge = LLMJudge(judge_settings(config.judging, config.served, TargetOptions()), source.meta["task"],
                     probe=False)  # nothing is written before the judge has answered
    try:
        records = judged_again(source.meta, queries, judge)
        usage = judge.take_usage()
    finally:
        judge.close()
    run_id = uuid.uuid4().hex[:12]
    meta = {key: value for key, value in source.meta.items()
            if key not in ("usage", "judge_usage", "card_assets", "data_files", "timings")}
    meta.update(run_id=run_id, judge=judge.describe(), judge_usage=usage, status="finished",
                started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                rejudged_from={"run_id": source.meta.get("run_id"), "run": str(config.run),
                               "judge": (source.meta.get("judge") or {}).get("name")})
    for record in records:
        record["run_id"] = run_id
    store.hold()
    try:
        store.create(meta)
        store.append(records)
        policy = RunStore(source.path).read_policy() if source.path is not None else None
        if policy is not None:
            store.write_policy(policy)
        store.update_meta(finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        summarize(store)
    finally:
        store.release()
    return Run.open(store.root)


def judged_again(meta: dict[str, Any], queries: Any, judge: Any) -> list[dict[str, Any]]:
    """The source records with the judge's verdicts in place of the old ones (cells not judged stay so)."""
    from ..env import CLEAN_ACTION_ID
    from ..perturb import ConceptSpace
    from ..perturb.expect import CLEAN, cell_expectation, resolve
    from ..targets import Prediction

    space = ConceptSpace.from_dict(meta["space"])
    factors = resolve(space, None)
    expectations = {}
    for action_id in set(int(a) for a in queries["action_id"]):
        expectations[action_id] = CLEAN if action_id == CLEAN_ACTION_ID else \
            cell_expectation(space, space.action_from_id(action_id), factors)  # fmt: skip
    rows = queries.to_dict("records")
    seeds = [SimpleNamespace(reference=row.get("reference") or "") for row in rows]
    verdicts = judge.judge(seeds, [str(row.get("input") or "") for row in rows],
                           [Prediction(text=str(row.get("output") or "")) for row in rows],
                           [expectations[int(row["action_id"])] for row in rows])
    weight = float(recorded_options(meta).get("severity_weight") or 0.0)
    for row, verdict in zip(rows, verdicts, strict=True):
        row.update(expected=verdict.expected, expected_source=verdict.expected_source, judged=bool(verdict.judged),
                   unjudged=bool(verdict.unjudged), judge_reason=verdict.reason,
                   is_failure=bool(verdict.is_failure), severity=float(verdict.severity),
                   reward=float(verdict.is_failure) + weight * float(verdict.severity))
    return rows
