"""The feedback app: people review a run's failure modes and give verdicts that land on the Hub.

``FeedbackApp(AppConfig.from_env()).serve()`` is what the Space's ``app.py`` runs; ``fade-hub space
serve`` builds the same app from flags. Everything that comes from the run (model outputs, inputs,
labels, even the model id) is shown through text components (``Textbox``, ``Dataframe`` with ``str``
cells, dropdown labels, gallery captions), never through HTML or Markdown.

API: ``submit_feedback(target, verdict, correction="", note="")`` returns the stored record as a dict.
"""

from __future__ import annotations

import io
import logging
import math
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import gradio as gr
import pandas as pd

from ..errors import BadConfig
from ..landscape import count_text, held_out_text
from ..plots import landscape_figure
from ..run import BadTarget, Run, target_type
from ..tasks import TASKS
from .records import FeedbackWriter, InvalidFeedback, default_staging_dir, make_record

logger = logging.getLogger(__name__)

IMAGE_CHOICES = ("accept", "reject")
PICK_HINT = "Pick an example above to correct it."
MODE_COLUMNS = ["#", "failure mode", "failure rate [95% CI]", "n", "confirmed", "id"]
MODE_WIDTHS = ["40px", "300px", "130px", "110px", "100px", "50px"]
MAX_EXAMPLES = 48  # examples shown per failure mode
LOCAL_DIR = "fade-feedback"  # where feedback goes when no Hub repo is configured
VERDICT_CHOICES = [
    ("fix: this must be fixed", "fix"),
    ("acceptable: a failure we can live with", "acceptable"),
    ("not a failure: the judge was wrong", "not_a_failure"),
]
CSS = """
.fade-mono textarea {font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.9em;}
"""


