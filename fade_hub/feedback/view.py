"""RunView: what the feedback app shows of one run, as display strings, plain words and pictures.

Presentation over ``fade_hub.run.Run`` (which reads the run and resolves targets); no UI objects here.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..run import BadTarget, Run, target_type
from ..tasks import TASKS
from .records import InvalidFeedback
from .words import (
    clean_words,
    confirmed_words,
    evidence_words,
    expectation_words,
    perturbation_words,
    plain,
    rate_words,
    severity_words,
    uncertain_words,
)

IMAGE_CHOICES = ("accept", "reject")
MAX_EXAMPLES = 48  # examples shown per failure mode
MODE_COLUMNS = ["id", "failure mode", "failure rate [95% CI]", "verdicts"]
EXAMPLE_SIDE = 224  # px: each half of a clean | perturbed pair is at least this wide


# relative widths of table columns, so that every table fits its column (a phone included) and wraps its cells
_WEIGHTS = {"id": 1.2, "target": 1.2, "seed": 2.0, "verdict": 1.6, "verdicts": 1.8, "change": 1.6, "base": 1.2,
            "mitigated": 1.4, "severity": 1.4, "when (UTC)": 1.8, "what": 3.0, "failure mode": 3.4, "clean input": 3.0,
            "perturbed input": 3.0, "input": 3.0}


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


def open_image(source: Any):
    """An RGB PIL image from a path or a binary file, or None when it is no readable image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError):
        return None


def decode_image(cell: Any):
    """A PIL image from a parquet ``datasets.Image`` cell (or raw bytes), or None."""
    data = cell.get("bytes") if isinstance(cell, dict) else cell if isinstance(cell, bytes) else None
    return open_image(io.BytesIO(data)) if data else None


def side_by_side(left, right, labels: tuple[str, str] = ("clean seed", "perturbed"), side: int = EXAMPLE_SIDE):
    """One picture: ``left`` beside ``right`` (or ``right`` alone when ``left`` is None), each labelled below."""
    from PIL import Image, ImageDraw

    images = [image for image in (left, right) if image is not None]
    scaled = []
    for image in images:
        factor = max(side / image.width, side / image.height, 1.0)
        size = (round(image.width * factor), round(image.height * factor))
        scaled.append(image.resize(size, Image.NEAREST if factor >= 2 else Image.BICUBIC))
    from PIL import ImageFont

    font = ImageFont.load_default(size=18)
    gap, label_h = 8, 26
    width = sum(image.width for image in scaled) + gap * (len(scaled) - 1)
    height = max(image.height for image in scaled) + label_h
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    labels = labels if left is not None else labels[1:]
    x = 0
    for image, label in zip(scaled, labels):
        canvas.paste(image, (x, 0))
        draw.text((x + 4, image.height + 3), label, fill="#333333", font=font)
        x += image.width + gap
    return canvas


