"""The "Mitigated variants" tab: each adapter's before/after table and picture, and per targeted mode the
evaluation examples with the base model's and the mitigated model's outputs."""

from __future__ import annotations

from typing import Any

import gradio as gr

from .variants import (
    TABLE_COLUMNS,
    Variant,
    before_after_table,
    example_images,
    examples_table,
    headline,
    mode_choices,
)
from .view import column_widths, open_image
from .words import plain

PRIVATE = {"api_visibility": "private"}
NONE_YET = (
    "No mitigated variant of this run has been found yet. After reviewers marked modes as *fix*, "
    "`fade-hub mitigate RUN --feedback FEEDBACK --push-to-hub USER/MODEL-faded` trains a LoRA adapter against them; "
    "its model card links it to this run, and it shows up here (or pass it with `--adapters REPO`)."
)


def variants_tab(app: Any) -> None:
    """Lay out the tab inside the current ``gr.Tab`` and wire its events."""
    variants = {variant.name: variant for variant in app.variants}
    problems = "".join(f"\n\n⚠ {plain(problem)}" for problem in app.variant_problems)
    if not variants:
        gr.Markdown(NONE_YET + problems, elem_id="variants-none")
        return
    first = next(iter(variants.values()))
    pick = gr.Dropdown(choices=list(variants), value=first.name, label="Mitigated variant", elem_id="variant-select")
    if problems:
        gr.Markdown(problems, elem_id="variant-problems")
    with gr.Row():
        with gr.Column(scale=3, min_width=300):
            summary = gr.Markdown(headline(first), elem_id="variant-headline")
            table = gr.Dataframe(value=before_after_table(first), datatype="str", interactive=False, wrap=True,
                                 label="Failures before and after, with 95% intervals (points = change in failure "
                                       "rate)", elem_id="variant-table", elem_classes="fade-table",
                                 column_widths=column_widths(TABLE_COLUMNS))
        with gr.Column(scale=2, min_width=300):
            gr.Markdown("**Before and after**")
            picture = gr.Image(value=_plot(first), type="pil", interactive=False, show_label=False,
                               elem_id="variant-plot", elem_classes="fade-image", buttons=[])
    choices = mode_choices(first)
    mode = gr.Dropdown(choices=choices, value=choices[0][1] if choices else None,
                       label="Targeted mode: its evaluation examples", elem_id="variant-mode")
    has_images = any("image" in variant.examples.columns for variant in variants.values())
    gallery = None
    if has_images:
        gr.Markdown("**The evaluation inputs** (for generated images: base | mitigated), with what each model said.")
        gallery = gr.Gallery(value=example_images(first, mode.value), label="Evaluation inputs", show_label=False,
                             columns=4, object_fit="contain", format="png",
                             elem_id="variant-gallery", elem_classes="fade-gallery", allow_preview=False,
                             interactive=False)
    shown = examples_table(first, mode.value)
    examples = gr.Dataframe(value=shown, datatype="str", interactive=False, wrap=True,
                            column_widths=column_widths(list(shown.columns)),
                            max_height=420, label="Outputs before (base) and after (mitigated)",
                            elem_id="variant-examples", elem_classes="fade-table")

    def on_variant(name: str) -> list:
        variant = variants[name]
        options = mode_choices(variant)
        return [headline(variant), before_after_table(variant), _plot(variant),
                gr.Dropdown(choices=options, value=options[0][1] if options else None)]

    def on_mode(name: str, action_id: str | None) -> list:
        variant = variants[name]
        shown = [examples_table(variant, action_id)]
        return shown + ([example_images(variant, action_id)] if gallery is not None else [])

    pick.change(on_variant, pick, [summary, table, picture, mode], **PRIVATE)
    mode.change(on_mode, [pick, mode], [examples] + ([gallery] if gallery is not None else []), **PRIVATE)


def _plot(variant: Variant) -> Any:
    """The variant's before/after picture of the targeted modes (else of the landscape) as a PIL image, or None."""
    path = variant.plots.get("modes") or variant.plots.get("landscape")
    return open_image(path) if path else None
