"""The judge checked against reviewers in the feedback app (issue 24): the agreement the card and ``report`` compute,
shown in the Space and refreshed after each verdict; regions reviewers call judge errors flagged wherever they show;
the answers ``explore --judge-audit N`` picked offered for review, their verdicts counted in the agreement.

The run is the planted text run (tests/space_runs.py) copied to a folder, with its audit drawn by the real
``audit_sample``; verdicts are real records in a feedback folder.
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from fade_hub.commands.report import judge_check
from fade_hub.feedback import load
from fade_hub.feedback.judging import kappa_text, share_text
from fade_hub.feedback.words import plain
from fade_hub.agreement import audit_sample, check_judge
from fade_hub.run import Run
from fade_hub.store import RunStore

AUDIT = 8


@pytest.fixture
def audited_run(planted_text_run, tmp_path):
    """A copy of the planted text run with ``AUDIT`` answers picked to check the judge (as ``--judge-audit`` does)."""
    run_dir = tmp_path / "run"
    shutil.copytree(planted_text_run[0], run_dir)
    store = RunStore(run_dir)
    store.update_meta(judge_audit=audit_sample(pd.DataFrame(store.read_queries()), AUDIT, seed=5))
    return run_dir


def _app(run_dir, folder, reviewer):
    from fade_hub.feedback.app import AppConfig, FeedbackApp

    return FeedbackApp(AppConfig(failures=str(run_dir), feedback_dir=str(folder), find_adapters=False,
                                 reviewer=reviewer))


@pytest.mark.slow  # end to end (a served app, a subprocess or timed requests): the slow tier
def test_the_space_shows_the_reports_agreement_flags_judge_errors_and_offers_the_audit(audited_run, tmp_path):
    folder = tmp_path / "fb"
    app = _app(audited_run, folder, "ada")
    ui, tab, view = app.ui, app.ui.judge, app.view
    audit = view.audit_ids
    queries = Run.open(audited_run).queries.set_index("query_id")
    judge_says = {t: bool(queries.loc[int(t[1:]), "is_failure"]) for t in audit}
    assert len(audit) == AUDIT and sum(judge_says.values()) == AUDIT // 2  # passes as well as failures

    dropdown, agreement, per_region, progress = tab.on_load(None)
    assert dropdown.value == audit[0] and [c[1] for c in dropdown.choices] == audit
    assert agreement.startswith("**No answer reviewed yet.**") and per_region == ""
    assert progress == f"0 of {AUDIT} picked answers checked by you"
    card, text, answer, picture, verdict, note = tab.on_pick(audit[0], None)
    assert "picked at random to check the judge" in card and f"### Answer 1 of {AUDIT}" in card
    assert ("**fails**" if judge_says[audit[0]] else "**passes**") in card
    assert text == queries.loc[int(audit[0][1:]), "input"] and answer == queries.loc[int(audit[0][1:]), "output"]
    assert picture is None and verdict is None

    # ada agrees with the judge on six picked answers and calls two of its failures wrong
    failing = [t for t in audit if judge_says[t]]
    wrong = set(failing[:2])
    mine = {t: "not_a_failure" if t in wrong or not judge_says[t] else "fix" for t in audit}
    assert tab.on_submit(audit[0], None, "", None)[0].startswith("**Not stored:** Say whether the answer is a failure")
    status = None
    for i, target in enumerate(audit):
        status, picked, agreement, per_region, progress, *shared = tab.on_submit(target, mine[target], "", None)
        assert status.startswith(f"Stored **{mine[target].replace('_', ' ')}** on answer {i + 1} (as **ada**)")
        assert progress == f"{i + 1} of {AUDIT} picked answers checked by you" + (": all done, thank you!"
                                                                                   if i + 1 == AUDIT else "")
        if i + 1 < AUDIT:
            assert picked.value == audit[i + 1] and status.endswith(f"next: answer {i + 2}.")
    assert status.endswith("**You have checked every picked answer: thank you!**")
    stored = {(r.item, r.verdict) for r in load(folder).resolved()}
    assert stored == set(mine.items())  # passing answers are targets too, none was refused

    # the figures are the report's (the same check_judge on the same records), in the Space's words
    check = judge_check(Run.open(audited_run), str(folder))
    assert (check.overall.items, check.overall.agreeing) == (AUDIT, AUDIT - 2)
    agreement, per_region, progress = tab.on_refresh(None)
    assert agreement.startswith(f"**The judge agrees with reviewers on {AUDIT - 2} of {AUDIT} reviewed answers:** "
                                f"75% [{100 * check.overall.share_low:.0f}, {100 * check.overall.share_high:.0f}], "
                                f"Cohen's kappa {check.overall.kappa:.2f} [{check.overall.kappa_low:.2f}, "
                                f"{check.overall.kappa_high:.2f}]")
    lines = per_region.split("\n")[2:]
    assert lines == [f"- **{plain(view.describe(r))}:** {check.regions[r].items} reviewed, agreement "
                     f"{share_text(check.regions[r])}, Cohen's kappa {kappa_text(check.regions[r])}." +
                     (f" **Judge error:** {plain(check.error_words(r))}." if r in check.judge_errors else "")
                     for r in view.region_ids if r in check.regions or r in check.judge_errors]

    # two reviewers call the top region not a failure: flagged in the card, the table, the dropdown, the figures,
    # as the report flags it (ada's two answers called wrong may flag their regions as well: one verdict of one)
    top = view.region_ids[0]
    ui.on_submit(top, "not_a_failure", None, "", "all", top, None)
    bob = _app(audited_run, folder, "bob")
    bob.submit(top, "not_a_failure")
    bob.submit(view.region_ids[1], "fix")
    check = judge_check(Run.open(audited_run), str(folder))
    words = "reviewers say the judge is wrong here (2 of 2 verdicts: not a failure)"
    assert check.error_words(top) == words and view.region_ids[1] not in check.judge_errors
    bob_ui = bob.ui
    assert bob_ui._judge_errors() == {region: check.error_words(region) for region in check.judge_errors}
    *_, region_table, _ = bob_ui.shared("bob")
    labels = [label for label, _ in bob_ui._region_dropdown("bob", "all", top).choices]
    agreement, per_region, _ = bob_ui.judge.on_refresh(None)
    assert f"**Judge error in {view.describe(top)}:** {words}." in agreement.replace("\\", "")
    for i, region in enumerate(view.region_ids):
        card = bob_ui.on_region(region, "all", None, None)[0]
        flagged = check.error_words(region)
        assert (f"**Judge error:** {flagged}; this region is left out of mitigation." in card) == bool(flagged)
        verdicts = region_table.iloc[i]["verdicts"]
        assert verdicts.endswith(flagged) and ("judge is wrong" in verdicts) == bool(flagged)
        assert labels[i].startswith(f"{i + 1} · judge wrong? · ") == bool(flagged)
        listed = f"**Judge error in {view.describe(region)}:** {flagged}." in agreement.replace("\\", "")
        assert listed == bool(flagged)
    assert region_table.iloc[0]["verdicts"] == f"2 not a failure · {words}"
    assert per_region.split("\n")[2].endswith(f" **Judge error:** {plain(words)}.")
    assert sum("**Judge error:**" in line for line in per_region.split("\n")) == len(check.judge_errors)

    # a verdict on an example in the Review tab counts too, and the figures follow it
    example = next(t for t in view.example_ids(view.region_ids[2]) if t not in audit)
    before = bob_ui.judging.check(bob.reviews.resolved()).overall.items
    bob_ui.on_submit(example, "fix", None, "", "all", view.region_ids[2], None)
    assert f" of {before + 1} reviewed answers" in bob_ui.judge.on_refresh(None)[0]


def test_a_run_without_an_audit_says_how_to_get_one(planted_text_run, tmp_path):
    app = _app(planted_text_run[0], tmp_path / "fb", "ada")
    assert app.view.audit_ids == [] and app.ui.judge.pick is None
    agreement, per_region = app.ui.judge.on_refresh(None)
    assert agreement.startswith("**No answer reviewed yet.**") and per_region == ""


def test_judge_errors_come_from_region_verdicts_alone_and_not_from_agreeing_with_passes():
    queries = pd.DataFrame({"query_id": range(8), "action_id": [1, 1, 1, 1, 2, 2, 2, 2], "phase": "explore",
                            "judged": True, "is_failure": [True, True, False, False] * 2})
    regions = pd.DataFrame({"region_id": ["a=1", "a=2"], "cells": [[1], [2]]})

    def records(*verdicts):
        from fade_hub.feedback.records import make_record

        return [make_record("r", target, verdict, "", "", user) for target, verdict, user in verdicts]

    only_regions = check_judge(queries, regions, records(("a=1", "not_a_failure", "ann"), ("a=1", "fix", "bob"),
                                                         ("a=1", "not_a_failure", "cy")), "r")
    assert only_regions.overall is None and only_regions.judge_errors == ["a=1"]
    assert only_regions.error_words("a=1") == "reviewers say the judge is wrong here (2 of 3 verdicts: not a failure)"
    # reviewers who agree that passing answers pass say nothing against the judge's failures there
    agreeing = check_judge(queries, regions, records(("q2", "not_a_failure", "ann"), ("q3", "not_a_failure", "ann"),
                                                     ("q0", "fix", "ann")), "r")
    assert agreeing.overall.share == 1.0 and agreeing.judge_errors == [] and agreeing.votes == {"a=1": (0, 1)}
    wrong = check_judge(queries, regions, records(("q4", "not_a_failure", "ann"), ("q5", "not_a_failure", "ann"),
                                                  ("q6", "not_a_failure", "ann")), "r")
    assert wrong.judge_errors == ["a=2"] and wrong.error_words("a=2").endswith("(2 of 2 verdicts: not a failure)")


def test_kappa_is_not_a_figure_where_one_side_gave_one_verdict_only():
    from fade_hub.agreement import Agreement

    for judge, reviewers in (([True], [True]), ([True, True], [True, False]), ([True, False], [False, False])):
        figures = Agreement.of(judge, reviewers)
        assert kappa_text(figures) == "n/a (one verdict only)" and "Cohen's kappa n/a" in figures.text()
    both = Agreement.of([True, False, True], [True, False, False])
    assert kappa_text(both).startswith(f"{both.kappa:.2f} [") and both.kappa_low < both.kappa < both.kappa_high
