"""The "Check the judge" tab: the judge's agreement with reviewers (overall and per region, with 95 % intervals, the
judge-error regions named), refreshed after every verdict, and the answers ``explore --judge-audit N`` picked at
random, one at a time, each with a verdict form; a verdict moves on to the next answer the reviewer has not checked.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from .judging import JudgeCheckView
from .records import InvalidFeedback
from .words import plain

PRIVATE = {"api_visibility": "private"}
AUDIT_CHOICES = [("a failure: fix", "fix"), ("a failure we accept", "acceptable"), ("not a failure", "not_a_failure")]
INTRO = ("How often the judge's verdicts match those of the reviewers, from every verdict given on an answer (here or "
         "on an example in the *Review* tab). A region whose reviewers mostly say *not a failure* is a judge error: "
         "it is flagged wherever it shows and left out of mitigation.")
AUDIT_INTRO = ("Reviewers look at the failures the judge found; these answers were **picked at random to check the "
               "judge**, passes as well as failures, so that its mistakes show where nobody would look on their own. "
               "Say whether each answer is a failure: your verdict is compared with the judge's.")
NO_AUDIT = ("This run picked no answers to check the judge (`fade-hub explore --judge-audit N` picks N). Verdicts on "
            "examples in the *Review* tab count in the agreement above.")


class JudgeTab:
    """Components and handlers of the "Check the judge" tab (``ui`` is the page's ``ReviewUI``)."""

    def __init__(self, ui: Any, judging: JudgeCheckView) -> None:
        self.ui, self.app, self.view, self.judging = ui, ui.app, ui.view, judging
        self.pick = None

    def build(self) -> None:
        """Lay out the tab inside the current ``gr.Tab``."""
        gr.Markdown(INTRO, elem_id="judge-intro")
        self.agreement = gr.Markdown(elem_id="agreement")
        self.table = gr.Markdown(elem_id="agreement-regions")
        gr.Markdown("### Answers picked at random to check the judge", elem_id="audit-title")
        if not self.view.audit_ids:
            gr.Markdown(NO_AUDIT, elem_id="audit-none")
            return
        gr.Markdown(AUDIT_INTRO, elem_id="audit-intro")
        self.progress = gr.Markdown(elem_id="audit-progress")
        with gr.Row(elem_id="audit-steps"):
            self.pick = gr.Dropdown(choices=self.judging.audit_choices(), value=None, label="Answer", scale=4,
                                    min_width=0, elem_id="audit-select")
            self.prev = gr.Button("← previous", size="sm", scale=1, min_width=0, elem_id="audit-prev")
            self.next = gr.Button("next →", size="sm", scale=1, min_width=0, elem_id="audit-next")
        self.card = gr.Markdown(elem_id="audit-card")
        self.picture = gr.Image(type="pil", interactive=False, show_label=False, visible=self.view.has_images,
                                elem_id="audit-picture", elem_classes="fade-image", buttons=["fullscreen"])
        self.input = gr.Textbox(label="What the model was asked", interactive=False, lines=2, max_lines=40,
                                visible=self.view.has_text_inputs or not self.view.has_images, elem_id="audit-input")
        self.answer = gr.Textbox(label="What the model answered", interactive=False, lines=2, max_lines=40,
                                 elem_id="audit-answer")
        self.verdict = gr.Radio(AUDIT_CHOICES, label="Is this answer a failure?",
                                info="Your verdict is compared with the judge's.", elem_id="audit-verdict")
        self.note = gr.Textbox(label="Note (optional)", lines=1, elem_id="audit-note")
        self.submit = gr.Button("Submit verdict", variant="primary", elem_id="audit-submit")
        self.status = gr.Markdown(elem_id="audit-status")

    # events --------------------------------------------------------------------------------------

    def refreshed(self) -> list:
        """The components ``on_refresh`` fills: the agreement, per region, and the audit progress."""
        return [self.agreement, self.table] + ([self.progress] if self.pick is not None else [])

    def wire(self, demo: gr.Blocks, verdict_events: list) -> None:
        """Connect the tab's events; refresh the agreement after each of ``verdict_events`` (other tabs' verdicts)."""
        for event in verdict_events:
            event.then(self.on_refresh, None, self.refreshed(), **PRIVATE)
        if self.pick is None:
            demo.load(self.on_refresh, None, self.refreshed(), **PRIVATE)
            return
        demo.load(self.on_load, None, [self.pick, *self.refreshed()], **PRIVATE)
        shown = [self.card, self.input, self.answer, self.picture, self.verdict, self.note]
        self.pick.change(self.on_pick, self.pick, shown, **PRIVATE)
        self.prev.click(self.on_step_back, self.pick, self.pick, **PRIVATE)
        self.next.click(self.on_step, self.pick, self.pick, **PRIVATE)
        self.submit.click(self.on_submit, [self.pick, self.verdict, self.note],
                          [self.status, self.pick, *self.refreshed(), *self.ui.shared_outputs()], **PRIVATE)

    # handlers ------------------------------------------------------------------------------------

    def on_refresh(self, profile: gr.OAuthProfile | None) -> list:
        """The agreement figures, overall and per region, and the visitor's audit progress as they stand now."""
        check = self.judging.check(self.app.reviews.resolved())
        out = [self.judging.agreement_markdown(check), self.judging.region_lines(check)]
        if self.pick is not None:
            user = self.app.user_of(profile)
            out.append(self.judging.progress(user, self.app.reviews.items(user)))
        return out

    def _unchecked(self, user: str | None, after: str | None = None) -> str | None:
        """The first picked answer after ``after`` (wrapping) that ``user`` has not checked, or None."""
        ids, done = self.view.audit_ids, self.app.reviews.items(user)
        start = ids.index(after) + 1 if after in ids else 0
        return next((t for t in [*ids[start:], *ids[:start]] if t not in done and t != after), None)

    def on_load(self, profile: gr.OAuthProfile | None) -> list:
        """A visitor arrives: the first answer they have not checked, and the figures."""
        user = self.app.user_of(profile)
        first = self._unchecked(user) or self.view.audit_ids[0]
        return [gr.Dropdown(choices=self.judging.audit_choices(), value=first), *self.on_refresh(profile)]

    def on_pick(self, target: str | None, profile: gr.OAuthProfile | None) -> list:
        """Show one picked answer, its form set to the visitor's standing verdict on it (if any); the status line
        stays (a verdict moves on to the next answer and says so there)."""
        mine = self.app.reviews.my_verdict(self.app.user_of(profile), target) if target else None
        text, answer = self.judging.audit_texts(target)
        return [self.judging.audit_card(target, self.app.reviews.votes().get(target or "")), text, answer,
                self.judging.audit_picture(target), mine.verdict if mine else None, mine.note if mine else ""]

    def _step(self, target: str | None, delta: int) -> dict:
        ids = self.view.audit_ids
        index = ids.index(target) + delta if target in ids else 0
        return gr.Dropdown(value=ids[index % len(ids)])

    def on_step(self, target: str | None) -> dict:
        """The next picked answer."""
        return self._step(target, +1)

    def on_step_back(self, target: str | None) -> dict:
        """The previous picked answer."""
        return self._step(target, -1)

    def on_submit(self, target: str | None, verdict: str | None, note: str | None,
                  profile: gr.OAuthProfile | None) -> list:
        """Store the verdict on the picked answer and move on to the next one the reviewer has not checked."""
        user = self.app.user_of(profile)
        if not target:
            return ["**Not stored:** pick an answer first.", gr.Dropdown(), *self.on_refresh(profile),
                    *self.ui.shared(user)]
        try:
            record = self.app.record_verdict(target, verdict or "", "", note or "", profile)
        except InvalidFeedback as err:
            message = str(err)
            if message.startswith("choose a verdict first"):
                message = "Say whether the answer is a failure first: pick one of the three."
            return [f"**Not stored:** {plain(message)}", gr.Dropdown(), *self.on_refresh(profile),
                    *self.ui.shared(user)]
        following = self._unchecked(record.user, target)
        number = self.view.audit_ids.index(target) + 1
        status = f"Stored **{record.verdict.replace('_', ' ')}** on answer {number} (as **{plain(record.user)}**)"
        status += f" — next: answer {self.view.audit_ids.index(following) + 1}." if following else \
            ". **You have checked every picked answer: thank you!**"  # fmt: skip
        return [status, gr.Dropdown(value=following) if following else gr.Dropdown(), *self.on_refresh(profile),
                *self.ui.shared(record.user)]