class RunView:
    """What the app shows of one run: metadata, ranked failure modes in words, examples, known labels."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.meta = run.meta
        self.space = run.space
        self.factor_names = run.factor_names
        self.landscape = run.landscape
        self.modes = run.modes
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

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self.run.run_id

    @property
    def mode_ids(self) -> list[str]:
        """The failure modes' targets, worst first."""
        return [str(int(action_id)) for action_id in self.modes["action_id"]]

    @property
    def labels(self) -> list[str]:
        """The model's labels: from the run metadata when recorded, else every output and expected label seen."""
        recorded = (self.meta.get("target") or {}).get("labels")
        if recorded:
            return [str(label) for label in recorded]
        seen = set(self.failures["expected"].astype(str)) | set(self.failures["output"].astype(str))
        return sorted(label for label in seen if label)

    def summary(self) -> str:
        """One line about the run: model, run id, task, space, counts (plain text, for a text box)."""
        meta = self.meta
        space = meta.get("space_name") or self.space.name
        return (
            f"model {meta.get('model_id', '?')} · run {self.run_id} · {self.task} · "
            f"{f'space {space} ' if space else ''}({len(self.landscape)} cells) · "
            f"{meta.get('algorithm', '?')} · "
            f"{meta.get('queries', '?')} queries, {meta.get('failures', '?')} failures · "
            f"{len(self.modes)} failure modes"
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

    def mode_levels(self, row: pd.Series | Mapping) -> str:
        """``rotation=5, brightness=0.4`` for a landscape row."""
        return self.run.cell_text(row)

    def mode_row(self, mode: str | None) -> pd.Series | None:
        """The landscape row of a failure mode, or None."""
        if not mode or target_type(str(mode)) != "mode":
            return None
        rows = self.modes[self.modes["action_id"] == int(mode)]
        return rows.iloc[0] if len(rows) else None

    def mode_table(self, votes: Mapping[str, Counter] | None = None) -> pd.DataFrame:
        """The ranked failure modes as display strings, with the verdicts given so far."""
        votes = votes or {}
        rows = [
            [
                str(int(row["action_id"])),
                f"#{int(row['rank'])} {self.mode_levels(row)}",
                (f"{row['failure_rate']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}], "
                 f"{int(row['failures'])}/{int(row['seeds'])}{' (uncertain)' if bool(row['uncertain']) else ''}; "
                 f"confirmed: {'yes' if bool(row['confirmed']) else 'no' if int(row['confirm_seeds']) else 'not run'}"),
                votes_text(votes.get(str(int(row["action_id"])))),
            ]
            for _, row in self.modes.iterrows()
        ]
        return pd.DataFrame(rows, columns=MODE_COLUMNS)

    def mode_label(self, mode: str) -> str:
        """``#3  rotation=45, brightness=0.15  (9/14 failed)`` for a dropdown."""
        row = self.mode_row(mode)
        if row is None:
            return mode
        return f"#{int(row['rank'])}  {self.mode_levels(row)}  ({int(row['failures'])}/{int(row['seeds'])} seeds failed)"

    def mode_choices(self) -> list[tuple[str, str]]:
        """Dropdown choices (label, action id) of the failure modes, worst first."""
        return [(self.mode_label(mode), mode) for mode in self.mode_ids]

    def mode_card(self, mode: str | None, votes: Counter | None = None, position: str = "") -> str:
        """A failure mode in plain words (Markdown; run text escaped)."""
        row = self.mode_row(mode)
        if row is None:
            return "No failure mode to show." if not len(self.modes) else "Pick a failure mode."
        levels = {name: str(row[name]) for name in self.factor_names}
        examples = self.examples(mode)
        source = str(examples["expected_source"].iloc[0]) if "expected_source" in examples and len(examples) else ""
        judge = str((self.meta.get("judge") or {}).get("name", ""))
        facts = [
            f"**Fails:** {plain(rate_words(int(row['failures']), int(row['seeds']), row['ci_low'], row['ci_high']))}.",
            f"**Clean inputs:** {plain(clean_words(self.meta.get('clean')))} {plain(evidence_words(row))}",
            f"**Held-out check:** {plain(confirmed_words(row))}",
            f"**Severity:** {plain(severity_words(judge, row['mean_severity']))}",
            f"**Right answer:** {expectation_words(str(row.get('expectation', 'invariant')), source)}",
        ]
        uncertain = uncertain_words(row)
        if uncertain:
            facts.insert(1, f"**{plain(uncertain)}**")
        if votes:
            facts.append(f"**Reviewers so far:** {plain(votes_text(votes))}"
                         + (" — reviewers disagree on this mode." if len(votes) > 1 else ""))
        lines = [
            f"### {plain(position)} {plain(self.mode_levels(row))}",
            (f"Rank #{int(row['rank'])} of {len(self.modes)} · id {int(row['action_id'])} · "
             f"**{plain(perturbation_words(self.space, levels))}**"),
            "\n".join(f"- {fact}" for fact in facts),
        ]
        return "\n\n".join(lines)

    def examples(self, mode: str | None) -> pd.DataFrame:
        """The failing queries of one mode, most severe first (at most ``MAX_EXAMPLES``)."""
        if not mode or target_type(str(mode)) != "mode":
            return self.failures.iloc[:0]
        return self.failures[self.failures["action_id"] == int(mode)].head(MAX_EXAMPLES)

    def example(self, example_id: str) -> pd.Series | None:
        """The failing query ``q123``, or None."""
        rows = self.failures[self.failures["query_id"] == int(example_id[1:])]
        return rows.iloc[0] if len(rows) else None

    def examples_table(self, mode: str | None) -> pd.DataFrame:
        """The mode's examples as text: id, seed, clean and perturbed input, output, expected, severity."""
        rows = self.examples(mode)
        table = {
            "id": [f"q{int(q)}" for q in rows["query_id"]],
            "seed": rows["seed_id"].astype(str),
        }
        if self.has_text_inputs:
            table["clean input"] = rows["clean_input"].astype(str)
            table["perturbed input"] = rows["input"].astype(str)
        table.update(output=rows["output"].astype(str), expected=rows["expected"].astype(str),
                     severity=[f"{s:.2f}" for s in rows["severity"]])
        return pd.DataFrame(table)

    def example_pairs(self, mode: str | None) -> list[tuple[str, Any, str]]:
        """(example id, clean | perturbed picture, caption) of the mode's examples that have an image."""
        items = []
        for _, row in self.examples(mode).iterrows():
            perturbed = decode_image(row.get("image"))
            if perturbed is None:
                continue
            example = f"q{int(row['query_id'])}"
            clean = self.clean_image(row)
            caption = f"{example}: said {short(row['output'], 30)!r}, expected {short(row['expected'], 30)!r}"
            if clean is None:
                caption += " (clean seed not stored)"
            items.append((example, side_by_side(clean, perturbed), caption))
        return items

    def _local_seed_folder(self) -> Path | None:
        """The image folder the seeds came from, when the run is local and that folder is still here."""
        source = (self.meta.get("seeds") or {}).get("source")
        if self.run.path is None or not source or not Path(str(source)).is_dir():
            return None
        return Path(str(source)).resolve()

    def clean_image(self, row: Mapping[str, Any]):
        """The unperturbed seed image of a failing query: a ``clean_image`` column, else the local seed folder."""
        stored = decode_image(row.get("clean_image"))
        if stored is not None or self._seed_folder is None:
            return stored
        path = (self._seed_folder / str(row.get("seed_id", ""))).resolve()
        if not path.is_file() or self._seed_folder not in path.parents:
            return None
        return open_image(path)

    def describe(self, target: str) -> str:
        """A short human description of a target."""
        if target_type(target) == "mode":
            row = self.mode_row(target)
            return f"failure mode #{int(row['rank'])} ({self.mode_levels(row)})" if row is not None else f"cell {target}"
        return f"example {target}"

    def mode_of(self, target: str) -> str | None:
        """The failure mode a target belongs to (itself for a mode)."""
        if target_type(target) == "mode":
            return target
        example = self.example(target)
        return str(int(example["action_id"])) if example is not None else None

    def factor_pairs(self) -> list[tuple[str, str]]:
        """Factor pairs for the heatmap, in factor order (a one-factor space gives its factor twice)."""
        names = self.factor_names
        if len(names) == 1:
            return [(names[0], names[0])]
        return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]

    def check(self, target: str, correction: str) -> None:
        """InvalidFeedback unless ``target`` is a failure mode or failing example here and the correction fits."""
        correction = str(correction or "").strip()
        try:
            found = self.run.resolve(target)
        except BadTarget as err:
            raise InvalidFeedback(str(err)) from None
        if target_type(target) == "mode":
            if found is None:
                raise InvalidFeedback(
                    f"target {target!r} is not a failure mode of run {self.run_id}; "
                    "use an action_id from the failure-mode table"
                )
            if correction:
                raise InvalidFeedback(
                    "a correction applies to one example: pass an example id such as 'q12' as target, "
                    "or leave the correction empty for a whole mode"
                )
            return
        if found is None:
            raise InvalidFeedback(f"target {target!r} is not a failing example of run {self.run_id}")
        if not correction:
            return
        if self.correction_kind == "label" and self.labels and correction not in self.labels:
            raise InvalidFeedback(
                f"correction {correction!r} is not one of the model's labels: {', '.join(self.labels)}"
            )
        if self.correction_kind == "image" and correction not in IMAGE_CHOICES:
            raise InvalidFeedback(f"a generated image's correction is 'accept' or 'reject', not {correction!r}")
