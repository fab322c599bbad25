"""The review page: one failure mode at a time with its examples and a verdict form, the reviewer's own verdicts,
all modes with the reviewers' votes, and the mitigated variants (``ui_variants``).

Handlers answer a refused submission with a friendly status line (the API raises instead, see ``FeedbackApp``).
The form is reset whenever the mode changes, and a verdict on a mode moves on to the next mode the reviewer has
not reviewed yet (within the chosen filter).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ..plots import landscape_figure
from ..run import target_type
from .records import InvalidFeedback
from .review import FILTER_CHOICES
from .ui_variants import variants_tab
from .view import column_widths, short, votes_text
from .words import guide_markdown, plain

VERDICT_CHOICES = [
    ("1 · fix: this must be fixed", "fix"),
    ("2 · acceptable: a failure we can live with", "acceptable"),
    ("3 · not a failure: the judge was wrong", "not_a_failure"),
]
PICK_HINT = "Pick an example (table or picture) to correct it."
MINE_COLUMNS = ["target", "what", "verdict", "correction", "note", "when (UTC)"]
PRIVATE = {"api_visibility": "private"}


class ReviewUI:
    """Components and handlers of the review page."""

    def __init__(self, app: Any) -> None:  # the FeedbackApp (its module imports this one)
        self.app = app
        self.view = app.view
        self.confirmed = {mode for mode, yes in zip(app.view.mode_ids, app.view.modes["confirmed"]) if bool(yes)}

    # layout --------------------------------------------------------------------------------------

    def build(self) -> gr.Blocks:
        """Lay out the page and connect its events."""
        app, view = self.app, self.view
        with gr.Blocks(title="fade-hub feedback", fill_width=True) as demo:
            with gr.Row(equal_height=True):
                gr.Markdown("## Failure feedback\nReview where the model fails, one failure mode at a time, and say "
                            "what must be fixed.")
                if app.config.on_space:
                    gr.LoginButton(scale=0)
            self.whoami = gr.Markdown(app.whoami_line(None), elem_id="whoami", elem_classes="fade-warning"
                                      if app.identity.warning else None)
            gr.Textbox(value=view.summary(), label="Run", interactive=False, max_lines=2, elem_id="run-summary")
            if view.lineage_text():
                gr.Textbox(value=view.lineage_text(), label="Made on a mitigated variant", interactive=False,
                           lines=2, elem_id="lineage")
            with gr.Tabs(selected="review") as self.tabs:
                with gr.Tab("Review", id="review", elem_id="tab-review"):
                    self._review_tab()
                with gr.Tab("My verdicts", id="mine", elem_id="tab-mine"):
                    self._mine_tab()
                with gr.Tab("All modes", id="modes", elem_id="tab-modes"):
                    self._modes_tab()
                with gr.Tab("Mitigated variants", id="variants", elem_id="tab-variants"):
                    variants_tab(app)
            self._wire(demo)
            gr.api(app.submit, api_name="submit_feedback", concurrency_limit=None)
            gr.api(app.withdraw, api_name="withdraw_feedback", concurrency_limit=None)
        return demo

    def _review_tab(self) -> None:
        view = self.view
        with gr.Accordion("How to review (what the terms mean)", open=False, elem_id="guide"):
            gr.Markdown(guide_markdown(view.meta.get("clean")))
        with gr.Row():
            with gr.Column(scale=2, min_width=280):
                self.progress = gr.Markdown(elem_id="progress")
                self.filter = gr.Radio(FILTER_CHOICES, value="unreviewed", show_label=False, elem_id="filter")
            with gr.Column(scale=3, min_width=280):
                self.mode = gr.Dropdown(choices=view.mode_choices(), value=None, label="Failure mode",
                                        elem_id="mode-select")
                with gr.Row():
                    self.prev = gr.Button("← previous (p)", elem_id="prev-mode", size="sm", min_width=100)
                    self.next = gr.Button("next (n) →", elem_id="next-mode", size="sm", min_width=100)
        with gr.Row():
            with gr.Column(scale=3, min_width=300):
                self.card = gr.Markdown(elem_id="mode-card")
                self.gallery = None
                if view.has_images:
                    gr.Markdown("**Failing examples**: the clean seed beside the perturbed input, what the model "
                                "said and what was expected. Click one to give feedback on it.")
                    self.gallery = gr.Gallery(
                        label="Failing examples", show_label=False, columns=2, object_fit="contain", format="png", elem_id="examples-gallery",
                        elem_classes="fade-gallery", allow_preview=False, interactive=False)
                self.examples = gr.Dataframe(datatype="str", interactive=False, wrap=True, max_height=360,
                                             column_widths=column_widths(list(view.examples_table(None).columns)),
                                             label="Failing examples (click a row to give feedback on it)",
                                             elem_id="examples-table", elem_classes="fade-table")
                with gr.Row(visible=view.has_text_inputs):
                    self.clean = gr.Textbox(label="Clean input", interactive=False, lines=3, elem_classes="fade-mono",
                                            elem_id="clean-input")
                    self.perturbed = gr.Textbox(label="Perturbed input", interactive=False, lines=3,
                                                elem_classes="fade-mono", elem_id="perturbed-input")
                with gr.Row():
                    self.output = gr.Textbox(label="Selected example: model output", interactive=False, lines=2,
                                             elem_classes="fade-mono", elem_id="model-output")
                    self.expected = gr.Textbox(label="Selected example: expected", interactive=False, lines=2,
                                               elem_classes="fade-mono", elem_id="expected")
            with gr.Column(scale=2, min_width=300):
                self.yours = gr.Markdown(elem_id="your-verdict")
                self.target = gr.Dropdown(label="Give feedback on", elem_id="target-select")
                self.verdict = gr.Radio(VERDICT_CHOICES, label="Verdict (keys 1, 2, 3; Enter submits)",
                                        elem_id="verdict")
                self.correction = self._correction_input()
                self.note = gr.Textbox(label="Note (optional)", lines=2, elem_id="note")
                self.submitting_as = gr.Markdown(self.app.whoami_line(None, warn=False), elem_id="submitting-as")
                self.submit = gr.Button("Submit verdict (Enter)", variant="primary", elem_id="submit")
                self.status = gr.Markdown(elem_id="status")
                pairs = view.factor_pairs()
                self.pair = gr.Dropdown(choices=[(f"{a} × {b}" if a != b else a, f"{a}|{b}") for a, b in pairs],
                                        value=f"{pairs[0][0]}|{pairs[0][1]}", label="Heatmap: factor pair (the "
                                        "other factors pooled; the selected mode is outlined in blue)",
                                        elem_id="pair-select")
                self.heatmap = gr.Image(type="pil", interactive=False, show_label=False, elem_id="heatmap",
                                        elem_classes="fade-image", buttons=[])

    def _correction_input(self) -> gr.components.Component:
        kind = self.view.correction_kind
        if kind == "label":
            return gr.Dropdown(choices=self.view.labels, value=None, label="Correct label", info=PICK_HINT,
                               interactive=False, elem_id="correction")
        if kind == "image":
            return gr.Radio(choices=[("accept the generated image", "accept"), ("reject it", "reject")], value=None,
                            label="Generated image", info=PICK_HINT, interactive=False, elem_id="correction")
        return gr.Textbox(label="Preferred output", lines=3, info=PICK_HINT, interactive=False, elem_id="correction")

    def _mine_tab(self) -> None:
        gr.Markdown("Your standing verdicts on this run, newest first. Pick one to change or withdraw it: the record "
                    "stays, and your latest record counts.")
        self.mine = gr.Dataframe(headers=MINE_COLUMNS, datatype="str", interactive=False, wrap=True, max_height=400,
                                 column_widths=column_widths(MINE_COLUMNS),
                                 elem_id="my-verdicts", elem_classes="fade-table")
        with gr.Row(equal_height=True):
            self.edit_target = gr.Dropdown(label="Verdict to change", elem_id="edit-target", scale=3)
            self.edit_verdict = gr.Radio(VERDICT_CHOICES, label="New verdict", elem_id="edit-verdict", scale=4)
        self.submitting_as_mine = gr.Markdown(self.app.whoami_line(None, warn=False), elem_id="submitting-as-mine")
        with gr.Row():
            self.change = gr.Button("Change verdict", variant="primary", elem_id="change-verdict")
            self.withdraw_button = gr.Button("Withdraw verdict", variant="stop", elem_id="withdraw-verdict")
        self.edit_status = gr.Markdown(elem_id="edit-status")

    def _modes_tab(self) -> None:
        self.disagree = gr.Markdown(elem_id="disagreements")
        self.mode_table = gr.Dataframe(
            value=self.view.mode_table(self.app.reviews.votes()), datatype="str", interactive=False, wrap=True,
            max_height=520, column_widths=["11%", "35%", "31.5%", "22%"], elem_id="mode-table", elem_classes="fade-table",
            label="Failure modes, worst first (click a row to review it; id = the target for the API)")
        with gr.Accordion("3D view of the landscape (optional, needs WebGL)", open=False, elem_id="view-3d"):
            show = gr.Button("Show the 3D view", size="sm", elem_id="show-3d")
            plot = gr.Plot(label="Failure landscape", elem_id="landscape-3d")
        show.click(lambda: landscape_figure(self.view.landscape, self.view.space), None, plot, **PRIVATE)

    # events --------------------------------------------------------------------------------------

    def _wire(self, demo: gr.Blocks) -> None:
        mode_view = self._mode_outputs()
        shared = [self.progress, self.mine, self.edit_target, self.mode_table, self.disagree]
        demo.load(self.on_load, [self.filter, self.pair],
                  [self.whoami, self.submitting_as, self.submitting_as_mine, self.mode, *shared], **PRIVATE)
        self.filter.change(self.on_filter, [self.filter, self.mode], [self.mode, self.progress], **PRIVATE)
        self.mode.change(self.on_mode, [self.mode, self.pair], mode_view, **PRIVATE)
        self.prev.click(self.on_step_back, [self.filter, self.mode], self.mode, **PRIVATE)
        self.next.click(self.on_step, [self.filter, self.mode], self.mode, **PRIVATE)
        self.pair.change(self.on_pair, [self.pair, self.mode], self.heatmap, **PRIVATE)
        self.target.change(self.on_target, self.target, self._detail_outputs(), **PRIVATE)
        self.examples.select(_first_cell, None, self.target, **PRIVATE)
        if self.gallery is not None:
            self.gallery.select(self.on_gallery, self.mode, self.target, **PRIVATE)
        form = [self.target, self.verdict, self.correction, self.note]
        self.submit.click(self.on_submit, [*form, self.filter, self.mode],
                          [self.status, self.mode, self.target, self.verdict, self.note, self.correction, *shared],
                          **PRIVATE)
        self.mine.select(_first_cell, None, self.edit_target, **PRIVATE)
        self.change.click(self.on_change, [self.edit_target, self.edit_verdict],
                          [self.edit_status, self.edit_verdict, *shared], **PRIVATE)
        self.withdraw_button.click(self.on_withdraw, [self.edit_target], [self.edit_status, self.edit_verdict, *shared],
                                   **PRIVATE)
        self.mode_table.select(self.on_pick_mode, [self.filter], [self.tabs, self.filter, self.mode], **PRIVATE)

    def _mode_outputs(self) -> list:
        gallery = [self.gallery] if self.gallery is not None else []
        return [self.card, *gallery, self.examples, self.target, self.heatmap, self.verdict, self.note,
                self.correction, self.yours]

    def _detail_outputs(self) -> list:
        return [self.clean, self.perturbed, self.output, self.expected, self.correction]

    # handlers ------------------------------------------------------------------------------------

    def _queue(self, user: str | None, which: str) -> list[str]:
        return self.app.reviews.queue(user, self.view.mode_ids, self.confirmed, which or "all")

    def _mode_dropdown(self, user: str | None, which: str, value: str | None) -> dict:
        queue = self._queue(user, which)
        if value not in queue:
            value = queue[0] if queue else None
        return gr.Dropdown(choices=[(self.view.mode_label(mode), mode) for mode in queue], value=value)

    def _shared(self, user: str | None) -> list:
        """Progress, my verdicts, the verdict picker, the mode table and the disagreement line."""
        reviews, view = self.app.reviews, self.view
        mine = reviews.my_verdicts(user)
        rows = [[r.target, view.describe(r.target), r.verdict.replace("_", " "), r.correction, r.note,
                 r.timestamp[:16].replace("T", " ")] for r in mine]
        choices = [(f"{r.target}: {short(view.describe(r.target), 50)} ({r.verdict.replace('_', ' ')})", r.target)
                   for r in mine]
        disputed = reviews.disagreements()
        votes = reviews.votes()
        disagree = ("Reviewers disagree on " + "; ".join(
            f"{plain(view.mode_label(mode))}: {plain(votes_text(votes[mode]))}" for mode in disputed) + "."
        ) if disputed else "No disagreement between reviewers so far."
        return [
            reviews.progress(user, view.mode_ids),
            gr.Dataframe(value=[[str(cell) for cell in row] for row in rows] or None, headers=MINE_COLUMNS),
            gr.Dropdown(choices=choices, value=None),
            view.mode_table(reviews.votes()),
            disagree,
        ]

    def on_load(self, which: str, pair: str, profile: gr.OAuthProfile | None) -> list:
        """A visitor arrives: who they are, their queue of modes, their verdicts."""
        self.app.reviews.refresh()
        user = self.app.user_of(profile)
        short_line = self.app.whoami_line(profile, warn=False)
        return [self.app.whoami_line(profile), short_line, short_line, self._mode_dropdown(user, which, None),
                *self._shared(user)]

    def on_filter(self, which: str, mode: str | None, profile: gr.OAuthProfile | None) -> list:
        """Show the modes of another filter, keeping the current mode when it is among them."""
        user = self.app.user_of(profile)
        return [self._mode_dropdown(user, which, mode), self.app.reviews.progress(user, self.view.mode_ids)]

    def _step(self, which: str, mode: str | None, profile: gr.OAuthProfile | None, delta: int) -> dict:
        queue = self._queue(self.app.user_of(profile), which)
        if not queue:
            return gr.Dropdown()
        index = queue.index(mode) + delta if mode in queue else 0
        return gr.Dropdown(value=queue[index % len(queue)])

    def on_step(self, which: str, mode: str | None, profile: gr.OAuthProfile | None) -> dict:
        """The next mode of the current filter."""
        return self._step(which, mode, profile, +1)

    def on_step_back(self, which: str, mode: str | None, profile: gr.OAuthProfile | None) -> dict:
        """The previous mode of the current filter."""
        return self._step(which, mode, profile, -1)

    def on_mode(self, mode: str | None, pair: str, profile: gr.OAuthProfile | None) -> list:
        """Show a mode: its card, examples, target choices and heatmap; reset the form."""
        view, reviews = self.view, self.app.reviews
        user = self.app.user_of(profile)
        position = ""
        if mode in view.mode_ids:
            position = f"Mode {view.mode_ids.index(mode) + 1} of {len(view.mode_ids)}:"
        card = view.mode_card(mode, reviews.votes().get(mode or ""), position)
        if mode is None and len(view.modes):
            card = ("**Nothing left to show under this filter.** All done? Choose *all modes* above to look at any "
                    "mode again, or *My verdicts* to change one.")
        gallery = [[(image, caption) for _, image, caption in view.example_pairs(mode)]] if self.gallery else []
        return [card, *gallery, view.examples_table(mode), gr.Dropdown(choices=self._target_choices(mode), value=mode),
                self._heatmap(pair, mode), None, "", self._reset_correction(), self._yours(user, mode)]

    def _yours(self, user: str | None, mode: str | None) -> str:
        """The visitor's standing verdict on a mode, in one line (``""`` when none)."""
        mine = self.app.reviews.my_verdict(user, mode) if mode else None
        if mine is None:
            return ""
        return (f"Your verdict on this mode: **{mine.verdict.replace('_', ' ')}** "
                f"({mine.timestamp[:16].replace('T', ' ')} UTC); submit again to change it.")

    def _target_choices(self, mode: str | None) -> list[tuple[str, str]]:
        if not mode:
            return []
        choices = [(f"the whole {self.view.describe(mode)}", mode)]
        for _, row in self.view.examples(mode).iterrows():
            label = (f"example q{int(row['query_id'])}: output {short(row['output'], 40)!r}, "
                     f"expected {short(row['expected'], 40)!r}")
            choices.append((label, f"q{int(row['query_id'])}"))
        return choices

    def _heatmap(self, pair: str | None, mode: str | None):
        a, _, b = str(pair or "").partition("|")
        if not a or not b:
            return None
        from .heatmap import heatmap_image

        row = self.view.mode_row(mode)
        selected = {name: str(row[name]) for name in self.view.factor_names} if row is not None else None
        return heatmap_image(self.view.landscape, self.view.space, (a, b), selected)

    def on_pair(self, pair: str, mode: str | None) -> Any:
        """Draw the heatmap of another factor pair."""
        return self._heatmap(pair, mode)

    def _reset_correction(self, example: Any = None) -> Any:
        hint = PICK_HINT if example is None else "Optional: the right answer for this example."
        kind = {"label": gr.Dropdown, "text": gr.Textbox, "image": gr.Radio}[self.view.correction_kind]
        return kind(value=None, interactive=example is not None, info=hint)

    def on_target(self, target: str | None) -> list:
        """Show the chosen example's texts and allow a correction for it."""
        example = self.view.example(target) if target and target_type(target) == "example" else None
        if example is None:
            return ["", "", "", "", self._reset_correction()]
        return [str(example.get("clean_input", "")), str(example.get("input", "")), str(example.get("output", "")),
                str(example.get("expected", "")), self._reset_correction(example)]

    def on_gallery(self, mode: str | None, evt: gr.SelectData) -> str | None:
        """The example a clicked picture shows."""
        ids = [example for example, _, _ in self.view.example_pairs(mode)]
        return ids[evt.index] if isinstance(evt.index, int) and 0 <= evt.index < len(ids) else None

    def on_submit(self, target: str | None, verdict: str | None, correction: Any, note: str | None, which: str,
                  mode: str | None, profile: gr.OAuthProfile | None) -> list:
        """Store the verdict, reset the form and move on to the next unreviewed mode (after a verdict on a mode)."""
        app = self.app
        user = app.user_of(profile)
        keep = [gr.update()] * 5  # mode, target, verdict, note, correction stay as they are
        try:
            record = app.record_verdict(target or "", verdict or "", correction or "", note or "", profile)
        except InvalidFeedback as err:
            message = str(err)
            if message.startswith("choose a verdict first"):
                message = "Choose a verdict first: press 1, 2 or 3, or click one."
            return [f"**Not stored:** {plain(message)}", *keep, *self._shared(user)]
        status = (f"Stored **{record.verdict.replace('_', ' ')}** on {plain(self.view.describe(record.target))} as "
                  f"**{plain(record.user)}**; {plain(app.where_stored())}.")
        current = mode if mode in self.view.mode_ids else self.view.mode_of(record.target)
        following = current
        if record.target_type == "mode":
            following = app.reviews.next_mode(record.user, self._queue(None, "all"), current)
            if following is None:
                status += " **You have reviewed every mode: thank you!**"
        dropdown = self._mode_dropdown(record.user, which, following)
        target = gr.Dropdown(choices=self._target_choices(following), value=following)
        return [status, dropdown, target, None, "", self._reset_correction(),
                *self._shared(record.user)]

    def on_change(self, target: str | None, verdict: str | None, profile: gr.OAuthProfile | None) -> list:
        """Store a new verdict on one of the visitor's targets (keeping its correction and note)."""
        user = self.app.user_of(profile)
        if not target:
            return ["Pick one of your verdicts first.", gr.Radio(), *self._shared(user)]
        old = self.app.reviews.my_verdict(user, target)
        try:
            record = self.app.record_verdict(target, verdict or "", old.correction if old else "",
                                             old.note if old else "", profile)
        except InvalidFeedback as err:
            return [f"**Not changed:** {plain(err)}", gr.Radio(), *self._shared(user)]
        return [f"Changed: **{record.verdict.replace('_', ' ')}** on {plain(self.view.describe(record.target))}.",
                None, *self._shared(record.user)]

    def on_withdraw(self, target: str | None, profile: gr.OAuthProfile | None) -> list:
        """Withdraw the visitor's verdict on a target."""
        user = self.app.user_of(profile)
        if not target:
            return ["Pick one of your verdicts first.", gr.Radio(), *self._shared(user)]
        try:
            record = self.app.record_withdrawal(target, profile)
        except InvalidFeedback as err:
            return [f"**Not withdrawn:** {plain(err)}", gr.Radio(), *self._shared(user)]
        return [f"Withdrawn: your verdict on {plain(self.view.describe(record.target))}.", None,
                *self._shared(record.user)]

    def on_pick_mode(self, which: str, evt: gr.SelectData, profile: gr.OAuthProfile | None) -> list:
        """Open the clicked mode of the table in the review tab (showing all modes when it is filtered out)."""
        mode = str(evt.row_value[0])
        user = self.app.user_of(profile)
        if mode not in self._queue(user, which):
            which = "all"
        return [gr.Tabs(selected="review"), which, self._mode_dropdown(user, which, mode)]


def _first_cell(evt: gr.SelectData) -> str:
    """The first cell of the clicked row (an example id or a target)."""
    return str(evt.row_value[0])
