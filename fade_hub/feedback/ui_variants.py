"""The "Mitigated variants" tab: each adapter's figures in words and in a before/after table with 95 % intervals,
its picture, and per target the evaluation examples with the base model's and the mitigated model's answers,
fixed first, then regressed, then unchanged. No command line in a reviewer's view: the operator's hint goes to the
log."""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from .variants import (
    EXAMPLE_COLUMNS,
    TABLE_COLUMNS,
    Variant,
    before_after_table,
    example_images,
    examples_table,
    headline,
    shift_text,
    target_choices,
    title,
)
from .pictures import open_image
from .view import TABLE, column_widths
from .words import plain

logger = logging.getLogger(__name__)

PRIVATE = {"api_visibility": "private"}
NONE_YET = ("No mitigated variant of this run yet. Once reviewers have marked regions *fix*, the run's operator can "
            "train an adapter against them; it shows up here with what it changed.")
OPERATOR_HINT = ("no mitigated variant found for run %s: train one with `fade-hub mitigate RUN --feedback FEEDBACK "
                 "--push-to-hub USER/MODEL-faded` (its model card links it to the run), or pass it with --adapters")
PLOTS = ("change_map", "regions", "targets", "modes", "landscape")  # the first the variant has is shown


def variants_tab(app: Any) -> None:
    """Lay out the tab inside the current ``gr.Tab`` and wire its events."""
    variants = {variant.name: variant for variant in app.variants}
    problems = "".join(f"\n\n⚠ {plain(problem)}" for problem in app.variant_problems)
    if not variants:
        logger.info(OPERATOR_HINT, app.view.run_id)
        gr.Markdown(NONE_YET + problems, elem_id="variants-none")
        return
    first = next(iter(variants.values()))
    pick = gr.Dropdown(choices=[(title(variant), name) for name, variant in variants.items()], value=first.name,
                       label="Mitigated variant", elem_id="variant-select")
    if problems:
        gr.Markdown(problems, elem_id="variant-problems")
    with gr.Row():
        with gr.Column(scale=3, min_width=320):
            summary = gr.Markdown(headline(first), elem_id="variant-headline")
            table = gr.Dataframe(value=before_after_table(first), **TABLE,
                                 label="Failure rate before and after, with 95% intervals", elem_id="variant-table",
                                 column_widths=column_widths(TABLE_COLUMNS))
            shift = gr.Markdown(plain(shift_text(first)), elem_id="variant-shift")
        with gr.Column(scale=2, min_width=320):
            picture = gr.Image(value=_plot(first), type="pil", interactive=False, show_label=False,
                               elem_id="variant-plot", elem_classes="fade-image", buttons=["fullscreen"])
    choices = target_choices(first)
    target = gr.Dropdown(choices=choices, value=choices[0][1] if choices else None,
                         label="Examples of", elem_id="variant-target")
    has_images = any("image" in variant.examples.columns for variant in variants.values())
    gallery = None
    if has_images:
        gr.Markdown("**Evaluation inputs** (for generated images: base | mitigated), fixed first, then regressed, "
                    "then unchanged.", elem_id="variant-gallery-intro")
        gallery = gr.Gallery(value=example_images(first, target.value), label="Evaluation inputs", show_label=False,
                             columns=3, object_fit="contain", format="png", elem_id="variant-gallery",
                             elem_classes="fade-gallery", allow_preview=False, interactive=False)
    shown = examples_table(first, target.value)
    examples = gr.Dataframe(value=shown, **TABLE,
                            column_widths=column_widths(list(shown.columns) or EXAMPLE_COLUMNS),
                            label="What each model said, fixed first", elem_id="variant-examples")

    def on_variant(name: str) -> list:
        variant = variants[name]
        options = target_choices(variant)
        return [headline(variant), before_after_table(variant), plain(shift_text(variant)), _plot(variant),
                gr.Dropdown(choices=options, value=options[0][1] if options else None)]

    def on_target(name: str, key: str | None) -> list:
        variant = variants[name]
        shown = [examples_table(variant, key)]
        return shown + ([example_images(variant, key)] if gallery is not None else [])

    pick.change(on_variant, pick, [summary, table, shift, picture, target], **PRIVATE)
    target.change(on_target, [pick, target], [examples] + ([gallery] if gallery is not None else []), **PRIVATE)


def _plot(variant: Variant) -> Any:
    """The variant's before/after picture as a PIL image (the per-cell change map when it has one), or None."""
    path = next((variant.plots[key] for key in PLOTS if key in variant.plots), None)
    return open_image(path) if path else None
