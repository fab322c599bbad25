"""The review page: one failure region at a time with its figures, examples and cells, and an action bar that stays
in sight; the reviewer's own verdicts (change, withdraw with one confirmation, undo); all regions with the
reviewers' votes; the mitigated variants (``ui_variants``).

Handlers answer a refused submission with a friendly status line (the API raises instead, see ``FeedbackApp``).
The form is reset whenever the region changes, and a verdict on a region moves on to the next region the reviewer
has not reviewed yet (within the chosen filter). The verdict applies to the whole region unless the reviewer picked
one of its cells or examples (then to that one only).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ..run import item_type
from .records import InvalidFeedback
from .review import FILTER_CHOICES
from .judging import JudgeCheckView
from .ui_judge import JudgeTab
from .ui_variants import variants_tab
from .view import CELL_COLUMNS, REGION_COLUMNS, TABLE, column_widths, short, votes_text
from .words import guide_markdown, plain

VERDICT_CHOICES = [("1 fix", "fix"), ("2 acceptable", "acceptable"), ("3 not a failure", "not_a_failure")]
VERDICT_INFO = "fix: must be fixed · acceptable: a failure we live with · not a failure: the judge was wrong"
MINE_COLUMNS = ["what", "verdict and note", "when (UTC)"]
PRIVATE = {"api_visibility": "private"}
EMPTY = {
    "unreviewed": ("**You have reviewed every region: thank you!** Choose *all* above to look at one again, or "
                   "change a verdict under *My verdicts*."),
    "confirmed": "**No confirmed region yet:** review the screened ones under *all*.",
    "all": "**This run found no failure region:** there is nothing to review.",
}
# after a verdict moves on: the next region's top at the top of the screen
SCROLL_TO_REGION = """() => { document.querySelector('#region-card')?.scrollIntoView({block: 'start'}); }"""


def _when(stamp: str) -> str:
    """``6 Dec 2026 14:02`` from an ISO timestamp (words and short numbers, so that a narrow column wraps well)."""
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp[:16].replace("T", " ")
    return f"{moment.day} {moment:%b %Y %H:%M}"


def _verdict_and_note(verdict: str, note: str) -> str:
    """``not a failure · note: the judge is wrong here``."""
    return verdict.replace("_", " ") + (f" · note: {note}" if note else "")


class ReviewUI:
    """Components and handlers of the review page."""

    def __init__(self, app: Any) -> None:  # the FeedbackApp (its module imports this one)
        self.app = app
        self.view = app.view
        self.judging = JudgeCheckView(app.view)
        self.judge = JudgeTab(self, self.judging)

    # layout --------------------------------------------------------------------------------------

    def build(self) -> gr.Blocks:
        """Lay out the page and connect its events."""
        app, view = self.app, self.view
        with gr.Blocks(title="fade-hub review", fill_width=True, analytics_enabled=False) as demo:
            with gr.Row(equal_height=True, elem_id="header"):
                gr.Markdown("## Failure review", elem_id="title")
                if app.config.on_space:
                    gr.LoginButton(scale=0)
            gr.Markdown(view.headline(), elem_id="headline")
            self.whoami = gr.Markdown(app.whoami_line(None), elem_id="whoami", elem_classes="fade-warning"
                                      if app.identity.warning else None)
            with gr.Accordion("Run details", open=False, elem_id="run-details"):
                gr.Textbox(value=view.summary(), label="Run", interactive=False, lines=3, elem_id="run-summary")
                gr.Textbox(value=f"Verdicts are {app.where_stored()}.", label="Where verdicts go", interactive=False,
                           lines=2, elem_id="where-stored")
                if view.lineage_text():
                    gr.Textbox(value=view.lineage_text(), label="Made on a mitigated variant", interactive=False,
                               lines=3, elem_id="lineage")
            with gr.Tabs(selected="review") as self.tabs:
                with gr.Tab("Review", id="review", elem_id="tab-review"):
                    self._review_tab()
                with gr.Tab("My verdicts", id="mine", elem_id="tab-mine"):
                    self._mine_tab()
                with gr.Tab("All regions", id="regions", elem_id="tab-regions"):
                    self._regions_tab()
                with gr.Tab("Check the judge", id="judge", elem_id="tab-judge"):
                    self.judge.build()
                with gr.Tab("Mitigated variants", id="variants", elem_id="tab-variants"):
                    variants_tab(app)
            self._wire(demo)
            gr.api(app.submit, api_name="submit_feedback", concurrency_limit=None)
            gr.api(app.withdraw, api_name="withdraw_feedback", concurrency_limit=None)
        return demo

    def _review_tab(self) -> None:
        view = self.view
        with gr.Row(elem_id="review-grid"):
            with gr.Column(elem_id="review-summary", min_width=0):
                with gr.Accordion("How to review", open=True, elem_id="guide"):
                    gr.Markdown(guide_markdown(view.meta.get("clean"), (view.meta.get("judge") or {}).get("name", "")))
                self.progress = gr.Markdown(elem_id="progress")
                self.filter = gr.Radio(FILTER_CHOICES, value="unreviewed", label="Show regions", elem_id="filter")
                with gr.Row(elem_id="steps"):
                    self.region = gr.Dropdown(choices=view.region_choices(), value=None, label="Region", scale=4,
                                              elem_id="region-select", min_width=0)
                    self.prev = gr.Button("← previous (p)", elem_id="prev-region", size="sm", scale=1, min_width=0)
                    self.next = gr.Button("next (n) →", elem_id="next-region", size="sm", scale=1, min_width=0)
                self.card = gr.Markdown(elem_id="region-card")
                with gr.Accordion("Details: the statistics behind this region", open=False, elem_id="region-details"):
                    self.details = gr.Markdown(elem_id="region-stats")
                    self.region_id = gr.Textbox(label="Region id (the item for the API)", interactive=False, lines=2,
                                                elem_id="region-id", elem_classes="fade-mono")
            with gr.Column(elem_id="action-bar", min_width=0):
                self.target = gr.State(None)
                self.target_line = gr.Markdown(elem_id="target-line")
                self.whole = gr.Button("back to the whole region", size="sm", visible=False, elem_id="whole-region")
                self.verdict = gr.Radio(VERDICT_CHOICES, label="Verdict (keys 1, 2, 3; Enter submits)",
                                        info=VERDICT_INFO, elem_id="verdict")
                with gr.Accordion("Note or correction (optional)", open=False, elem_id="extras"):
                    self.correction = self._correction_input()
                    self.note = gr.Textbox(label="Note", lines=2, elem_id="note")
                self.submit = gr.Button("Submit verdict (Enter)", variant="primary", interactive=False,
                                        elem_id="submit")
                self.status = gr.Markdown(elem_id="status")
                self.yours = gr.Markdown(elem_id="your-verdict")
            with gr.Column(elem_id="review-evidence", min_width=0):
                self.picture = gr.Image(type="pil", interactive=False, show_label=False, elem_id="region-picture",
                                        elem_classes="fade-image", buttons=["fullscreen"])
                self.gallery = self.examples = None
                if view.has_images:
                    gr.Markdown("**Failing examples:** the unchanged seed beside the changed input, with what the "
                                "model said. Click one to give it a verdict of its own.", elem_id="examples-intro")
                    self.gallery = gr.Gallery(label="Failing examples", show_label=False, columns=2,
                                              object_fit="contain", format="png", elem_id="examples-gallery",
                                              elem_classes="fade-gallery", allow_preview=False, interactive=False)
                else:
                    self.examples = gr.Dataframe(**TABLE,
                                                 column_widths=column_widths(list(view.examples_table(None).columns)),
                                                 label="Failing examples (click one to give it a verdict of its own)",
                                                 elem_id="examples-table")
                with gr.Accordion("Cells of this region", open=False, elem_id="cells"):
                    self.cells = gr.Dataframe(**TABLE, headers=CELL_COLUMNS,
                                              column_widths=column_widths(CELL_COLUMNS), elem_id="cells-table",
                                              label="Failing seeds per cell during the search (click one to give it "
                                                    "a verdict of its own)")
                with gr.Accordion("Landscape: any two factors", open=False, elem_id="landscape"):
                    self.pairs = [(f"{a} × {b}" if a != b else a, f"{a}|{b}") for a, b in view.factor_pairs()]
                    self.pair = gr.Dropdown(choices=self.pairs, value=self.pairs[0][1], label="Factors (the others "
                                            "pooled; the region outlined)", elem_id="pair-select")
                    self.heatmap = gr.Image(type="pil", interactive=False, show_label=False, elem_id="heatmap",
                                            elem_classes="fade-image", buttons=[])

    def _correction_input(self) -> gr.components.Component:
        kind, hint = self.view.correction_kind, "For one example: pick it first."
        if kind == "label":
            return gr.Dropdown(choices=self.view.labels, value=None, label="Correct label", info=hint,
                               interactive=False, elem_id="correction")
        if kind == "image":
            return gr.Radio(choices=[("accept the generated image", "accept"), ("reject it", "reject")], value=None,
                            label="Generated image", info=hint, interactive=False, elem_id="correction")
        return gr.Textbox(label="Preferred output", lines=3, info=hint, interactive=False, elem_id="correction")

    def _mine_tab(self) -> None:
        gr.Markdown("Your standing verdicts on this run, newest first. Pick one to change or withdraw it: the record "
                    "stays, and your latest record counts.")
        self.mine = gr.Dataframe(**TABLE, headers=MINE_COLUMNS,
                                 column_widths=column_widths(MINE_COLUMNS), elem_id="my-verdicts")
        with gr.Row(equal_height=True):
            self.edit_target = gr.Dropdown(label="Verdict to change", elem_id="edit-target", min_width=320)
            self.edit_verdict = gr.Radio(VERDICT_CHOICES, label="New verdict", elem_id="edit-verdict", min_width=320)
        self.submitting_as_mine = gr.Markdown(self.app.whoami_line(None, warn=False), elem_id="submitting-as-mine")
        with gr.Row():
            self.change = gr.Button("Change verdict", variant="primary", elem_id="change-verdict", min_width=0)
            self.withdraw_button = gr.Button("Withdraw verdict", variant="stop", elem_id="withdraw-verdict",
                                             min_width=0)
        with gr.Row(visible=False, elem_id="withdraw-confirm") as self.confirm_row:
            self.withdraw_yes = gr.Button("Yes, withdraw it", variant="stop", elem_id="withdraw-yes", min_width=0)
            self.withdraw_no = gr.Button("No, keep it", elem_id="withdraw-no", min_width=0)
        self.edit_status = gr.Markdown(elem_id="edit-status")
        self.undo = gr.Button("Undo the withdrawal", visible=False, elem_id="undo-withdraw", size="sm")
        self.withdrawn = gr.State(None)  # the verdict last withdrawn, for undo

    def _regions_tab(self) -> None:
        self.disagree = gr.Markdown(elem_id="disagreements")
        self.region_table = gr.Dataframe(
            value=self.view.region_table(self.app.reviews.votes(), self._judge_errors()), **TABLE,
            column_widths=column_widths(REGION_COLUMNS), elem_id="region-table",
            label="Failure regions, worst first (click one to review it)")

    # events --------------------------------------------------------------------------------------

    def shared_outputs(self) -> list:
        """The components ``shared`` fills."""
        return [self.progress, self.mine, self.edit_target, self.region_table, self.disagree]

    def _wire(self, demo: gr.Blocks) -> None:
        shared = self.shared_outputs()
        demo.load(self.on_load, [self.filter], [self.whoami, self.submitting_as_mine, self.region, *shared], **PRIVATE)
        self.filter.change(self.on_filter, [self.filter, self.region], [self.region, self.progress, self.card],
                           **PRIVATE)
        self.region.change(self.on_region, [self.region, self.filter, self.target], self._region_outputs(),
                           **PRIVATE)
        self.prev.click(self.on_step_back, [self.filter, self.region], self.region, **PRIVATE)
        self.next.click(self.on_step, [self.filter, self.region], self.region, **PRIVATE)
        self.pair.change(self.on_pair, [self.pair, self.region], self.heatmap, **PRIVATE)
        target_view = [self.target, self.target_line, self.whole, self.correction]
        if self.gallery is not None:
            self.gallery.select(self.on_pick_example, self.region, target_view, **PRIVATE)
        if self.examples is not None:
            self.examples.select(self.on_pick_example, self.region, target_view, **PRIVATE)
        self.cells.select(self.on_pick_cell, self.region, target_view, **PRIVATE)
        self.whole.click(self.on_whole, self.region, target_view, **PRIVATE)
        form = [self.target, self.verdict, self.correction, self.note]
        submitted = self.submit.click(self.on_submit, [*form, self.filter, self.region],
                                      [self.status, self.filter, self.region, self.verdict, self.note, *target_view,
                                       *shared], **PRIVATE)
        submitted.then(None, js=SCROLL_TO_REGION, **PRIVATE)
        self.mine.select(self.on_pick_mine, None, self.edit_target, **PRIVATE)
        edited = [self.edit_status, self.edit_verdict, self.confirm_row, self.undo, *shared]
        changed = self.change.click(self.on_change, [self.edit_target, self.edit_verdict], edited, **PRIVATE)
        self.withdraw_button.click(self.on_ask_withdraw, [self.edit_target], [self.edit_status, self.confirm_row],
                                   **PRIVATE)
        self.withdraw_no.click(lambda: ["Kept.", gr.Row(visible=False)], None, [self.edit_status, self.confirm_row],
                               **PRIVATE)
        withdrawn = self.withdraw_yes.click(self.on_withdraw, [self.edit_target], [*edited, self.withdrawn], **PRIVATE)
        undone = self.undo.click(self.on_undo, [self.withdrawn], [*edited, self.withdrawn], **PRIVATE)
        self.region_table.select(self.on_pick_region, [self.filter], [self.tabs, self.filter, self.region], **PRIVATE)
        self.judge.wire(demo, [submitted, changed, withdrawn, undone])

    def _region_outputs(self) -> list:
        shown = [self.gallery] if self.gallery is not None else [self.examples]
        return [self.card, self.details, self.region_id, self.picture, *shown, self.cells, self.pair, self.heatmap,
                self.target, self.target_line, self.whole, self.correction, self.verdict, self.note, self.yours,
                self.submit]

    # handlers ------------------------------------------------------------------------------------

    def _queue(self, user: str | None, which: str) -> list[str]:
        return self.app.reviews.queue(user, self.view.region_ids, self.view.confirmed_ids, which or "all")

    def _shown(self, user: str | None, which: str, value: str | None) -> str | None:
        """The region a filter shows: ``value`` when it is in the filter's queue, else the queue's first (or None)."""
        queue = self._queue(user, which)
        return value if value in queue else queue[0] if queue else None

    def _region_dropdown(self, user: str | None, which: str, value: str | None) -> dict:
        queue, errors = self._queue(user, which), self._judge_errors()
        return gr.Dropdown(choices=[(self.view.region_label(region, region in errors), region) for region in queue],
                           value=self._shown(user, which, value))

    def _judge_errors(self) -> dict[str, str]:
        """The regions reviewers call judge errors, with their words (``JudgeCheck.error_words``)."""
        check = self.judging.check(self.app.reviews.resolved())
        return {region: check.error_words(region) for region in check.judge_errors}

    def shared(self, user: str | None) -> list:
        """Progress, my verdicts, the verdict picker, the region table and the disagreement line."""
        reviews, view = self.app.reviews, self.view
        mine = reviews.my_verdicts(user)
        rows = [[view.describe(r.item), _verdict_and_note(r.verdict, r.note), _when(r.timestamp)] for r in mine]
        choices = [(f"{short(view.describe(r.item), 34)} ({r.verdict.replace('_', ' ')})", r.item) for r in mine]
        disputed = reviews.disagreements(view.region_ids)
        votes = reviews.votes()
        disagree = ("Reviewers disagree on " + "; ".join(
            f"region {view.region_number(region)}: {plain(votes_text(votes[region]))}" for region in disputed) + "."
        ) if disputed else "No disagreement between reviewers so far."
        return [
            reviews.progress(user, view.region_ids),
            gr.Dataframe(value=[[str(cell) for cell in row] for row in rows] or None, headers=MINE_COLUMNS),
            gr.Dropdown(choices=choices, value=None),
            view.region_table(votes, self._judge_errors()),
            disagree,
        ]

    def on_load(self, which: str, profile: gr.OAuthProfile | None) -> list:
        """A visitor arrives: who they are, their queue of regions, their verdicts."""
        self.app.reviews.refresh()
        user = self.app.user_of(profile)
        return [self.app.whoami_line(profile), self.app.whoami_line(profile, warn=False),
                self._region_dropdown(user, which, None), *self.shared(user)]

    def on_filter(self, which: str, region: str | None, profile: gr.OAuthProfile | None) -> list:
        """Show the regions of another filter, keeping the current region when it is among them."""
        user = self.app.user_of(profile)
        card = gr.update() if self._shown(user, which, region) else EMPTY.get(which, EMPTY["all"])
        return [self._region_dropdown(user, which, region), self.app.reviews.progress(user, self.view.region_ids), card]

    def _step(self, which: str, region: str | None, profile: gr.OAuthProfile | None, delta: int) -> dict:
        queue = self._queue(self.app.user_of(profile), which)
        if not queue:
            return gr.Dropdown()
        index = queue.index(region) + delta if region in queue else 0
        return gr.Dropdown(value=queue[index % len(queue)])

    def on_step(self, which: str, region: str | None, profile: gr.OAuthProfile | None) -> dict:
        """The next region of the current filter."""
        return self._step(which, region, profile, +1)

    def on_step_back(self, which: str, region: str | None, profile: gr.OAuthProfile | None) -> dict:
        """The previous region of the current filter."""
        return self._step(which, region, profile, -1)

    def on_region(self, region: str | None, which: str, item: str | None, profile: gr.OAuthProfile | None) -> list:
        """Show a region: its card, details, picture, examples, cells and heatmap; reset the form to the whole
        region unless it is already aimed inside this region (Submit stays off while no region is shown)."""
        view, reviews = self.view, self.app.reviews
        user = self.app.user_of(profile)
        if view.region_row(region) is None:
            card = EMPTY.get(which or "all", EMPTY["all"]) if len(view.regions) else EMPTY["all"]
            shown = [[]] if self.gallery is not None else [None]
            return [card, "", "", None, *shown, None, gr.Dropdown(), None, None, "", gr.Button(visible=False),
                    self._reset_correction(), None, "", "", gr.Button(interactive=False)]
        if self.gallery is not None:
            shown = [[(image, caption) for _, image, caption in view.example_pairs(region)]]
        else:
            shown = [view.examples_table(region)]
        a, b = view.region_pair(region)
        pair = f"{a}|{b}"
        form = [*self._aim(region, region), None, ""]  # item, its line, "whole region", correction, verdict, note
        if item and view.region_of(item) == region:  # shown again (a verdict moved on to it): keep what is typed
            form = [gr.update()] * len(form)
        card = view.region_card(region, reviews.votes().get(region), self._judge_errors().get(region, ""))
        return [card, view.region_details(region), region,
                view.region_picture(region), *shown, view.cells_table(region),
                gr.Dropdown(choices=self.pairs, value=pair), self._heatmap(pair, region), *form,
                self._yours(user, region), gr.Button(interactive=True)]

    def _aim(self, item: str | None, region: str | None) -> list:
        """The item state, the line that names it, the "whole region" button and the correction input."""
        if not item:
            return [None, "", gr.Button(visible=False), self._reset_correction()]
        kind = item_type(item)
        if kind == "region":
            line = f"Your verdict on **region {self.view.region_number(item)}** (all its cells)"
        else:
            line = (f"Your verdict on **{plain(self.view.describe(item))}** only, inside region "
                    f"{self.view.region_number(region or '')}")
        correction = self._reset_correction(example=kind == "example")
        return [item, line, gr.Button(visible=kind != "region"), correction]

    def _yours(self, user: str | None, region: str | None) -> str:
        """The visitor's standing verdict on a region, in one line (``""`` when none)."""
        mine = self.app.reviews.my_verdict(user, region) if region else None
        if mine is None:
            return ""
        return f"You said **{mine.verdict.replace('_', ' ')}** ({_when(mine.timestamp)} UTC); submit to change it."

    def _heatmap(self, pair: str | None, region: str | None):
        a, _, b = str(pair or "").partition("|")
        if not a or not b:
            return None
        from .heatmap import heatmap_image

        selected = self.view.region_levels(region) if region else None
        return heatmap_image(self.view.landscape, self.view.space, (a, b), selected)

    def on_pair(self, pair: str, region: str | None) -> Any:
        """Draw the heatmap of another factor pair."""
        return self._heatmap(pair, region)

    def _reset_correction(self, example: bool = False) -> Any:
        kind = {"label": gr.Dropdown, "text": gr.Textbox, "image": gr.Radio}[self.view.correction_kind]
        info = "Optional: the right answer for this example." if example else "For one example: pick it first."
        return kind(value=None, interactive=example, info=info)

    def on_pick_example(self, region: str | None, evt: gr.SelectData) -> list:
        """Aim the verdict at the clicked example (a picture or a row)."""
        ids = self.view.example_ids(region)
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        if not isinstance(index, int) or not 0 <= index < len(ids):
            return self._aim(region, region)
        return self._aim(ids[index], region)

    def on_pick_cell(self, region: str | None, evt: gr.SelectData) -> list:
        """Aim the verdict at the clicked cell of the region."""
        cells = self.view.cells(region)
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        if not isinstance(index, int) or not 0 <= index < len(cells):
            return self._aim(region, region)
        return self._aim(str(cells[index]), region)

    def on_whole(self, region: str | None) -> list:
        """Aim the verdict at the whole region again."""
        return self._aim(region, region)

    def on_submit(self, item: str | None, verdict: str | None, correction: Any, note: str | None, which: str,
                  region: str | None, profile: gr.OAuthProfile | None) -> list:
        """Store the verdict, reset the form and, after a verdict on a region, move on to the next unreviewed one."""
        app, view = self.app, self.view
        user = app.user_of(profile)
        keep = [gr.update()] * 8  # the filter, region, verdict, note and the item stay as they are
        if not item:
            return ["**Not stored:** pick a region first.", *keep, *self.shared(user)]
        try:
            record = app.record_verdict(item, verdict or "", correction or "", note or "", profile)
        except InvalidFeedback as err:
            message = str(err)
            if message.startswith("choose a verdict first"):
                message = "Choose a verdict first: press 1, 2 or 3, or click one."
            return [f"**Not stored:** {plain(message)}", *keep, *self.shared(user)]
        stored = f"Stored **{record.verdict.replace('_', ' ')}** on "
        following, done = region, False
        if record.item_type == "region":
            stored += f"region {view.region_number(record.item)}"
            following = app.reviews.next_region(record.user, self._queue(None, "all"), region)
            done = following is None
            stored += f" — next: region {view.region_number(following)}" if following else ""
            following = following or region
        else:
            stored += plain(view.describe(record.item)) + f" (inside region {view.region_number(region or '')})"
        status = f"{stored} (as **{plain(record.user)}**)."
        if done:
            status += " **You have reviewed every region: thank you!**"
        shown = which if following in self._queue(record.user, which) else "all"  # the last one stays in view
        filter_ = gr.update() if shown == which else shown
        return [status, filter_, self._region_dropdown(record.user, shown, following), None, "",
                *self._aim(following, following), *self.shared(record.user)]

    def on_pick_mine(self, evt: gr.SelectData, profile: gr.OAuthProfile | None) -> dict:
        """Choose the clicked row of my verdicts for a change or a withdrawal."""
        mine = self.app.reviews.my_verdicts(self.app.user_of(profile))
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        if not isinstance(index, int) or not 0 <= index < len(mine):
            return gr.Dropdown()
        return gr.Dropdown(value=mine[index].item)

    def on_change(self, item: str | None, verdict: str | None, profile: gr.OAuthProfile | None) -> list:
        """Store a new verdict on one of the visitor's items (keeping its correction and note)."""
        user = self.app.user_of(profile)
        hidden = [gr.Row(visible=False), gr.Button(visible=False)]
        if not item:
            return ["Pick one of your verdicts first.", gr.Radio(), *hidden, *self.shared(user)]
        old = self.app.reviews.my_verdict(user, item)
        try:
            record = self.app.record_verdict(item, verdict or "", old.correction if old else "",
                                             old.note if old else "", profile)
        except InvalidFeedback as err:
            return [f"**Not changed:** {plain(err)}", gr.Radio(), *hidden, *self.shared(user)]
        return [f"Changed: **{record.verdict.replace('_', ' ')}** on {plain(self.view.describe(record.item))}.",
                None, *hidden, *self.shared(record.user)]

    def on_ask_withdraw(self, item: str | None, profile: gr.OAuthProfile | None) -> list:
        """Ask once before a withdrawal."""
        user = self.app.user_of(profile)
        mine = self.app.reviews.my_verdict(user, item) if item else None
        if mine is None:
            return ["Pick one of your verdicts first.", gr.Row(visible=False)]
        return [f"Withdraw your verdict **{mine.verdict.replace('_', ' ')}** on {plain(self.view.describe(item))}?",
                gr.Row(visible=True)]

    def on_withdraw(self, item: str | None, profile: gr.OAuthProfile | None) -> list:
        """Withdraw the visitor's verdict on an item; keep it for an undo."""
        user = self.app.user_of(profile)
        old = self.app.reviews.my_verdict(user, item) if item else None
        try:
            record = self.app.record_withdrawal(item or "", profile)
        except InvalidFeedback as err:
            return [f"**Not withdrawn:** {plain(err)}", gr.Radio(), gr.Row(visible=False), gr.Button(visible=False),
                    *self.shared(user), None]
        undo = old.to_dict() if old is not None else None
        return [f"Withdrawn: your verdict on {plain(self.view.describe(record.item))}.", None,
                gr.Row(visible=False), gr.Button(visible=undo is not None), *self.shared(record.user), undo]

    def on_undo(self, withdrawn: dict | None, profile: gr.OAuthProfile | None) -> list:
        """Store the withdrawn verdict again (a new record with its verdict, correction and note)."""
        user = self.app.user_of(profile)
        if not withdrawn:
            return ["Nothing to undo.", gr.Radio(), gr.Row(visible=False), gr.Button(visible=False),
                    *self.shared(user), None]
        try:
            record = self.app.record_verdict(withdrawn["item"], withdrawn["verdict"], withdrawn["correction"],
                                             withdrawn["note"], profile)
        except InvalidFeedback as err:
            return [f"**Not restored:** {plain(err)}", gr.Radio(), gr.Row(visible=False), gr.Button(visible=False),
                    *self.shared(user), None]
        return [f"Restored: **{record.verdict.replace('_', ' ')}** on {plain(self.view.describe(record.item))}.",
                None, gr.Row(visible=False), gr.Button(visible=False), *self.shared(record.user), None]

    def on_pick_region(self, which: str, evt: gr.SelectData, profile: gr.OAuthProfile | None) -> list:
        """Open the clicked region of the table in the review tab (showing all regions when it is filtered out)."""
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        ids = self.view.region_ids
        if not isinstance(index, int) or not 0 <= index < len(ids):
            return [gr.Tabs(), which, gr.Dropdown()]
        region = ids[index]
        user = self.app.user_of(profile)
        if region not in self._queue(user, which):
            which = "all"
        return [gr.Tabs(selected="review"), which, self._region_dropdown(user, which, region)]
