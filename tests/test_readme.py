"""The README's quickstart promises: exactly two commands, and CI runs the test one word for word."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quickstart_commands() -> list[str]:
    """The shell commands in the README's Quickstart section."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S)]


def test_quickstart_has_exactly_two_commands():
    commands = quickstart_commands()
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    demo, tests = commands
    assert demo.startswith("pip install torch==2.13.0") and demo.endswith("fade-hub demo")
    assert "pytest" in tests and tests.startswith("pip install torch==2.13.0")


def test_the_test_command_runs_the_fast_tier_then_the_slow_tier_each_with_its_slowest_tests():
    """A failure in the fast tier is seen in minutes: the slow end-to-end tests run only after it passed."""
    runs = [part.strip() for part in quickstart_commands()[1].split("&&") if "pytest" in part]
    assert runs == ['python -m pytest -q -m "not slow" -n 2 --dist loadfile --durations=25',
                    "python -m pytest -q -m slow -n 2 --dist loadfile --durations=25"]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert quickstart_commands()[1] in ci.splitlines()
