"""The ``fade-hub`` command line: version, documented flags, built-ins, YAML configs, and the thin slice."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from fade_hub import __version__
from fade_hub.cli import build_parser, main
from fade_hub.store import RunStore


def subcommand_parsers(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """(command path, parser) of every subcommand, nested ones included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from subcommand_parsers(sub, (*prefix, name))


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"fade-hub {__version__}"


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "explore" in capsys.readouterr().out


def test_every_subcommand_documents_every_flag():
    commands = dict(subcommand_parsers(build_parser()))
    assert {("explore",), ("report",), ("push",)} <= set(commands)
    for path, parser in commands.items():
        text = " ".join(parser.format_help().split())  # undo line wrapping
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or getattr(action, "renamed", False):
                continue  # help, subcommands, and old flag names kept as hidden aliases (tests/test_renamed.py)
            assert action.help and action.help != argparse.SUPPRESS and action.help.strip(), (path, action.dest)
            names = action.option_strings or [action.metavar or action.dest]
            for name in names:
                assert name in text, (path, name)
            assert " ".join(action.help.split()).split("%(")[0][:40] in text, (path, action.dest)


def test_explore_help_lists_algorithms_and_modes(capsys):
    with pytest.raises(SystemExit):
        main(["explore", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for word in ("ppo", "random", "epsilon-greedy", "grid", "sequential", "--resume", "--config", "--force"):
        assert word in text


def test_list_builtins(capsys):
    assert main(["explore", "--list-builtins"]) == 0
    out = capsys.readouterr().out
    for name in ("paper-activities", "prompts", "paper-prompts", "paper-image"):
        assert f"  {name} " in out, name


def test_config_file_with_flag_override(capsys, tmp_path, tiny_models, shape_seeds, small_space):
    config = tmp_path / "explore.yaml"
    output = tmp_path / "run"
    config.write_text(
        "\n".join([
            f"model: {tiny_models('image-classification')}",
            f"seeds: {shape_seeds}",
            f"space: {small_space}",
            "algorithm: epsilon-greedy",
            "budget: 5",
            "seed: 4",
            "epsilon: 0.5",
            "confirm-top: 0",
            "show_progress: false",
            f"output: {output}",
        ])
        + "\n"
    )
    code = main(["explore", "--config", str(config), "--budget", "7", "--algorithm", "random"])
    assert code == 0, capsys.readouterr().err
    meta = RunStore(output).read_meta()
    assert meta["budget"] == 7 and meta["algorithm"] == "random"  # flags win
    assert meta["seed"] == 4 and meta["config"]["search"]["epsilon"] == 0.5 and meta["config"]["confirm"]["confirm_top"] == 0  # YAML kept
    assert sum(r["phase"] == "explore" for r in RunStore(output).read_queries()) == 7
    assert "run:" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("budgit: 5\n", "unknown option 'budgit'"),
        ("- just\n- a list\n", "mapping"),
        ("budget: [1\n", "not valid YAML"),
    ],
    ids=["unknown-key", "not-a-mapping", "bad-yaml"],
)
def test_bad_config_file_is_one_line(capsys, tmp_path, text, needle):
    config = tmp_path / "explore.yaml"
    config.write_text(text)
    code = main(["explore", "model", "--config", str(config)])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert str(config) in lines[0]


