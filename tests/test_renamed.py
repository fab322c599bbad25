"""Renamed commands, flags and YAML keys: the old name still works, says so in one line, and does what the new
name does (same exit status, same output otherwise)."""

from __future__ import annotations

import pytest

from fade_hub.cli import main

# (old argv, new argv); {file} is a file, so each command stops at its first check, the same way for both names
RENAMED = {
    "hub serve": (["hub", "serve", "--root", "{file}"], ["localhub", "serve", "--root", "{file}"]),
    "explore --seed": (["explore", "{file}", "--seed", "-1"], ["explore", "{file}", "--random-seed", "-1"]),
    "explore --mode": (["explore", "{file}", "--mode", "sequential", "--algorithm", "bo"],
                       ["explore", "{file}", "--episodes", "sequential", "--algorithm", "bo"]),
    "mitigate --seed": (["mitigate", "{file}", "--seed", "-1"], ["mitigate", "{file}", "--random-seed", "-1"]),
    "demo --seed": (["demo", "--seed", "-1"], ["demo", "--random-seed", "-1"]),
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
    (old_name, new_name), = [(a, b) for a, b in zip(old, new) if a != b]
    assert len(deprecated) == 1 and old_name in deprecated[0] and new_name in deprecated[0], old_err
    assert (old_code, [line for line in old_err if line not in deprecated], old_out) == (new_code, new_err, new_out)
    assert not any(line.startswith("deprecated:") for line in new_err)


def test_old_flags_and_yaml_keys_give_the_same_config(tmp_path, capsys):
    from fade_hub.cli import build_parser
    from fade_hub.explore.config import ExploreConfig
    from fade_hub.options import build_config

    parser = build_parser()
    old_yaml, new_yaml = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old_yaml.write_text("space: builtin:text-default\nseed: 3\nmode: sequential\n")
    new_yaml.write_text("concepts: builtin:text-default\nrandom-seed: 3\nepisodes: sequential\n")
    old = build_config(ExploreConfig, parser.parse_args(["explore", "m", "--space", "a.yaml", "--seed", "5"]))
    new = build_config(ExploreConfig, parser.parse_args(["explore", "m", "--concepts", "a.yaml", "--random-seed", "5"]))
    assert old == new and (new.space, new.seed) == ("a.yaml", 5)
    from_old, from_new = (build_config(ExploreConfig, parser.parse_args(["explore", "m"]), path)
                          for path in (old_yaml, new_yaml))
    assert from_old == from_new and (from_new.space, from_new.seed, from_new.mode) == ("builtin:text-default", 3,
                                                                                         "sequential")
    err = capsys.readouterr().err.splitlines()
    assert sorted(line.split(" is now ")[1].split(";")[0] for line in err) == [
        "--concepts", "--random-seed", "concepts", "episodes", "random-seed"]


def test_old_names_stay_out_of_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "localhub" in text and " hub " not in text
    for command, old in (("explore", ("--space", "--mode ", "--seed ")), ("mitigate", ("--seed ",)),
                         ("demo", ("--seed ",))):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert not [flag for flag in old if flag in text], command
