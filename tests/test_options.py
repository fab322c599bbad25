"""A config tree offers a shared section as its command words it: only some of its options, under the command's
flag group, with the command's help texts and defaults; the flags, YAML keys and range checks follow."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest
import yaml

from fade_hub.config.output import OutputOptions
from fade_hub.config.target import RemoteOptions
from fade_hub.errors import BadConfig
from fade_hub.options import ConfigTree, add_options, build_config, check_ranges, load_options, option, section


@dataclass(init=False)
class Shared(ConfigTree):
    run: str = option("", help="The run.", cli=False)
    result: OutputOptions = section(OutputOptions, only=("output", "show_progress"), group=None,
                                    helps={"output": "Where it goes."}, output="out")
    served: RemoteOptions = section(RemoteOptions, only=("concurrency",), group="serving", concurrency=2)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="x")
    add_options(parser, Shared)
    return parser


def test_a_section_offers_only_the_options_named_with_the_commands_words():
    text = _parser().format_help()
    assert "--output OUTPUT Where it goes. (default: out)" in " ".join(text.split())
    assert "serving:" in text and "(default: 2)" in text and "--no-progress" in text
    assert "--push-to-hub" not in text and "--endpoint" not in text and "Run directory" not in text
    with pytest.raises(SystemExit):
        _parser().parse_args(["--push-to-hub", "a/b"])


def test_the_tree_takes_offered_options_by_flag_yaml_and_flat_name(tmp_path):
    config = build_config(Shared, _parser().parse_args(["--concurrency", "5", "--no-progress"]))
    assert (config.output, config.concurrency, config.show_progress) == ("out", 5, False)
    assert config.served.max_retries == 5 and config.result.push_to_hub is None  # the others keep their defaults
    (tmp_path / "c.yaml").write_text("output: there\nserved:\n  concurrency: 7\n")
    assert load_options(Shared, tmp_path / "c.yaml") == {"output": "there", "concurrency": 7}
    (tmp_path / "bad.yaml").write_text("push_to_hub: a/b\n")
    with pytest.raises(BadConfig, match="unknown option 'push_to_hub'"):
        load_options(Shared, tmp_path / "bad.yaml")
    with pytest.raises(TypeError, match="push_to_hub"):
        Shared(push_to_hub="a/b")


def test_an_offered_option_keeps_its_range():
    with pytest.raises(BadConfig, match="--concurrency must be >= 1, got 0"):
        check_ranges(Shared(concurrency=0))


MITIGATE_YAML = """\
feedback: fb-a,fb-b
modes: fix
split: test
rank: 4
alpha: 8
steps: 10
batch_size: 4
learning_rate: 3e-4
random_seed: 2
device: cpu
trust_remote_code: true
output: OUT
push_to_hub: user/adapter
recheck: true
private: true
show_progress: false
"""


def test_mitigate_reads_a_config_file_with_todays_flat_keys_into_its_sections(tmp_path):
    from fade_hub.cli import build_parser
    from fade_hub.mitigate.config import MitigateConfig

    path = tmp_path / "mitigate.yaml"
    path.write_text(MITIGATE_YAML.replace("OUT", str(tmp_path / "adapter")))
    args = build_parser().parse_args(["mitigate", "RUN", "--config", str(path), "--steps", "12"])
    config = MitigateConfig.from_args(args)
    assert (config.data.feedback, config.inputs.split, config.lora.rank, config.lora_alpha) == (["fb-a", "fb-b"],
                                                                                                "test", 4, 8)
    assert (config.training.steps, config.training.learning_rate, config.training.seed) == (12, 3e-4, 2)  # flag wins
    assert (config.target.device, config.target.trust_remote_code) == ("cpu", True)
    assert (config.result.push_to_hub, config.result.private, config.result.show_progress, config.recheck) == (
        "user/adapter", True, False, True)
    again = tmp_path / "again.yaml"  # what --num-processes hands the relaunched processes
    again.write_text(yaml.safe_dump(config.flat()))
    assert MitigateConfig(**load_options(MitigateConfig, again)).flat() == config.flat()


def test_a_command_may_change_an_options_range_and_keep_its_flag_order():
    from fade_hub.config.server import ServeOptions
    from fade_hub.feedback.config import AppConfig
    from fade_hub.feedback.exclude import ExcludeConfig

    check_ranges(ServeOptions(port=0))  # the LocalHub takes any free port
    with pytest.raises(BadConfig, match=r"--port must be in \[1, 65535\], got 0"):
        check_ranges(AppConfig(failures="run", port=0))  # the review app's section says 1 and up
    parser = argparse.ArgumentParser(prog="exclude")
    add_options(parser, ExcludeConfig)
    flags = [action.option_strings[0] for action in parser._actions if action.option_strings][1:]
    assert flags == ["--feedback-repo", "--feedback-dir", "--note", "--undo", "--reviewer"]  # as before the tree
