"""JUnit XML reports: one test suite of test cases, so that CI systems (GitHub Actions reporters, GitLab, Jenkins)
list each one as a passing or failing test. ``fade-hub check`` writes one case per region (and the clean rate)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAILURE_TYPES = {"region": "FailureRegion", "clean": "CleanFailureRate"}


@dataclass
class Case:
    """One test case: what it checks (``kind``: "region" or "clean"), whether it passed, and why."""

    name: str
    kind: str
    passed: bool
    message: str


def junit_xml(suite: str, cases: list[Case], properties: dict[str, Any]) -> str:
    """The report as JUnit XML text: the suite named ``suite``, its ``properties`` (None values left out), the cases."""
    failures = str(sum(not case.passed for case in cases))
    root = ET.Element("testsuites", name=suite, tests=str(len(cases)), failures=failures, errors="0")
    element = ET.SubElement(root, "testsuite", name=suite, tests=str(len(cases)), failures=failures, errors="0",
                            skipped="0", time="0")
    listed = ET.SubElement(element, "properties")
    for key, value in properties.items():
        if value is not None:
            ET.SubElement(listed, "property", name=key, value=str(value))
    for case in cases:
        test = ET.SubElement(element, "testcase", name=case.name, classname=f"fade-hub.{case.kind}", time="0")
        if case.passed:
            ET.SubElement(test, "system-out").text = case.message
        else:
            ET.SubElement(test, "failure", message=case.message,
                          type=FAILURE_TYPES.get(case.kind, "Failure")).text = case.message
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(path: str | Path, suite: str, cases: list[Case], properties: dict[str, Any]) -> Path:
    """Write the report (see ``junit_xml``) to ``path``."""
    path = Path(path)
    path.write_text(junit_xml(suite, cases, properties), encoding="utf-8")
    return path