def _truthy(value: str | None) -> bool:
    return str(value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class AppConfig:
    """Where the app reads the run and writes feedback; on a Space every field comes from env vars."""

    failures: str
    feedback_repo: str | None = None
    feedback_dir: str | None = None
    push_every: float = 5.0
    allow_anonymous: bool = False
    on_space: bool = False
    token: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AppConfig:
        """Read FADE_FAILURES, FADE_FEEDBACK_REPO/DIR/EVERY, FADE_ALLOW_ANONYMOUS, SPACE_ID and HF_TOKEN."""
        env = os.environ if environ is None else environ
        failures = env.get("FADE_FAILURES", "").strip()
        if not failures:
            raise BadConfig(
                "FADE_FAILURES is not set: set it (a Space variable) to the failure dataset's repo id "
                "or a run directory"
            )
        try:
            every = float(env.get("FADE_FEEDBACK_EVERY") or 5.0)
        except ValueError:
            raise BadConfig(f"FADE_FEEDBACK_EVERY={env['FADE_FEEDBACK_EVERY']!r} is not a number of minutes") from None
        return cls(
            failures=failures,
            feedback_repo=env.get("FADE_FEEDBACK_REPO", "").strip() or None,
            feedback_dir=env.get("FADE_FEEDBACK_DIR", "").strip() or None,
            push_every=every,
            allow_anonymous=_truthy(env.get("FADE_ALLOW_ANONYMOUS")),
            on_space=bool(env.get("SPACE_ID")),
            token=env.get("HF_TOKEN") or None,
        )

    def validate(self) -> None:
        """Check ranges; raise BadConfig naming the option."""
        if not (self.push_every > 0 and math.isfinite(self.push_every)):
            raise BadConfig(f"push interval {self.push_every} must be a positive number of minutes")

    def staging_dir(self) -> Path:
        """The folder this app appends feedback files to."""
        if self.feedback_dir:
            return Path(self.feedback_dir)
        return default_staging_dir(self.feedback_repo) if self.feedback_repo else Path(LOCAL_DIR)


class RunView:
    """What the app shows of one run: metadata, ranked failure modes, failing examples, known labels."""

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

    @classmethod
    def open(cls, spec: str, token: str | None = None) -> RunView:
        """Read a run from a local run directory or a pushed dataset repo."""
        return cls(Run.open(spec, token=token))

    @property
    def run_id(self) -> str:
        """The run's id."""
        return str(self.meta.get("run_id", ""))

    @property
    def labels(self) -> list[str]:
        """The model's labels: from the run metadata when recorded, else every output and expected label seen."""
        recorded = (self.meta.get("target") or {}).get("labels")
        if recorded:
            return [str(label) for label in recorded]
        seen = set(self.failures["expected"].astype(str)) | set(self.failures["output"].astype(str))
        return sorted(label for label in seen if label)

    def summary(self) -> str:
        """One line about the run: model, run id, task, space, counts."""
        meta = self.meta
        return (
            f"model {meta.get('model_id', '?')} · run {self.run_id} · {self.task} · "
            f"space {meta.get('space_name') or self.space.name or '?'} ({len(self.landscape)} cells) · "
            f"{meta.get('algorithm', '?')} · "
            f"{meta.get('queries', '?')} queries, {meta.get('failures', '?')} failures · "
            f"{len(self.modes)} failure modes"
        )

    def mode_levels(self, row: pd.Series | dict) -> str:
        """``rotation=5, brightness=0.4`` for a landscape row."""
        return self.run.cell_text(row)

    def mode_table(self) -> pd.DataFrame:
        """The ranked failure modes as display strings."""
        rows = [
            [
                str(int(row["rank"])),
                self.mode_levels(row),
                f"{row['failure_rate']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]",
                count_text(row),
                held_out_text(row),
                str(int(row["action_id"])),
            ]
            for _, row in self.modes.iterrows()
        ]
        return pd.DataFrame(rows, columns=MODE_COLUMNS)

    def mode_choices(self) -> list[tuple[str, str]]:
        """Dropdown choices (label, action id) of the failure modes, worst first."""
        return [
            (f"#{int(row['rank'])}  {self.mode_levels(row)}  ({int(row['failures'])}/{int(row['queries'])} failed)",
             str(int(row["action_id"])))
            for _, row in self.modes.iterrows()
        ]

    def examples(self, mode: str | None) -> pd.DataFrame:
        """The failing queries of one mode, most severe first (at most ``MAX_EXAMPLES``)."""
        if not mode or target_type(str(mode)) != "mode":
            return self.failures.iloc[:0]
        return self.failures[self.failures["action_id"] == int(mode)].head(MAX_EXAMPLES)

    def example(self, example_id: str) -> pd.Series | None:
        """The failing query ``q123``, or None."""
        rows = self.failures[self.failures["query_id"] == int(example_id[1:])]
        return rows.iloc[0] if len(rows) else None

    def describe(self, target: str) -> str:
        """A short human description of a target."""
        if target_type(target) == "mode":
            row = self.modes[self.modes["action_id"] == int(target)].iloc[0]
            return f"failure mode #{int(row['rank'])} ({self.mode_levels(row)})"
        return f"example {target}"

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


def _image(cell: Any):
    """A PIL image from a parquet ``datasets.Image`` cell, or None."""
    from PIL import Image

    if not isinstance(cell, dict) or not cell.get("bytes"):
        return None
    with Image.open(io.BytesIO(cell["bytes"])) as image:
        return image.convert("RGB")


def _short(text: Any, limit: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def token_user(token: str | None) -> str:
    """The Hub username of the token (``local`` when there is none or the Hub cannot tell)."""
    from huggingface_hub import HfApi

    try:
        return str(HfApi(token=token).whoami()["name"])
    except Exception as err:  # no token, offline, revoked: feedback is still taken, as "local"
        logger.info("no Hub user for the local app (%s); recording feedback as 'local'", type(err).__name__)
        return "local"


class FeedbackApp:
    """The Gradio Blocks app over one run and one feedback writer."""

    def __init__(self, config: AppConfig) -> None:
        config.validate()
        self.config = config
        self.view = RunView.open(config.failures, token=config.token)
        self.writer = FeedbackWriter(
            config.staging_dir(), config.feedback_repo, every=config.push_every, token=config.token
        )
        if config.on_space and not config.feedback_repo:
            logger.warning("FADE_FEEDBACK_REPO is not set: feedback stays on this Space's disk (%s) and is lost "
                           "when the Space restarts", self.writer.folder.resolve())
        self.local_user = None if config.on_space else token_user(config.token)
        self.demo = self._build()

    # submissions ---------------------------------------------------------------------------------

    def _user(self, profile: gr.OAuthProfile | None) -> str:
        if profile is not None:
            return str(profile.username)
        if self.local_user:
            return self.local_user
        if self.config.allow_anonymous:
            return "anonymous"
        raise InvalidFeedback("sign in with your Hugging Face account (button at the top) to submit feedback")

    def submit(self, target: str, verdict: str, correction: str = "", note: str = "",
               profile: gr.OAuthProfile | None = None) -> dict:
        """Validate, store durably and return one feedback record; gr.Error (nothing stored) when invalid."""
        try:
            user = self._user(profile)
            record = make_record(self.view.run_id, target or "", verdict or "", correction or "", note or "", user)
            self.view.check(record.target, record.correction)
        except InvalidFeedback as err:
            raise gr.Error(str(err)) from None
        self.writer.append(record)
        return record.to_dict()

    def _ui_submit(self, target: str | None, verdict: str | None, correction: str | None, note: str | None,
                   profile: gr.OAuthProfile | None) -> tuple[str, dict]:
        record = self.submit(target or "", verdict or "", correction or "", note or "", profile)
        where = (f"pushed to {self.config.feedback_repo} within {self.config.push_every:g} min"
                 if self.config.feedback_repo else f"kept in {self.writer.folder}")
        status = f"Stored '{record['verdict']}' on {self.view.describe(record['target'])} as {record['user']}; {where}."
        return status, record

    # UI ------------------------------------------------------------------------------------------

    def _target_choices(self, mode: str | None) -> list[tuple[str, str]]:
        if not mode:
            return []
        choices = [(f"the whole {self.view.describe(mode)}", mode)]
        for _, row in self.view.examples(mode).iterrows():
            choices.append(
                (f"example q{int(row['query_id'])}: output {_short(row['output'], 40)!r}, "
                 f"expected {_short(row['expected'], 40)!r}", f"q{int(row['query_id'])}")
            )
        return choices

    def _examples_outputs(self, mode: str | None) -> list:
        rows = self.view.examples(mode)
        table = pd.DataFrame(
            {
                "id": [f"q{int(q)}" for q in rows["query_id"]],
                "seed": rows["seed_id"].astype(str),
                "output": rows["output"].astype(str),
                "expected": rows["expected"].astype(str),
                "severity": [f"{s:.2f}" for s in rows["severity"]],
                "phase": rows["phase"].astype(str),
            }
        )
        if not self.view.has_images:
            return [table]
        return [table, [(image, caption) for _, image, caption in self._gallery(mode)]]

    def _gallery(self, mode: str | None) -> list[tuple[str, Any, str]]:
        """(example id, image, caption) of the mode's examples that have an image."""
        items = []
        for _, row in self.view.examples(mode).iterrows():
            image = _image(row.get("image"))
            if image is not None:
                example = f"q{int(row['query_id'])}"
                items.append((example, image, f"{example}: {_short(row['output'], 24)}"))
        return items

    def _on_mode(self, mode: str | None) -> list:
        return [*self._examples_outputs(mode), gr.Dropdown(choices=self._target_choices(mode), value=mode)]

    def _on_target(self, target: str | None) -> list:
        example = self.view.example(target) if target and target_type(target) == "example" else None
        texts = ["", "", "", ""] if example is None else [
            str(example.get("clean_input", "")), str(example.get("input", "")),
            str(example.get("output", "")), str(example.get("expected", "")),
        ]
        hint = PICK_HINT if example is None else "Optional: the right answer for this example."
        correction = {"label": gr.Dropdown, "text": gr.Textbox, "image": gr.Radio}[self.view.correction_kind]
        outputs = [*texts, correction(value=None, interactive=example is not None, info=hint)]
        if self.view.has_images:  # show the chosen example's image, or the whole mode's thumbnails
            ids = [item for item, _, _ in self._gallery(str(int(example["action_id"])))] if example is not None else []
            outputs.append(gr.Gallery(selected_index=ids.index(target) if target in ids else None))
        return outputs

    def _correction_input(self) -> gr.components.Component:
        hint = PICK_HINT
        if self.view.correction_kind == "label":
            return gr.Dropdown(choices=self.view.labels, value=None, label="Correct label", info=hint,
                               interactive=False, elem_id="correction")
        if self.view.correction_kind == "image":
            return gr.Radio(choices=[("accept the generated image", "accept"), ("reject it", "reject")],
                            value=None, label="Generated image", info=hint, interactive=False, elem_id="correction")
        return gr.Textbox(label="Preferred output", lines=3, info=hint, interactive=False, elem_id="correction")

    def _build(self) -> gr.Blocks:
        view = self.view
        first_mode = view.mode_choices()[0][1] if len(view.modes) else None
        with gr.Blocks(title="fade-hub feedback", fill_width=True) as demo:
            with gr.Row(equal_height=True):
                gr.Markdown("## Failure feedback\nReview where the model fails and say what must be fixed.")
                if self.config.on_space:
                    gr.LoginButton(scale=0)
            gr.Textbox(value=view.summary(), label="Run", interactive=False, max_lines=2)
            with gr.Row():
                with gr.Column(scale=3):
                    mode_table = gr.Dataframe(
                        value=view.mode_table(), datatype="str", interactive=False, wrap=True, max_height=420,
                        column_widths=MODE_WIDTHS,
                        label="Failure modes, worst first (click a row to review it)", elem_id="mode-table",
                    )
                with gr.Column(scale=2):
                    gr.Plot(value=landscape_figure(view.landscape, view.space), label="Failure landscape")
            with gr.Row():
                with gr.Column(scale=3):
                    mode = gr.Dropdown(choices=view.mode_choices(), value=first_mode, label="Failure mode",
                                       elem_id="mode-select")
                    gallery = None
                    if view.has_images:
                        gallery = gr.Gallery(label="Failing examples", columns=8, height=190, object_fit="contain",
                                             format="png", elem_id="examples-gallery")
                    examples = gr.Dataframe(datatype="str", interactive=False, wrap=True, max_height=300,
                                            label="Failing examples (click one to give feedback on it)",
                                            elem_id="examples-table")
                    with gr.Row(visible=view.has_text_inputs):
                        clean = gr.Textbox(label="Clean input", interactive=False, lines=3, elem_classes="fade-mono")
                        perturbed = gr.Textbox(label="Perturbed input", interactive=False, lines=3,
                                               elem_classes="fade-mono", elem_id="perturbed-input")
                    with gr.Row():
                        output = gr.Textbox(label="Selected example: model output", interactive=False, lines=2,
                                            elem_classes="fade-mono", elem_id="model-output")
                        expected = gr.Textbox(label="Selected example: expected", interactive=False, lines=2,
                                              elem_classes="fade-mono")
                with gr.Column(scale=2):
                    target = gr.Dropdown(choices=self._target_choices(first_mode), value=first_mode,
                                         label="Give feedback on", elem_id="target-select")
                    verdict = gr.Radio(choices=VERDICT_CHOICES, label="Verdict", elem_id="verdict")
                    correction = self._correction_input()
                    note = gr.Textbox(label="Note (optional)", lines=2, elem_id="note")
                    submit = gr.Button("Submit feedback", variant="primary", elem_id="submit")
                    status = gr.Textbox(label="Status", interactive=False, lines=2, elem_id="status")
                    record = gr.JSON(label="Stored record")

            example_outputs = [examples] + ([gallery] if gallery is not None else [])
            private = {"api_visibility": "private"}
            mode.change(self._on_mode, mode, [*example_outputs, target], **private)
            details = [clean, perturbed, output, expected, correction] + ([gallery] if gallery is not None else [])
            target.change(self._on_target, target, details, **private)
            mode_table.select(_last_cell, None, mode, **private)
            examples.select(_first_cell, None, target, **private)
            if gallery is not None:
                gallery.select(self._on_gallery, mode, target, **private)
            submit.click(self._ui_submit, [target, verdict, correction, note], [status, record], **private)
            gr.api(self.submit, api_name="submit_feedback", concurrency_limit=None)
            demo.load(self._on_mode, mode, [*example_outputs, target], **private)
        return demo

    def _on_gallery(self, mode: str | None, evt: gr.SelectData) -> str | None:
        ids = [example for example, _, _ in self._gallery(mode)]
        return ids[evt.index] if 0 <= evt.index < len(ids) else None

    # lifecycle -----------------------------------------------------------------------------------

    def launch(self, **kwargs: Any) -> tuple:
        """Start the server (``demo.launch`` arguments); pair with ``close()``."""
        logger.info("feedback app for run %s: writing to %s%s", self.view.run_id, self.writer.path,
                    f" (pushed to {self.config.feedback_repo})" if self.config.feedback_repo else "")
        return self.demo.launch(theme=gr.themes.Soft(), css=CSS, **kwargs)

    def serve(self, **kwargs: Any) -> None:
        """Serve until Ctrl-C or SIGTERM, then push the last feedback."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _interrupt)
        try:
            self.launch(prevent_thread_lock=False, **kwargs)
        finally:
            self.close()

    def close(self) -> None:
        """Stop the server and push what is not on the Hub yet."""
        self.demo.close()
        self.writer.close()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _last_cell(evt: gr.SelectData) -> str:
    """The last cell of the clicked row (the failure-mode table's action_id)."""
    return str(evt.row_value[-1])


def _first_cell(evt: gr.SelectData) -> str:
    """The first cell of the clicked row (the examples table's example id)."""
    return str(evt.row_value[0])
