"""RunView: what the feedback app shows of one run, region by region, as display strings, plain words and pictures.

Reviewers judge *regions* (``fade_hub.characterize``'s ``regions`` table, worst first); the cells of a region and
its failing examples are a drill-down inside it. Presentation over ``fade_hub.run.Run`` (which reads the run and
resolves items); no UI objects here.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Collection, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import FadeHubError
from ..evidence import Evidence, whole
from ..run import BadItem, Run, canonical_item, item_type
from ..tasks import TASKS
from .pictures import decode_image, open_image, side_by_side
from .records import InvalidFeedback
from .words import cell_words, interval, plain, region_details, region_facts, short_percent

logger = logging.getLogger(__name__)

IMAGE_CHOICES = ("accept", "reject")
MAX_EXAMPLES = 12  # examples shown per region
REGION_COLUMNS = ["#", "region", "fails (95% interval)", "verdicts"]
CELL_COLUMNS = ["cell", "failing seeds", "95% interval"]
# every table of the app: text cells that wrap, shown whole (a page scrolls, never a box inside it)
TABLE = {"datatype": "str", "interactive": False, "wrap": True, "max_height": 100_000, "elem_classes": "fade-table"}
LABEL_CHARS = 32  # characters of a region's description in a dropdown (what a phone's dropdown holds)
JUDGE_WRONG = "judge wrong? · "  # a dropdown label's flag for a region reviewers call a judge error


# relative widths of table columns, so that every table fits its column (a phone included) and wraps its cells
_WEIGHTS = {"#": 0.6, "verdict and note": 2.8, "verdicts": 2.2, "when (UTC)": 1.8, "what": 3.0, "region": 3.0,
            "clean input": 3.0, "perturbed input": 3.0, "cell": 3.0, "failing seeds": 2.0, "95% interval": 1.6,
            "before": 1.6, "after": 1.6, "change": 1.8, "seed": 2.6, "input": 3.0, "what happened": 3.6}


def column_widths(columns: list[str]) -> list[str]:
    """Percent widths for a table's columns (text columns wider than ids and flags), rounded down to sum under 100
    (a fraction of a pixel too wide would show a scroll bar)."""
    weights = [_WEIGHTS.get(column, 2.2) for column in columns]
    return [f"{int(995 * weight / sum(weights)) / 10:.1f}%" for weight in weights]


def short(text: Any, limit: int = 60) -> str:
    """One line of ``text``, cut to ``limit`` characters with an ellipsis."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def votes_text(votes: Counter | None) -> str:
    """``2 fix · 1 acceptable (disagree)``, or ``""`` when nobody voted."""
    if not votes:
        return ""
    text = " · ".join(f"{count} {verdict.replace('_', ' ')}" for verdict, count in sorted(votes.items()))
    return text + (" (disagree)" if len(votes) > 1 else "")


