"""The app's stylesheet and keyboard shortcuts (plain strings handed to ``gr.Blocks.launch``)."""

from __future__ import annotations

# Galleries: whole pictures (never cropped) with their captions below; one column on a phone. Tables wrap
# their cells instead of growing wider than their column.
CSS = """
.fade-mono textarea {font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.9em;}
.fade-gallery .thumbnail-item {aspect-ratio: auto !important; height: auto !important; display: flex;
  flex-direction: column; overflow: visible;}
.fade-gallery .thumbnail-lg > img {height: auto !important; max-height: 420px; object-fit: contain !important;
  flex: none;}
.fade-gallery .caption-label {position: static !important; max-width: 100% !important; white-space: normal !important;
  border: none !important; border-top: 1px solid var(--border-color-primary) !important; border-radius: 0 !important;
  overflow-wrap: anywhere; opacity: 1 !important;}
.fade-gallery .grid-container {grid-template-rows: none !important; grid-auto-rows: auto !important;
  align-items: start;}
.fade-gallery .grid-wrap.fixed-height {max-height: 75vh; min-height: 0;}
@media (max-width: 700px) {
  .fade-gallery .grid-container {grid-template-columns: minmax(0, 1fr) !important;}
  .fade-table td, .fade-table th, .fade-table td span, .fade-table th span {font-size: 12px !important;}
  .fade-table .cell-wrap {padding: 2px 4px !important;}
}
.fade-table table {table-layout: fixed; width: 100%;}
.fade-table td, .fade-table th {overflow-wrap: anywhere;}
.fade-image img {object-fit: contain; max-width: 100%; height: auto;}
#progress p {font-weight: 600; margin: 0;}
#mode-card h3 {margin-bottom: 0.2em;}
#mode-card p {margin: 0.2em 0 0.4em 0;}
#mode-card li {margin: 0.15em 0;}
#submitting-as p, #whoami p {margin: 0;}
.fade-warning {border-left: 4px solid #d97706; padding-left: 8px;}
"""

# 1/2/3 pick a verdict, Enter submits (Ctrl/Cmd+Enter also from a text box), n/p move to the next/previous mode.
# Keys typed into a text field stay there; shortcuts act only while the review form is on screen.
SHORTCUTS = """
() => {
  const visible = (el) => el && el.offsetParent !== null;
  const press = (selector) => { const el = document.querySelector(selector); if (visible(el)) el.click(); };
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
      event.preventDefault(); press("#submit");
    } else if (event.key === "n") {
      press("#next-mode");
    } else if (event.key === "p") {
      press("#prev-mode");
    }
  });
}
"""
