"""The app's theme, stylesheet and script (handed to ``gr.Blocks.launch``).

Layout of the review tab: on a laptop the evidence on the left and the action bar on the right, sticky, so that it
stays in sight while the evidence scrolls; on a phone one column (the region's summary, then the examples) with the
action bar fixed at the bottom of the screen. No text below 11 px; tables wrap between words, never inside one.
"""

from __future__ import annotations

from typing import Any

PHONE = 900  # px: below this width the review tab is one column with the action bar at the bottom

CSS = f"""
.gradio-container {{overflow: clip !important;}}  /* hidden would stop the action bar from sticking */
/* narrower margins on a phone (rules inside @media get scoped below the page's padded box, so: a clamp) */
.gradio-container .app.fillable {{padding-left: clamp(10px, calc((100vw - 700px) * 100), 32px) !important;
  padding-right: clamp(10px, calc((100vw - 700px) * 100), 32px) !important;}}
#review-grid {{display: grid !important; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr);
  grid-template-rows: auto 1fr; grid-template-areas: "summary action" "evidence action"; gap: 12px 20px;
  align-items: start;}}
#review-summary {{grid-area: summary;}}
#review-evidence {{grid-area: evidence;}}
/* above gradio's block titles (z-index 40) and icon rows (50), which a phone's fixed bar passes over */
#action-bar {{grid-area: action; position: sticky; top: 8px; align-self: start; z-index: 60; gap: 8px;
  background: var(--background-fill-primary); border: 2px solid var(--color-accent); border-radius: 10px;
  padding: 10px 12px;}}
#action-bar > * {{margin: 0;}}
#target-line p, #status p, #your-verdict p {{margin: 0;}}
#status:empty, #your-verdict:empty {{display: none;}}
#status p {{font-weight: 600;}}
@media (max-width: {PHONE}px) {{
  #review-grid {{grid-template-columns: minmax(0, 1fr); grid-template-rows: none;
    grid-template-areas: "summary" "evidence";}}
  #action-bar {{position: fixed; top: auto; bottom: 0; left: 0; right: 0; border-width: 2px 0 0 0;
    border-radius: 0; padding: 6px 10px 8px; gap: 4px; box-shadow: 0 -3px 10px rgba(0, 0, 0, 0.18);
    max-height: 70vh; overflow-y: auto;}}
  #verdict .info-text, #verdict [data-testid="block-info"] {{display: none;}}
  #verdict {{padding: 4px 0 !important;}}
  #verdict .wrap {{gap: 6px; flex-wrap: nowrap;}}
  #verdict label {{padding: 4px 8px !important;}}
  #steps, #audit-steps {{flex-wrap: wrap;}}
  #steps > .form, #audit-steps > .form {{flex: 1 1 100% !important;}}
  .fade-gallery .grid-container {{grid-template-columns: minmax(0, 1fr) !important;}}
}}
#steps, #audit-steps {{align-items: end; gap: 8px;}}
#filter .wrap {{gap: 4px 10px;}}
#region-card h3 {{margin: 0 0 0.2em 0;}}
#region-card p {{margin: 0.2em 0 0.3em 0;}}
#region-card li {{margin: 0.15em 0;}}
#progress p {{font-weight: 600; margin: 0;}}
#whoami p, #submitting-as-mine p, #headline p {{margin: 0;}}
.fade-warning {{border-left: 4px solid #d97706; padding-left: 8px;}}
.fade-mono textarea {{font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.9em;}}
.fade-gallery .thumbnail-item {{aspect-ratio: auto !important; height: auto !important; display: flex;
  flex-direction: column; overflow: visible;}}
.fade-gallery .thumbnail-lg > img {{height: auto !important; max-height: 420px; object-fit: contain !important;
  flex: none;}}
.fade-gallery .caption-label {{position: static !important; max-width: 100% !important; white-space: normal !important;
  border: none !important; border-top: 1px solid var(--border-color-primary) !important; border-radius: 0 !important;
  overflow-wrap: break-word; opacity: 1 !important; font-size: 13px !important;}}
.fade-gallery .grid-container {{grid-template-rows: none !important; grid-auto-rows: auto !important;
  align-items: start;}}
.fade-gallery .grid-wrap, .fade-gallery .grid-wrap.fixed-height {{max-height: none !important; min-height: 0;
  overflow: visible !important; height: auto !important;}}
.fade-table table {{table-layout: fixed; width: 100%;}}
.fade-table td, .fade-table th, .fade-table td span, .fade-table th span {{overflow-wrap: break-word;
  word-break: normal; hyphens: none;}}
@media (max-width: 700px) {{
  .fade-table td, .fade-table th, .fade-table td span, .fade-table th span {{font-size: 12px !important;}}
  .fade-table .cell-wrap {{padding: 2px 4px !important;}}
}}
.fade-image img {{object-fit: contain; max-width: 100%; height: auto;}}
input, textarea, select {{text-overflow: ellipsis;}}
"""

# 1/2/3 pick a verdict, Enter submits (Ctrl/Cmd+Enter also from a text box), n/p move to the next/previous region.
# Keys typed into a text field stay there; shortcuts act only while the review form is on screen. The "How to
# review" panel is open on a first visit only (remembered in the browser). A phone's page gets room at its bottom
# for the fixed action bar.
SCRIPT = """
() => {
  const visible = (el) => el && el.offsetParent !== null;
  const press = (selector) => {
    const el = document.querySelector(selector);
    if (visible(el) && !el.disabled) el.click();
  };
  document.addEventListener("keydown", (event) => {
    const verdict = document.querySelector("#verdict");
    if (!visible(verdict) || event.altKey || event.isComposing) return;
    const target = event.target;
    const tag = target && target.tagName;
    const typing = target && (target.isContentEditable || tag === "TEXTAREA" || tag === "SELECT" ||
      (tag === "INPUT" && !["radio", "checkbox", "button", "submit"].includes(target.type)));
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault(); press("#submit"); return;
    }
    if (typing || event.ctrlKey || event.metaKey) return;
    if (["1", "2", "3"].includes(event.key)) {
      const options = verdict.querySelectorAll("input[type=radio]");
      const option = options[Number(event.key) - 1];
      if (option) { event.preventDefault(); option.click(); }
    } else if (event.key === "Enter") {
      if (tag === "BUTTON" && target.id !== "submit") return;
      event.preventDefault(); press("#submit");
    } else if (event.key === "n") {
      press("#next-region");
    } else if (event.key === "p") {
      press("#prev-region");
    }
  });
  const when = (selector, then, tries = 150) => {
    const el = document.querySelector(selector);
    if (el) then(el); else if (tries > 0) setTimeout(() => when(selector, then, tries - 1), 100);
  };
  let seen = null;
  try { seen = localStorage.getItem("fade-hub-guide-seen"); localStorage.setItem("fade-hub-guide-seen", "1"); }
  catch (err) { seen = null; }
  if (seen) when("#guide .label-wrap", (toggle) => { if (toggle.classList.contains("open")) toggle.click(); });
  when("#action-bar", (bar) => {
    const room = () => {
      const fixed = getComputedStyle(bar).position === "fixed" && visible(bar);
      document.body.style.paddingBottom = fixed ? `${bar.offsetHeight + 12}px` : "";
    };
    new ResizeObserver(room).observe(bar);
    window.addEventListener("resize", room);
    room();
  });
}
"""


def theme() -> Any:
    """The app's theme, with the system's fonts (no font is fetched from another host)."""
    import gradio as gr

    system = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica", "Arial", "sans-serif"]
    mono = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
    return gr.themes.Soft(font=system, font_mono=mono)