def test_missing_config_file(capsys, tmp_path):
    assert main(["explore", "model", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.slow
def test_thin_slice_in_a_subprocess(tmp_path, tiny_models, shape_seeds):
    import datasets

    output = tmp_path / "run"
    budget = 12
    result = subprocess.run(
        [
            sys.executable, "-m", "fade_hub.cli", "explore", str(tiny_models("image-classification")),
            "--seeds", str(shape_seeds), "--algorithm", "random", "--budget", str(budget), "--random-seed", "7",
            "--output", str(output), "--confirm-top", "2", "--confirm-seeds", "1",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=dict(os.environ),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"run: {output}" in result.stdout
    # announced before the first query: 4 explore + 2 held-out clean seeds, 12 exploring, 2 regions x 2 held-out seeds
    plan = ("planned model calls: 22 = 6 on clean seeds + 12 exploring + up to 4 confirming (up to 2 regions x 2 "
            "held-out seeds)")
    assert plan in result.stderr
    rows = datasets.load_dataset(str(output), "queries", split="train", cache_dir=str(tmp_path / "cache"))
    phases = rows["phase"]
    assert phases.count("explore") == budget and set(phases) <= {"clean", "explore", "confirm"}
    assert len(rows) == phases.count("clean") + budget + phases.count("confirm") and phases.count("clean") == 6
    assert "failure region" in result.stdout  # the regions (or that there is none) are what it prints
    assert set(rows["rotation"]) <= {"-10", "-5", "0", "5", "10", ""}  # the default image space ("" on clean seeds)
    assert all(isinstance(value, bool) for value in rows["is_failure"])
    meta = json.loads((output / "run.json").read_text())
    assert meta["status"] == "finished" and meta["seed"] == 7 and meta["task"] == "image-classification"
    assert meta["model_commit_sha"] is None  # a local folder has no commit
    card = (output / "README.md").read_text()
    assert "config_name: queries" in card


def test_config_numbers_written_the_yaml_1_1_way_are_numbers(tmp_path):
    from fade_hub.errors import BadConfig
    from fade_hub.explore.config import ExploreConfig

    path = tmp_path / "explore.yaml"
    path.write_text("model: m\nlearning-rate: 3e-3\nbudget: '12'\nconfirm_top: 2\n", encoding="utf-8")
    config = ExploreConfig.from_yaml(path, budget=20)
    assert config.learning_rate == 0.003 and config.budget == 20 and config.confirm_top == 2
    path.write_text("model: m\nbudget: lots\n", encoding="utf-8")
    with pytest.raises(BadConfig, match="budget must be a number"):
        ExploreConfig.from_yaml(path)


@pytest.mark.parametrize(("yaml_text", "needle"), [
    ("steps: true", "steps must be a whole number, got True"),
    ("steps: 2.0", "steps must be a whole number, got 2.0"),
    ("seed: true", "seed must be a whole number, got True"),
    ("mix: false", "mix must be a number, got False"),
    ("feedback: 5", "feedback must be a list of text, got 5"),
    ("feedback: [a, 5]", "feedback must be a list of text, got ['a', 5]"),
    ("split: 2023", "split must be text, got 2023 (put it in quotes)"),
    ("private: 1", "private must be true or false, got 1"),
    ("steps:", "steps must be given, got None"),
])
def test_one_type_rule_for_every_option_from_its_declaration(tmp_path, yaml_text, needle):
    """Issue 25, item 10: booleans are not numbers, 2.0 is not a whole number, text is text; in a file and in code."""
    from fade_hub.errors import BadConfig
    from fade_hub.mitigate.config import MitigateConfig
    from fade_hub.options import load_options

    path = tmp_path / "mitigate.yaml"
    path.write_text(yaml_text + "\n", encoding="utf-8")
    with pytest.raises(BadConfig, match=re.escape(f"config file {path}: {needle}")):
        load_options(MitigateConfig, path)
    name, value = needle.split(" must ")[0], yaml.safe_load(yaml_text)[needle.split(" must ")[0]]
    config = MitigateConfig(run="r", output=str(tmp_path / "out"), modes="confirmed", **{name: value})
    from fade_hub.options import flag_name, option_fields

    field = next(field for _, field in option_fields(MitigateConfig) if field.name == name)
    with pytest.raises(BadConfig, match=re.escape(f"{flag_name(field)} must")):  # seed's flag is --random-seed
        config.validate()


def test_whole_numbers_and_their_text_stay_numbers_and_counts_have_a_ceiling(tmp_path):
    from fade_hub.errors import BadConfig
    from fade_hub.explore.config import ExploreConfig
    from fade_hub.mitigate.config import MitigateConfig
    from fade_hub.options import load_options

    path = tmp_path / "mitigate.yaml"
    path.write_text("steps: 3\nlearning_rate: 1\nalpha: '16'\nbatch-size: '8'\nfeedback: a, b\n", encoding="utf-8")
    assert load_options(MitigateConfig, path) == {"steps": 3, "learning_rate": 1, "alpha": 16.0, "batch_size": 8,
                                                  "feedback": ["a", "b"]}
    with pytest.raises(BadConfig, match=r"--steps must be in \[1, 1000000\], got 1000001"):
        MitigateConfig(run="r", output="o", modes="confirmed", steps=10**6 + 1).validate()
    with pytest.raises(BadConfig, match="--budget is too large"):
        ExploreConfig(model="m", budget=10**30).validate()


def test_a_large_plan_is_announced_with_a_warning_and_no_prompt(caplog):
    import logging

    from fade_hub.explore.budget import WARN_CALLS, announce, plan_calls

    plan = plan_calls(10**12, confirm_top=5, held_out=4, done=3)
    assert (plan.explore, plan.confirm, plan.total) == (10**12, 20, 10**12 + 20)
    assert plan_calls(10, confirm_top=2, held_out=4, references=True).confirm == 2 * 4 + 4  # prompt spaces
    with caplog.at_level(logging.INFO, logger="fade_hub.explore.budget"):
        announce(plan)
        announce(plan_calls(WARN_CALLS, confirm_top=0, held_out=4))
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert infos[0].startswith("planned model calls: 1,000,000,000,020 = 0 on clean seeds + 1,000,000,000,000 "
                               "exploring + up to 20")
    assert "3 already in the log" in infos[0] and "up to 0 confirming" in infos[1]
    assert len(warnings) == 1 and "more than 100,000" in warnings[0]  # exactly at the limit: no warning


def test_a_ctrl_c_while_the_commands_load_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    """Ctrl-C lands while the CLI is still importing its commands (a slow start on a busy machine): exit 130 with
    one line saying nothing started, not a KeyboardInterrupt traceback, and no output folder."""
    import importlib
    import signal

    real_import = importlib.import_module

    def import_then_ctrl_c(name, package=None):
        module = real_import(name, package)
        if name == ".commands.mitigate":
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C does, while the next command module loads
        return module

    monkeypatch.setattr(importlib, "import_module", import_then_ctrl_c)
    output = tmp_path / "adapter"
    assert main(["mitigate", str(tmp_path / "run"), "--output", str(output)]) == 130
    err = capsys.readouterr().err
    assert err == "interrupted before the command started: nothing was written.\n"
    assert not output.exists()


@pytest.mark.slow  # a subprocess that imports the model stack: the slow tier
def test_a_ctrl_c_while_the_program_shuts_down_is_ignored(tmp_path):
    """The command is done and the interpreter runs its exit hooks (torch's finalizers, say) when Ctrl-C lands: the
    program still exits with the command's status and prints no traceback."""
    program = ("import atexit, os, signal, sys, time\n"
               "atexit.register(lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(0.2)))\n"
               "sys.argv = ['fade-hub', 'explore', '--list-builtins']\n"
               "from fade_hub.cli import entry\n"
               "entry()\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "demo-shapes" in done.stdout
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr, done.stderr


@pytest.mark.slow  # a subprocess that imports the model stack: the slow tier
def test_a_ctrl_c_during_torchs_start_up_waits_for_it_and_then_stops_in_one_line(tmp_path):
    """Ctrl-C lands while torch's native start-up imports ``torch.cuda`` (from inside C++: a KeyboardInterrupt
    raised there can abort the process with a C++ message, as a CI run's ``pull`` did): the CLI finishes importing
    torch, then stops with one line, exit 130, and writes nothing."""
    output = tmp_path / "pulled"
    program = ("import os, signal, sys\n"
               "class CtrlCAtTorchCuda:\n"
               "    def find_spec(self, name, path, target=None):\n"
               "        if name == 'torch.cuda':\n"
               "            os.kill(os.getpid(), signal.SIGINT)\n"
               "sys.meta_path.insert(0, CtrlCAtTorchCuda())\n"
               "from fade_hub.cli import main\n"
               f"status = main(['pull', 'someone/variant', '--output', {str(output)!r}])\n"
               "print('torch whole:', hasattr(sys.modules.get('torch'), 'nn'))\n"
               "sys.exit(status)\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 130, done.stderr
    assert done.stderr == "interrupted before the command started: nothing was written.\n"
    assert done.stdout == "torch whole: True\n" and not output.exists()
