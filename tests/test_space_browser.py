"""The feedback app in a real browser (Debian's chromium + chromium-driver through selenium), at a laptop's 1280x900
and a phone's 390x844.

Skipped where chromium or chromedriver is missing (`.ci/run` installs them). Every test saves screenshots of every
tab at both sizes in one folder it prints (``FADE_SCREENSHOTS=DIR`` collects them there instead), to be looked at.
The layout checks measure what people see: no content wider or taller than its box (tables, dropdowns and text
boxes included), no word, number, date or ``factor=value`` broken over two lines, no text under 11 px, the action bar
inside the screen while the evidence scrolls, the status line in sight after Enter.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from conftest import unique_repo
from space_runs import served_app, XSS
from variants import publish_variant, write_variant

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER),
        reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)",
    ),
]
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")
WAIT = 40
SIZES = ((1280, 900), (390, 844))  # a laptop and a phone
TABS = ("Review", "My verdicts", "All regions", "Check the judge", "Mitigated variants")
ENTER = "\ue007"

LAYOUT = """
const bad = [];
const add = (text) => { if (!bad.includes(text)) bad.push(text); };
const shown = (el) => {
  if (el === document.documentElement || el === document.body) return true;
  if (!el.getClientRects().length) return false;
  const cs = getComputedStyle(el);
  return !['hidden', 'collapse'].includes(cs.visibility) && cs.display !== 'none' && Number(cs.opacity) > 0;
};
const name = (el) => {
  const owner = el.closest('[id]');
  const classes = typeof el.className === 'string' ? el.className.trim().split(/\\s+/) : [];
  return `${owner ? '#' + owner.id : ''} ${el.tagName.toLowerCase()}` +
    classes.filter(c => c && !c.startsWith('svelte')).map(c => '.' + c).join('');
};
const root = document.querySelector('.gradio-container') || document.body;
for (const el of root.querySelectorAll('*')) {
  if (!shown(el) || el.closest('footer, .visually-hidden, .sr-only')) continue;
  const cs = getComputedStyle(el);
  const tag = el.tagName;
  if ((tag === 'INPUT' && !['radio', 'checkbox', 'range', 'file'].includes(el.type)) || tag === 'TEXTAREA') {
    if (el.scrollWidth > el.clientWidth + 1) add(`text cut in ${name(el)}: ${el.scrollWidth} > ${el.clientWidth}`);
    if (tag === 'TEXTAREA' && el.scrollHeight > el.clientHeight + 1)
      add(`text cut in ${name(el)} (height ${el.scrollHeight} > ${el.clientHeight})`);
    continue;
  }
  if (['svg', 'path', 'IMG', 'CANVAS'].includes(tag)) continue;
  if ((cs.overflowX !== 'visible' || tag === 'TD' || tag === 'TH') && el.scrollWidth > el.clientWidth + 1)
    add(`${name(el)} overflows sideways: ${el.scrollWidth} > ${el.clientWidth} (${cs.overflowX})`);
  if (cs.overflowY !== 'visible' && el.clientHeight > 0 && el.scrollHeight > el.clientHeight + 1)
    add(`${name(el)} clips or scrolls its content: ${el.scrollHeight} > ${el.clientHeight} (${cs.overflowY})`);
}
const bar = document.querySelector('#action-bar');
if (bar && shown(bar)) {  // nothing may draw over the action bar (a phone's bar is fixed over the page)
  const r = bar.getBoundingClientRect();
  for (let fx = 0.05; fx < 1; fx += 0.1) {
    for (let fy = 0.1; fy < 1; fy += 0.2) {
      const x = r.left + fx * r.width, y = r.top + fy * r.height;
      if (x < 0 || y < 0 || x >= window.innerWidth || y >= window.innerHeight) continue;
      const hit = document.elementFromPoint(x, y);
      if (hit && !bar.contains(hit)) add(`${name(hit)} draws over the action bar`);
    }
  }
}
const page = document.documentElement;
if (page.scrollWidth > page.clientWidth) add(`page wider than the screen: ${page.scrollWidth} > ${page.clientWidth}`);
const WORD = 15;
const token = /^[\\[(]?(?:[-+\u2212\u00b1]?\\d[\\d.,:]*%?|\\d{4}-\\d{2}-\\d{2}|[\\w.-]+=\\S+)[\\])]?[,.;:]?$/;
const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  const parent = node.parentElement;
  if (!parent || !node.textContent.trim() || !shown(parent) || parent.closest('footer, .visually-hidden, .sr-only')) continue;
  const size = parseFloat(getComputedStyle(parent).fontSize);
  if (size < 11) add(`text under 11 px (${size}px) in ${name(parent)}: "${node.textContent.trim().slice(0, 30)}"`);
  const broken = (start, text) => {
    const range = document.createRange();
    range.setStart(node, start);
    range.setEnd(node, start + text.length);
    const tops = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
    if (tops.size > 1) add(`"${text}" broken over ${tops.size} lines in ${name(parent)}`);
  };
  const words = /\\S+/g;
  for (let m = words.exec(node.textContent); m; m = words.exec(node.textContent)) {
    if (token.test(m[0])) { broken(m.index, m[0]); continue; }  // a number, date or factor=value: never broken
    const pieces = /[^-]+-?/g;  // a word may break after its hyphens (one-sided), nowhere else
    for (let p = pieces.exec(m[0]); p; p = pieces.exec(m[0])) {
      if (p[0].length <= WORD) broken(m.index + p.index, p[0]);  // a long token (a URL) may break anywhere
    }
  }
}
return bad;
"""
IN_VIEW = """
const el = document.querySelector(arguments[0]);
if (!el || !el.getClientRects().length) return false;
const r = el.getBoundingClientRect();
return r.top >= -1 && r.bottom <= window.innerHeight + 1 && r.height > 0;
"""


@pytest.fixture
def browser(tmp_path):
    """A headless chromium with a fresh profile (a first visit)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def shots(tmp_path, request):
    """The folder this test's screenshots go to (printed, so that they can be looked at)."""
    folder = Path(os.environ.get("FADE_SCREENSHOTS") or tmp_path / "screenshots") / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {folder}")
    return folder


