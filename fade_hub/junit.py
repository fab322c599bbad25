"""The JUnit XML report of ``fade-hub check``: one test suite, one test case per region (and the clean rate), so that
CI systems (GitHub Actions reporters, GitLab, Jenkins) list each region as a passing or failing test."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from .gate import CheckResult

SUITE = "fade-hub check"


def junit_xml(result: CheckResult) -> str:
    """The report as JUnit XML text."""
    failures = len(result.failed)
    root = ET.Element("testsuites", name=SUITE, tests=str(len(result.cases)), failures=str(failures), errors="0")
    suite = ET.SubElement(root, "testsuite", name=f"{SUITE} {result.run.spec}", tests=str(len(result.cases)),
                          failures=str(failures), errors="0", skipped="0", time="0")
    properties = ET.SubElement(suite, "properties")
    for key, value in {"run": result.run.spec, "run_id": result.run.run_id, "model": result.run.model_text,
                       **{name: value for name, value in result.limits.items() if value is not None}}.items():
        ET.SubElement(properties, "property", name=key, value=str(value))
    for case in result.cases:
        element = ET.SubElement(suite, "testcase", name=case.name, classname=f"fade-hub.{case.kind}", time="0")
        if case.passed:
            ET.SubElement(element, "system-out").text = case.message
        else:
            ET.SubElement(element, "failure", message=case.message, type="FailureRegion" if case.kind == "region"
                          else "CleanFailureRate").text = case.message
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(result: CheckResult, path: str | Path) -> Path:
    """Write the report to ``path``."""
    path = Path(path)
    path.write_text(junit_xml(result), encoding="utf-8")
    return path