class RunView:
    """What the app shows of one run: metadata, ranked regions in words, their cells and examples, known labels."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.meta = run.meta
        self.space = run.space
        self.factor_names = run.factor_names
        self.landscape = run.landscape
        self.regions = run.regions.sort_values("rank").reset_index(drop=True)
        failures = run.failures
        self.failures = failures.sort_values(["severity", "query_id"], ascending=[False, True], kind="mergesort")
        self.task = run.task
        self.correction_kind = TASKS[self.task].correction if self.task in TASKS else "text"
        self.has_images = "image" in failures.columns
        self.has_text_inputs = bool((failures.get("clean_input", pd.Series(dtype=str)).astype(str) != "").any())
        self._seed_folder = self._local_seed_folder()

    @classmethod
    def open(cls, spec: str, token: str | None = None) -> RunView:
        """Read a run from a local run directory or a pushed dataset repo."""
        return cls(Run.open(spec, token=token))

    # the run --------------------------------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self.run.run_id

    @property
    def labels(self) -> list[str]:
        """The model's labels: from the run metadata when recorded, else every output and expected label seen."""
        recorded = (self.meta.get("target") or {}).get("labels")
        if recorded:
            return [str(label) for label in recorded]
        seen = set(self.failures["expected"].astype(str)) | set(self.failures["output"].astype(str))
        return sorted(label for label in seen if label)

    def headline(self) -> str:
        """The run in one plain sentence (Markdown, run text escaped): the model, what was tried, what was found."""
        meta = self.meta
        seeds = meta.get("seeds") or {}
        count = int(seeds.get("explore") or 0) + int(seeds.get("held_out") or 0)
        kind = {"image": "images", "text": "texts", "prompt": "prompts"}.get(self.space.modality, "inputs")
        confirmed = int(self.regions["confirmed"].astype(bool).sum()) if len(self.regions) else 0
        found = (f"**{len(self.regions)} failure region{'s' if len(self.regions) != 1 else ''}** to review"
                 + (f", {confirmed} confirmed on seeds the search never saw." if confirmed else "."))
        if not len(self.regions):
            found = "**no failure region**: nothing to review."
        tried = f"{count} seed {kind}" if count else f"seed {kind}"
        return (f"The model **{plain(self.run.model_text or '?')}** was asked about {tried} changed in "
                f"{len(self.landscape)} ways; this run found {found}")

    def summary(self) -> str:
        """The run's particulars: model, run id, task, space, algorithm, counts (plain text, for a details box)."""
        meta = self.meta
        space = meta.get("space_name") or self.space.name
        return (
            f"model {meta.get('model_id', '?')} · run {self.run_id} · task {self.task} · "
            f"{f'space {space} ' if space else ''}({len(self.landscape)} cells: "
            f"{' × '.join(f'{factor.name} ({len(factor.levels)})' for factor in self.space.factors)}) · "
            f"search {meta.get('algorithm', '?')} · {meta.get('queries', '?')} queries, {meta.get('failures', '?')} "
            f"failing · {len(self.regions)} regions · judge {(meta.get('judge') or {}).get('name', '?')}"
        )

    def lineage_text(self) -> str:
        """For a run made on a mitigated variant: what it explores and which runs came before (plain text)."""
        lineage = self.meta.get("lineage")
        if not lineage:
            return ""
        runs = " → ".join(str(run_id) for run_id in lineage.get("run_ids") or [])
        return (f"This run explores the mitigated variant {lineage.get('adapter', '?')} of "
                f"{lineage.get('base_model', '?')} (its adapter was trained for run {lineage.get('adapter_run_id', '?')}). "
                f"Feedback here is recorded for this run ({self.run_id}); the next mitigation reads it together with "
                f"the feedback of the earlier runs ({runs or 'none recorded'}).")

    # regions -----------------------------------------------------------------------------------------------

    @property
    def region_ids(self) -> list[str]:
        """The regions' items, worst first."""
        return [str(region_id) for region_id in self.regions["region_id"]]

    @property
    def confirmed_ids(self) -> set[str]:
        """The regions confirmed on held-out seeds."""
        return {str(row.region_id) for row in self.regions.itertuples() if bool(row.confirmed)}

    def region_row(self, region_id: str | None) -> Any:
        """The ``regions`` row (a named tuple) of a region id, or None."""
        if not region_id:
            return None
        for row in self.regions.itertuples():
            if row.region_id == region_id:
                return row
        return None

    def region_number(self, region_id: str) -> int:
        """The region's rank (1 = worst)."""
        row = self.region_row(region_id)
        return int(row.rank) if row is not None else 0

    def region_label(self, region_id: str, judge_error: bool = False) -> str:
        """``2 · rotation ±30 and brightness 0.2 (any…`` for a dropdown (short enough for a phone); a region
        reviewers call a judge error says so first: ``2 · judge wrong? · rotation ±30…``."""
        row, flag = self.region_row(region_id), JUDGE_WRONG if judge_error else ""
        text = "" if row is None else short(row.description, LABEL_CHARS - len(flag))
        return region_id if row is None else f"{int(row.rank)} · {flag}{text}"

    def region_choices(self, judge_errors: Collection[str] = ()) -> list[tuple[str, str]]:
        """Dropdown choices (label, region id), worst first."""
        return [(self.region_label(region_id, region_id in judge_errors), region_id) for region_id in self.region_ids]

    def region_card(self, region_id: str | None, votes: Counter | None = None, judge_error: str = "") -> str:
        """A region in plain words (Markdown; run text escaped): what it is, how often it fails, whether that held on
        seeds the search never saw, per seed class; ``judge_error`` (``JudgeCheck.error_words``) comes first."""
        row = self.region_row(region_id)
        if row is None:
            return ""
        facts = region_facts(row)
        if judge_error:
            facts.insert(0, f"**Judge error:** {plain(judge_error)}; this region is left out of mitigation.")
        cells = f"{int(row.num_cells)} cell{'s' if int(row.num_cells) != 1 else ''} of the {len(self.landscape)} tried"
        facts.append(f"**Where:** {cells}; its examples and cells are below.")
        if votes:
            facts.append(f"**Reviewers so far:** {plain(votes_text(votes))}"
                         + (" — reviewers disagree on this region." if len(votes) > 1 else ""))
        return (f"### Region {int(row.rank)} of {len(self.regions)}\n\n**{plain(row.description)}**\n\n"
                + "\n".join(f"- {fact}" for fact in facts))

    def region_details(self, region_id: str | None) -> str:
        """The statistics behind a region (Markdown): its id for the API, the tests and their p-values."""
        row = self.region_row(region_id)
        if row is None:
            return ""
        cells = self.landscape[self.landscape["action_id"].isin([int(c) for c in row.cells])]
        return region_details(row, self.meta, list(cells.get("expectation", pd.Series(dtype=str)).astype(str)))

    def region_table(self, votes: Mapping[str, Counter] | None = None,
                     judge_errors: Mapping[str, str] | None = None) -> pd.DataFrame:
        """The regions, worst first, as display strings with the verdicts given so far and, for a region reviewers
        call a judge error, their words (``judge_errors``: region id -> ``JudgeCheck.error_words``)."""
        votes, judge_errors = votes or {}, judge_errors or {}
        rows = []
        for row in self.regions.itertuples():
            low, high = (row.confirm_ci_low, row.confirm_ci_high) if _held_out(row) else (row.ci_low, row.ci_high)
            rate = row.confirm_rate if _held_out(row) else row.failure_rate
            where = "held-out seeds, confirmed" if bool(row.confirmed) else (
                "held-out seeds, not confirmed" if _held_out(row) else "search seeds, not confirmed")
            rows.append([str(int(row.rank)), str(row.description),
                         f"{short_percent(rate)} {interval(low, high)} of {where}",
                         " · ".join(part for part in (votes_text(votes.get(str(row.region_id))),
                                                      judge_errors.get(str(row.region_id), "")) if part)])
        return pd.DataFrame(rows, columns=REGION_COLUMNS)

    def region_picture(self, region_id: str | None):
        """The run's picture of a region (its heatmap outlined, per-class bars) as a PIL image, or None."""
        row = self.region_row(region_id)
        if row is None or self.run.regions_computed:
            return None
        try:
            path = self.run.file(f"plots/region_{int(row.rank)}.png")
        except FadeHubError:
            return None
        return open_image(path)

    def region_levels(self, region_id: str | None) -> dict[str, set[str]]:
        """The factor levels a region admits (factor -> level strings; a factor it leaves free is absent)."""
        row = self.region_row(region_id)
        if row is None:
            return {}
        factors = json.loads(row.factors) if row.factors else {}
        return {name: {str(level) for level in levels} for name, levels in factors.items() if name in self.factor_names}

    def region_of(self, item: str) -> str | None:
        """The region a item belongs to: itself, the region holding a cell, or the one holding an example."""
        kind = item_type(item)
        if kind == "region":
            return item if self.region_row(item) is not None else None
        if kind == "mode":
            cell, classes = int(item), None
        else:
            example = self.example(item)
            if example is None:
                return None
            cell, classes = int(example["action_id"]), str(example.get("context", ""))
        for row in self.regions.itertuples():
            admitted = [str(c) for c in row.classes]
            if cell in set(int(c) for c in row.cells) and (classes is None or not admitted or classes in admitted):
                return str(row.region_id)
        return None

    # examples and cells -----------------------------------------------------------------------------------

    def _inside(self, region_id: str | None) -> pd.DataFrame:
        """The failing queries in a region's cells and classes, most severe first."""
        row = self.region_row(region_id)
        if row is None:
            return self.failures.iloc[:0]
        rows = self.failures[self.failures["action_id"].isin([int(c) for c in row.cells])]
        classes = [str(c) for c in row.classes]
        if classes and "context" in rows.columns:
            rows = rows[rows["context"].astype(str).isin(classes)]
        return rows

    def examples(self, region_id: str | None, limit: int = MAX_EXAMPLES) -> pd.DataFrame:
        """Failing examples of a region that span its cells and classes: each (seed, cell) once, every seed once
        before any seed again, in turn over the (class, cell) groups (most failing first), at most ``limit``."""
        rows = self._inside(region_id).drop_duplicates(["seed_id", "action_id"])
        if not len(rows):
            return rows
        klass = rows["context"].astype(str) if "context" in rows.columns else pd.Series("", index=rows.index)
        groups = pd.DataFrame({"klass": klass, "cell": rows["action_id"]})
        sizes = groups.groupby(["klass", "cell"], sort=False).size().sort_values(ascending=False, kind="mergesort")
        queues = [list(groups.index[(groups["klass"] == k) & (groups["cell"] == c)]) for k, c in sizes.index]
        seed = rows["seed_id"].astype(str)
        picked: list[Any] = []
        for fresh_only in (True, False):  # one example per seed first, then other cells of seeds already shown
            added = True
            while added and len(picked) < limit:
                added = False
                for queue in queues:
                    shown = set(seed[picked])
                    choice = next((i for i in queue if i not in picked and not (fresh_only and seed[i] in shown)), None)
                    if choice is not None and len(picked) < limit:
                        picked.append(choice)
                        added = True
        return rows.loc[picked]

    def example(self, example_id: str) -> pd.Series | None:
        """The failing query ``q123`` or an answer picked to check the judge (``audited``), or None."""
        found = [table[table["query_id"] == int(example_id[1:])] for table in (self.failures, self.audited)]
        return next((rows.iloc[0] for rows in found if len(rows)), None)

    @cached_property
    def audited(self) -> pd.DataFrame:
        """The answers ``explore --judge-audit N`` picked at random for reviewers to check the judge (passing ones
        too), in query order; empty when the run marked none or its ``queries`` config cannot be read."""
        wanted = {int(q) for q in self.meta.get("judge_audit") or []}
        if not wanted:
            return self.failures.iloc[:0]
        try:
            queries = self.run.queries
        except FadeHubError as err:
            logger.warning("the answers marked to check the judge are not shown: %s", str(err).splitlines()[0])
            return self.failures.iloc[:0]
        return queries[queries["query_id"].isin(wanted)].sort_values("query_id").reset_index(drop=True)

    @property
    def audit_ids(self) -> list[str]:
        """The items (``q123``) of the answers picked to check the judge, in query order."""
        return [f"q{int(q)}" for q in self.audited["query_id"]]

    def example_ids(self, region_id: str | None) -> list[str]:
        """The ids (``q123``) of the examples ``examples`` shows, in order."""
        return [f"q{int(q)}" for q in self.examples(region_id)["query_id"]]

    def cell_text(self, levels: Mapping[str, Any]) -> str:
        """A cell in words: ``rotation 30, brightness 0.2``."""
        return cell_words(self.factor_names, levels)

    def caption(self, row: Mapping[str, Any]) -> str:
        """What an example shows, in one line: what the model said and what was expected, the seed and the cell, and
        the judge's reason when the judge gave one (an LLM judge)."""
        reason = judge_reason(row)
        return (f"said {short(row.get('output', ''), 30)!r}, expected {short(row.get('expected', ''), 30)!r} · seed "
                f"{short(row.get('seed_id', ''), 32)} at {self.cell_text(row)}"
                + (f" · the judge: {short(reason, 80)}" if reason else ""))

    def example_pairs(self, region_id: str | None) -> list[tuple[str, Any, str]]:
        """(example id, clean | perturbed picture, caption) of the region's examples that have an image."""
        items = []
        for _, row in self.examples(region_id).iterrows():
            perturbed = decode_image(row.get("image"))
            if perturbed is None:
                continue
            clean = self.clean_image(row)
            caption = self.caption(row) + (" (clean seed not stored)" if clean is None else "")
            items.append((f"q{int(row['query_id'])}", side_by_side(clean, perturbed), caption))
        return items

    def examples_table(self, region_id: str | None) -> pd.DataFrame:
        """The region's examples as text, one row each: clean and perturbed input, what was said and expected."""
        rows = self.examples(region_id)
        table: dict[str, Any] = {}
        if self.has_text_inputs:
            table["clean input"] = rows["clean_input"].astype(str)
            table["perturbed input"] = rows["input"].astype(str)
        else:
            table["cell"] = [self.cell_text(row) for _, row in rows.iterrows()]
        table["answer"] = [f"said {row['output']}, expected {row['expected']}" for _, row in rows.iterrows()]
        reasons = [judge_reason(row) for _, row in rows.iterrows()]
        if any(reasons):  # an LLM judge says why an answer fails
            table["the judge's reason"] = reasons
        return pd.DataFrame(table, columns=[*table])

    def _local_seed_folder(self) -> Path | None:
        """The image folder the seeds came from, when the run is local and that folder is still here."""
        source = (self.meta.get("seeds") or {}).get("source")
        if self.run.path is None or not source or not Path(str(source)).is_dir():
            return None
        return Path(str(source)).resolve()

    def clean_image(self, row: Mapping[str, Any]):
        """The unperturbed seed image of a failing query: the ``clean_image`` column, else the local seed folder."""
        stored = decode_image(row.get("clean_image"))
        if stored is not None or self._seed_folder is None:
            return stored
        path = (self._seed_folder / str(row.get("seed_id", ""))).resolve()
        if not path.is_file() or self._seed_folder not in path.parents:
            return None
        return open_image(path)

    @cached_property
    def _evidence(self) -> pd.DataFrame:
        """The exploration's (cell, seed) pairs (one outcome per pair), for per-cell counts inside a region."""
        try:
            pairs = Evidence.from_queries(self.run.queries).phase("explore")
        except FadeHubError:
            return pd.DataFrame(columns=["action_id", "seed_id", "context", "failure"])
        return pairs

    def cells(self, region_id: str | None) -> list[int]:
        """The region's cells, most failing first."""
        return [int(cell) for cell in self.cells_frame(region_id)["action_id"]]

    def cells_frame(self, region_id: str | None) -> pd.DataFrame:
        """Per cell of a region, on the seeds of its classes during the search: failing seeds, seeds, interval."""
        from ..stats import wilson_interval

        row = self.region_row(region_id)
        if row is None:
            return pd.DataFrame(columns=["action_id", "failures", "seeds", "low", "high"])
        pairs = self._evidence
        classes = [str(c) for c in row.classes]
        inside = pairs[pairs["action_id"].isin([int(c) for c in row.cells])]
        if classes:
            inside = inside[inside["context"].astype(str).isin(classes)]
        counts = inside.groupby("action_id")["failure"].agg(["sum", "count"])
        out = []
        for cell in (int(c) for c in row.cells):
            k, n = (whole(counts.at[cell, "sum"]), int(counts.at[cell, "count"])) if cell in counts.index else (0, 0)
            low, high = wilson_interval(k, n) if n else (math.nan, math.nan)
            out.append({"action_id": cell, "failures": k, "seeds": n, "low": low, "high": high})
        frame = pd.DataFrame(out)
        rate = frame["failures"] / frame["seeds"].where(frame["seeds"] > 0)
        return frame.assign(rate=rate).sort_values(["rate", "seeds"], ascending=False, kind="mergesort",
                                                   na_position="last").reset_index(drop=True)

    def cells_table(self, region_id: str | None) -> pd.DataFrame:
        """The region's cells as display strings, most failing first."""
        rows = []
        for item in self.cells_frame(region_id).itertuples():
            levels = self.space.level_strings(self.space.action_from_id(item.action_id))
            seeds = f"{item.failures} of {item.seeds}" if item.seeds else "not tried"
            bounds = f"{short_percent(item.low)} to {short_percent(item.high)}" if item.seeds else ""
            rows.append([self.cell_text(levels), seeds, bounds])
        return pd.DataFrame(rows, columns=CELL_COLUMNS)

    # items ----------------------------------------------------------------------------------------------

    def describe(self, item: str) -> str:
        """A short human description of a item: ``region 2 (rotation ±30 …)``, ``cell rotation 30, …``."""
        kind = item_type(item)
        if kind == "region":
            row = self.region_row(item)
            return f"region {int(row.rank)} ({short(row.description, 60)})" if row is not None else f"region {item}"
        if kind == "mode":
            levels = self.space.level_strings(self.space.action_from_id(int(item)))
            return f"cell {self.cell_text(levels)}"
        example = self.example(item)
        if example is None:
            return f"example {item}"
        return f"example {item} ({self.cell_text(example)})"

    def factor_pairs(self) -> list[tuple[str, str]]:
        """Factor pairs for the heatmap, in factor order (a one-factor space gives its factor twice)."""
        names = self.factor_names
        if len(names) == 1:
            return [(names[0], names[0])]
        return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]

    def region_pair(self, region_id: str | None) -> tuple[str, str]:
        """The factor pair that shows a region best: two it constrains (else the next ones), in factor order."""
        constrained = [name for name in self.factor_names if name in self.region_levels(region_id)]
        names = sorted(list(dict.fromkeys(constrained + self.factor_names))[:2], key=self.factor_names.index)
        return (names[0], names[0]) if len(names) == 1 else (names[0], names[1])

    def check(self, item: str, correction: str) -> None:
        """InvalidFeedback unless ``item`` is a region, a cell of a region or a failing example here and the
        correction fits."""
        correction = str(correction or "").strip()
        try:
            kind = item_type(item)
            item = canonical_item(item)
        except BadItem as err:
            raise InvalidFeedback(str(err)) from None
        if kind == "region":
            if self.region_row(item) is None:
                raise InvalidFeedback(f"{short(item, 60)!r} is not a region of run {self.run_id}; pick one of its "
                                      f"{len(self.regions)} regions (their ids are in the 'details' of each)")
        elif kind == "mode":
            cells = {int(c) for row in self.regions.itertuples() for c in row.cells}
            if int(item) not in cells and self.run.resolve(item) is None:
                raise InvalidFeedback(f"cell {item} is in no region of run {self.run_id}; give a verdict on a "
                                      "region or on one of its cells")
        elif self.example(item) is None:
            raise InvalidFeedback(f"item {item!r} is not a failing example of run {self.run_id}, nor an answer "
                                  "picked to check its judge")
        if not correction:
            return
        if kind != "example":
            raise InvalidFeedback("a correction applies to one example: pick an example (its picture or row), or "
                                  "leave the correction empty for a whole region or cell")
        if self.correction_kind == "label" and self.labels and correction not in self.labels:
            raise InvalidFeedback(
                f"correction {correction!r} is not one of the model's labels: {', '.join(self.labels)}"
            )
        if self.correction_kind == "image" and correction not in IMAGE_CHOICES:
            raise InvalidFeedback(f"a generated image's correction is 'accept' or 'reject', not {correction!r}")


def _held_out(row: Any) -> bool:
    """Whether a region was tested on held-out seeds."""
    return bool(getattr(row, "confirm_test", "") or "") and float(getattr(row, "confirm_seeds", 0) or 0) > 0


def judge_reason(row: Mapping[str, Any]) -> str:
    """The reason the judge gave for a verdict (LLM judges), or ``""`` (other judges, runs recorded before them)."""
    reason = row.get("judge_reason")
    return reason.strip() if isinstance(reason, str) else ""