def _size(driver, width: int, height: int) -> None:
    """Emulate a screen of ``width`` x ``height`` CSS pixels (a phone below 600)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})


def _css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def _text(driver, selector: str) -> str:
    found = driver.find_elements("css selector", selector)
    return found[0].text if found else ""


def _wait(driver, condition, message: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT, poll_frequency=0.2).until(lambda d: condition(d), message)


def _keys(driver, *keys: str) -> None:
    """Type keys into the page (no element clicked or focused)."""
    from selenium.webdriver.common.action_chains import ActionChains

    chain = ActionChains(driver)
    for key in keys:
        chain.send_keys(key)
    chain.perform()


def _tab(driver, name: str) -> None:
    """Open a tab by its title (also from the overflow menu a phone shows)."""
    driver.execute_script(
        "const b = [...document.querySelectorAll('button')].filter(b => b.textContent.trim() === arguments[0]);"
        "b[b.length - 1].click();", name)


def _scroll_to(driver, selector: str) -> None:
    driver.execute_script("document.querySelector(arguments[0]).scrollIntoView({block: 'start'})", selector)
    time.sleep(0.3)


def _in_view(driver, selector: str) -> bool:
    return bool(driver.execute_script(IN_VIEW, selector))


def _rows(driver, table: str) -> list:
    return driver.find_elements("css selector", f"#{table} .virtual-row[role=row]")


def _has(driver, selector: str) -> bool:
    return bool(driver.find_elements("css selector", selector))


def _open_review(driver, url: str, total: int) -> None:
    driver.get(url)
    _wait(driver, lambda d: _text(d, "#region-card").startswith("Region ") and f" of {total}\n" in _text(d, "#region-card"),
          "no region showed")
    _wait(driver, lambda d: _has(d, "#region-picture img") or _has(d, "#examples-table"), "no region picture")


def _layout_problems(browser, url: str, folder: Path, prefix: str, total: int) -> dict:
    """Every tab at both sizes: what the layout checks find (empty when nothing), screenshots on the way. In the
    review tab the action bar must stay inside the screen at the top of the page and with the examples scrolled to."""
    problems: dict = {}

    def check(where: tuple) -> None:
        found = browser.execute_script(LAYOUT)
        if found:
            problems[where] = found

    for width, height in SIZES:
        _size(browser, width, height)
        _open_review(browser, url, total)
        for tab in TABS:
            _tab(browser, tab)
            size = f"{width}x{height}"
            if tab == "Review":
                browser.execute_script("window.scrollTo(0, 0)")
                time.sleep(0.3)
                browser.save_screenshot(str(folder / f"{prefix}review-{size}.png"))
                check((size, tab, "top"))
                if not _in_view(browser, "#action-bar"):
                    problems[(size, tab, "top", "action bar")] = "out of sight"
                evidence = "#examples-gallery" if _has(browser, "#examples-gallery") else "#examples-table"
                _scroll_to(browser, evidence)
                browser.save_screenshot(str(folder / f"{prefix}review-examples-{size}.png"))
                check((size, tab, "examples"))
                if not _in_view(browser, "#submit"):
                    problems[(size, tab, "examples", "action bar")] = "out of sight"
                for accordion in ("#cells", "#landscape", "#region-details"):
                    browser.execute_script(f"document.querySelector('{accordion} .label-wrap').click()")
                _wait(browser, lambda d: _has(d, "#heatmap img") and _rows(d, "cells-table"), "the drill-downs stayed empty")
                _scroll_to(browser, "#cells")
                browser.save_screenshot(str(folder / f"{prefix}review-cells-{size}.png"))
                check((size, tab, "drill-downs open"))
            else:
                if tab == "All regions":
                    _wait(browser, lambda d: len(_rows(d, "region-table")) == total, "the region table did not fill")
                if tab == "Mitigated variants" and _has(browser, "#variant-select"):
                    _wait(browser, lambda d: _rows(d, "variant-examples"), "the variant's examples did not show")
                    _wait(browser, lambda d: _has(d, "#variant-plot img"), "no before/after plot")
                time.sleep(0.5)
                browser.execute_script("window.scrollTo(0, 0)")
                if tab == "Check the judge":
                    _wait(browser, lambda d: _text(d, "#agreement"), "the judge's agreement did not show")
                browser.save_screenshot(str(folder / f"{prefix}{tab.split()[-1].lower()}-{size}.png"))
                check((size, tab))
    return problems


def _variant(run_dir: Path, repo: str, tmp_path: Path) -> str:
    """A mitigated variant of the run, in the region format, published with card metadata naming the run."""
    return publish_variant(write_variant(tmp_path / "variant", run_dir, repo, regions=True), unique_repo("faded"))


def _records(app) -> list:
    app.writer.flush()
    return [(r.item, r.item_type, r.verdict) for r in app.writer.read().records]


def test_three_regions_reviewed_by_keyboard_at_both_sizes(browser, planted_image_run, tmp_path, shots):
    """1/2/3 + Enter on three regions, the status line in sight after each Enter, the view back at the next region's
    top; then one verdict changed and one withdrawn (asked once, undone, withdrawn again): resolved() agrees."""
    from fade_hub import feedback
    from fade_hub.feedback.app import AppConfig

    run_dir, repo = planted_image_run
    for width, height in SIZES:
        folder = tmp_path / f"fb-{width}"
        config = AppConfig(failures=repo, feedback_dir=str(folder), find_adapters=False, reviewer="ada")
        with served_app(config) as (app, url):
            regions, total = app.view.region_ids, len(app.view.region_ids)
            assert total == 3
            _size(browser, width, height)
            _open_review(browser, url, total)
            assert _text(browser, "#region-card").startswith(f"Region 1 of {total}")
            assert "open" in _css(browser, "#guide .label-wrap").get_attribute("class")  # open on a first visit
            browser.save_screenshot(str(shots / f"first-visit-{width}x{height}.png"))
            _open_review(browser, url, total)
            _wait(browser, lambda d: "open" not in _css(d, "#guide .label-wrap").get_attribute("class"),
                  "the guide is open on a second visit too")
            assert _text(browser, "#progress") == f"0 of {total} regions reviewed by you"
            assert not _css(browser, "#submit").get_attribute("disabled")
            _keys(browser, "3")  # the shortcuts act on the form: pick a verdict, then change it before submitting
            _wait(browser, lambda d: _css(d, '#verdict input[value="not_a_failure"]').is_selected(), "key 3 did nothing")
            for done, key in enumerate(("1", "2", "1"), start=1):
                if done == 2:  # the evidence scrolled: the action bar stays in sight
                    _scroll_to(browser, "#examples-gallery")
                    assert _in_view(browser, "#submit") and _in_view(browser, "#target-line")
                    browser.save_screenshot(str(shots / f"keyboard-scrolled-{width}x{height}.png"))
                _keys(browser, key, ENTER)
                _wait(browser, lambda d: _text(d, "#progress").startswith(f"{done} of {total} regions reviewed"),
                      f"the progress line did not count verdict {done}")
                status = _text(browser, "#status")
                assert status.startswith(f"Stored {('fix', 'acceptable', 'fix')[done - 1]} on region {done}"), status
                assert _in_view(browser, "#status"), f"the status line is out of sight after verdict {done}"
                if done < total:
                    assert f"next: region {done + 1}" in status
                    _wait(browser, lambda d: _text(d, "#region-card").startswith(f"Region {done + 1} of {total}"),
                          f"no advance to the next region after verdict {done}")
                    _wait(browser, lambda d: _in_view(d, "#region-card h3"), "the next region's top is not in view")
                _wait(browser, lambda d: not any(e.is_selected() for e in d.find_elements("css selector", "#verdict input")),
                      "the verdict was not reset")
                browser.save_screenshot(str(shots / f"keyboard-{done}-{width}x{height}.png"))
            assert "reviewed every region" in _text(browser, "#status")
            assert _records(app) == [(regions[0], "region", "fix"), (regions[1], "region", "acceptable"),
                                     (regions[2], "region", "fix")]

            _tab(browser, "My verdicts")  # change the verdict on region 2
            _wait(browser, lambda d: len(_rows(d, "my-verdicts")) == 3, "my verdicts did not list three")
            row = next(i for i, r in enumerate(_rows(browser, "my-verdicts")) if r.text.startswith("region 2 "))
            _css(browser, f'#my-verdicts [data-testid="cell-{row}-0"]').click()
            _wait(browser, lambda d: _css(d, "#edit-target input").get_attribute("value").startswith("region 2 "),
                  "picking a row did not choose that verdict")
            _css(browser, '#edit-verdict input[value="not_a_failure"]').click()
            _css(browser, "#change-verdict").click()
            _wait(browser, lambda d: _text(d, "#edit-status").startswith("Changed: not a failure"), "no change confirmed")
            row = next(i for i, r in enumerate(_rows(browser, "my-verdicts")) if r.text.startswith("region 3 "))
            _css(browser, f'#my-verdicts [data-testid="cell-{row}-0"]').click()  # withdraw region 3: asked once
            _wait(browser, lambda d: _css(d, "#edit-target input").get_attribute("value").startswith("region 3 "),
                  "picking a row did not choose that verdict")
            _css(browser, "#withdraw-verdict").click()
            _wait(browser, lambda d: _text(d, "#edit-status").startswith("Withdraw your verdict fix on region 3"),
                  "no question before the withdrawal")
            assert len(_records(app)) == 4  # nothing stored by asking
            browser.save_screenshot(str(shots / f"withdraw-asked-{width}x{height}.png"))
            _css(browser, "#withdraw-yes").click()
            _wait(browser, lambda d: _text(d, "#edit-status").startswith("Withdrawn: your verdict on region 3"),
                  "no withdrawal confirmed")
            _css(browser, "#undo-withdraw").click()
            _wait(browser, lambda d: _text(d, "#edit-status").startswith("Restored: fix on region 3"), "no undo")
            assert {(r.item, r.verdict) for r in feedback.load(folder).resolved()} == {
                (regions[0], "fix"), (regions[1], "not_a_failure"), (regions[2], "fix")}
            _wait(browser, lambda d: len(_rows(d, "my-verdicts")) == 3, "the restored verdict is not listed")
            row = next(i for i, r in enumerate(_rows(browser, "my-verdicts")) if r.text.startswith("region 3 "))
            _css(browser, f'#my-verdicts [data-testid="cell-{row}-0"]').click()
            _wait(browser, lambda d: _css(d, "#edit-target input").get_attribute("value").startswith("region 3 "),
                  "picking a row did not choose that verdict")
            _css(browser, "#withdraw-verdict").click()
            _wait(browser, lambda d: _has(d, "#withdraw-yes") and _css(d, "#withdraw-yes").is_displayed(), "not asked")
            _css(browser, "#withdraw-yes").click()
            _wait(browser, lambda d: _text(d, "#edit-status").startswith("Withdrawn"), "no withdrawal confirmed")
            browser.save_screenshot(str(shots / f"withdrawn-{width}x{height}.png"))
            assert [verdict for _, _, verdict in _records(app)] == [
                "fix", "acceptable", "fix", "not_a_failure", "withdrawn", "fix", "withdrawn"]
        resolved = feedback.load(folder).resolved()
        assert {(r.item, r.item_type, r.verdict) for r in resolved} == {
            (regions[0], "region", "fix"), (regions[1], "region", "not_a_failure")}


@pytest.mark.parametrize("kind", ["image", "text"])
def test_layout_checks_pass_served_from_the_hub_and_from_a_folder(kind, browser, planted_image_run, planted_text_run,
                                                                 tmp_path, shots):
    """Both sizes, every tab, the run pushed (clean seeds visible) and the local folder."""
    run_dir, repo = planted_image_run if kind == "image" else planted_text_run
    adapters = [_variant(run_dir, repo, tmp_path)]
    problems = {}
    for source in (repo, str(run_dir)):
        where = "hub" if source == repo else "folder"
        config = dict(failures=source, feedback_dir=str(tmp_path / f"fb-{where}"), find_adapters=False,
                      reviewer="ada", adapters=adapters)
        from fade_hub.feedback.app import AppConfig

        with served_app(AppConfig(**config)) as (app, url):
            total = len(app.view.region_ids)
            view = app.view  # verdicts of every kind, so that "My verdicts" and the tables have rows to lay out
            region = view.region_ids[0]
            app.submit(region, "acceptable", "", "seen before: dark, tilted inputs are rare in production")
            app.submit(str(view.cells(region)[0]), "not_a_failure", "", "")
            app.submit(view.example_ids(region)[0], "fix", view.labels[0], "")
            if kind == "image":  # every example shows its clean seed beside the perturbed input
                _size(browser, *SIZES[0])
                _open_review(browser, url, total)
                _wait(browser, lambda d: _has(d, "#examples-gallery .thumbnail-item img"), "no examples")
                captions = [e.text for e in browser.find_elements("css selector", "#examples-gallery .caption-label")]
                assert captions and not any("clean seed not stored" in caption for caption in captions), captions
                loaded = ("return [...document.querySelectorAll('#examples-gallery img')].every(i => i.complete "
                          "&& i.naturalWidth > 0)")  # on a busy machine some are still loading: measure them loaded
                _wait(browser, lambda d: d.execute_script(loaded), "the example pictures did not load")
                sizes = browser.execute_script(
                    "return [...document.querySelectorAll('#examples-gallery img')].map(i => [i.naturalWidth, "
                    "i.naturalHeight])")
                assert all(w > 1.8 * h for w, h in sizes), sizes  # two pictures side by side
            found = _layout_problems(browser, url, shots, f"{kind}-{where}-", total)
            problems.update({(where, *key): value for key, value in found.items()})
    assert not problems, json.dumps({str(k): v for k, v in problems.items()}, indent=1)


def test_html_in_outputs_and_notes_is_shown_as_text(browser, hostile_run, tmp_path, shots):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    from fade_hub.feedback.app import AppConfig

    run_dir, repo = hostile_run
    variant = str(write_variant(tmp_path / "hostile-variant", run_dir, repo, hostile=True))
    config = AppConfig(failures=repo, feedback_dir=str(tmp_path / "fb"), adapters=[variant], find_adapters=False,
                       reviewer="ada")
    with served_app(config) as (app, url):
        _size(browser, *SIZES[0])
        browser.get(url)
        _wait(browser, lambda d: XSS in "\n".join(r.text for r in _rows(d, "examples-table")),
              "the hostile output never appeared as table text")
        assert "javascript:alert(3)" in "\n".join(r.text for r in _rows(browser, "examples-table"))
        row = next(i for i, r in enumerate(_rows(browser, "examples-table")) if XSS in r.text)
        browser.find_element(By.CSS_SELECTOR, f'#examples-table [data-testid="cell-{row}-0"]').click()
        _wait(browser, lambda d: "only, inside region" in _text(d, "#target-line"), "the example was not picked")
        browser.execute_script("document.querySelector('#extras .label-wrap').click()")
        _wait(browser, lambda d: _css(d, "#note textarea").is_displayed(), "the note box did not open")
        _css(browser, "#note textarea").send_keys(f"{XSS} [x](javascript:alert(4))")
        _css(browser, '#verdict input[value="fix"]').click()
        _css(browser, "#submit").click()
        _wait(browser, lambda d: _text(d, "#status").startswith("Stored fix on example"), "the verdict was not stored")
        browser.save_screenshot(str(shots / "injection-review.png"))
        _tab(browser, "My verdicts")
        _wait(browser, lambda d: XSS in "\n".join(r.text for r in _rows(d, "my-verdicts")), "the note was not listed")
        _tab(browser, "Mitigated variants")
        _wait(browser, lambda d: XSS in "\n".join(r.text for r in _rows(d, "variant-examples")),
              "the variant's hostile output was not shown as text")
        browser.execute_script("document.querySelector('#variant-examples').scrollIntoView()")
        browser.save_screenshot(str(shots / "injection-variants.png"))
        assert browser.find_elements(By.CSS_SELECTOR, 'img[src="x"]') == []
        assert browser.find_elements(By.XPATH, "//script[contains(., 'alert(2)')]") == []
        assert browser.find_elements(By.CSS_SELECTOR, 'a[href^="javascript:"]') == []
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text  # noqa: B018 - raises when no alert ran
        hosts = browser.execute_script("return [...new Set(performance.getEntriesByType('resource')"
                                       ".map(e => new URL(e.name).host))]")
        assert set(hosts) <= {url.split("/")[2]}, hosts  # the page asks no other host (fonts included)
    assert json.dumps(app.writer.read().records[0].note).count("onerror") == 1


def test_the_judge_checked_against_reviewers_at_both_sizes(browser, planted_text_run, tmp_path, shots):
    """The "Check the judge" tab with agreement figures and a judge-error region, the picked answers reviewed in the
    page (the figures follow each verdict), the region flagged in the review card and the region table; the layout
    checks at both sizes."""
    from fade_hub.feedback.app import AppConfig, FeedbackApp
    from fade_hub.agreement import audit_sample
    from fade_hub.store import RunStore

    import pandas as pd

    run_dir = tmp_path / "run"
    shutil.copytree(planted_text_run[0], run_dir)
    store = RunStore(run_dir)
    store.update_meta(judge_audit=audit_sample(pd.DataFrame(store.read_queries()), 6, seed=5))
    folder = tmp_path / "fb"
    problems = {}
    for user in ("bob", "cy"):  # two reviewers before: region 1 is no failure, say they; they check two answers
        other = FeedbackApp(AppConfig(failures=str(run_dir), feedback_dir=str(folder), find_adapters=False,
                                      reviewer=user))
        other.submit(other.view.region_ids[0], "not_a_failure")
        for target in other.view.audit_ids[1:3]:
            other.submit(target, "fix")
        other.close()
    config = AppConfig(failures=str(run_dir), feedback_dir=str(folder), find_adapters=False, reviewer="ada")
    with served_app(config) as (app, url):
        total, audit = len(app.view.region_ids), app.view.audit_ids
        for width, height in SIZES:
            size = f"{width}x{height}"
            _size(browser, width, height)
            _open_review(browser, url, total)
            _wait(browser, lambda d: "Judge error: reviewers say the judge is wrong here (2 of 2 verdicts: not a "
                                     "failure)" in _text(d, "#region-card"), "the review card did not flag region 1")
            _scroll_to(browser, "#region-card")
            browser.save_screenshot(str(shots / f"review-judge-error-{size}.png"))
            found = browser.execute_script(LAYOUT)
            if found:
                problems[(size, "review")] = found
            _tab(browser, "All regions")
            _wait(browser, lambda d: "judge is wrong here" in _rows(d, "region-table")[0].text, "the table did not flag it")
            browser.save_screenshot(str(shots / f"regions-judge-error-{size}.png"))
            found = browser.execute_script(LAYOUT)
            if found:
                problems[(size, "regions")] = found
            _tab(browser, "Check the judge")
            _wait(browser, lambda d: _text(d, "#agreement").startswith("The judge agrees with reviewers on "),
                  "no agreement figures")
            first = _text(browser, "#agreement").split(":")[0]
            shown = 1 if width == SIZES[0][0] else 2  # the first answer ada has not checked yet
            _wait(browser, lambda d: _text(d, "#audit-card").startswith(f"Answer {shown} of {len(audit)}"),
                  "no picked answer")
            browser.execute_script("window.scrollTo(0, 0)")
            browser.save_screenshot(str(shots / f"judge-{size}.png"))
            found = browser.execute_script(LAYOUT)
            if found:
                problems[(size, "judge")] = found
            _scroll_to(browser, "#audit-card")
            browser.save_screenshot(str(shots / f"judge-answer-{size}.png"))
            if width == SIZES[0][0]:  # a verdict in the page: stored, the next answer shown, the figures follow it
                _css(browser, '#audit-verdict input[value="not_a_failure"]').click()
                _css(browser, "#audit-submit").click()
                _wait(browser, lambda d: _text(d, "#audit-status").startswith("Stored not a failure on answer 1"),
                      "the verdict on a picked answer was not stored")
                _wait(browser, lambda d: _text(d, "#audit-card").startswith(f"Answer 2 of {len(audit)}"),
                      "no move to the next answer")
                _wait(browser, lambda d: _text(d, "#agreement").split(":")[0] != first, "the figures did not follow")
                assert _text(browser, "#audit-progress") == f"1 of {len(audit)} picked answers checked by you"
                browser.save_screenshot(str(shots / f"judge-after-a-verdict-{size}.png"))
                assert (audit[0], "example", "not_a_failure") in _records(app)
    assert not problems, json.dumps({str(k): v for k, v in problems.items()}, indent=1)
