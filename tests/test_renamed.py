"""Renamed commands, flags and YAML keys: the old name still works, says so in one line, and does what the new
name does (same exit status, same output otherwise)."""

from __future__ import annotations

import pytest

from fade_hub.cli import main

# (old argv, new argv); {file} is a file, so each command stops at its first check, the same way for both names
RENAMED = {
    "hub serve": (["hub", "serve", "--root", "{file}"], ["localhub", "serve", "--root", "{file}"]),
}


def _run(argv: list[str], capsys) -> tuple[int, list[str], str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, [line for line in captured.err.splitlines() if line.strip()], captured.out


@pytest.mark.parametrize("name", list(RENAMED))
def test_an_old_name_works_with_one_deprecation_line(name, tmp_path, capsys):
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    old, new = ([part.format(file=afile) for part in argv] for argv in RENAMED[name])
    old_code, old_err, old_out = _run(old, capsys)
    new_code, new_err, new_out = _run(new, capsys)
    deprecated = [line for line in old_err if line.startswith("deprecated:")]
    assert len(deprecated) == 1 and old[0] in deprecated[0] and new[0] in deprecated[0], old_err
    assert (old_code, [line for line in old_err if line not in deprecated], old_out) == (new_code, new_err, new_out)
    assert not any(line.startswith("deprecated:") for line in new_err)


def test_old_names_stay_out_of_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "localhub" in text and " hub " not in text
