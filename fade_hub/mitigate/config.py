"""MitigateConfig: every setting of one mitigation; its fields are the YAML keys and the ``mitigate`` flags.

A tree of sections: what to fade (``FadeDataOptions``, with the seed inputs' split), what peft's ``LoraConfig``
needs (``LoraOptions``), the training settings (``TrainingOptions``, with the model's device and code trust), and
where the adapter goes (``OutputOptions``), in the way trl pairs an ``XConfig`` with an ``XTrainer``; its flags and
YAML keys stay flat (a YAML file may also give them by section).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BadConfig
from ..config.output import OutputOptions, SourceOptions
from ..config.seeds import SeedOptions
from ..config.target import TargetOptions
from ..options import MAX_SEED, ConfigTree, build_config, check_ranges, option, section, to_dict
from ..paths import check_folder_target, check_repo_id, looks_like_path

_DATA, _LORA, _TRAIN, _OUT = "what to fade", "LoRA (peft)", "training", "output"
MODES = ("fix", "confirmed")
OBJECTIVES = ("auto", "dpo", "kto", "sft")
# past these, a run would not fit in memory long before it finished (steps x batch examples are drawn up front)
MAX_STEPS, MAX_BATCH, MAX_RANK, MAX_SAMPLES = 1_000_000, 65_536, 4_096, 1_024


@dataclass
class FadeDataOptions:
    """What to fade and what to measure the adapter on: the feedback, the modes, the training and evaluation seeds."""

    feedback: list[str] = option(group=_DATA, csv=True, default_factory=list, metavar="DIR|REPO[,...]",
                                 help="Feedback folders or dataset repos (comma-separated); runs of the same base "
                                      "model's lineage are read together.")
    modes: str = option("fix", group=_DATA, choices=MODES, help="fix: the regions, cells and examples reviewers "
                        "marked fix; confirmed: every confirmed region, without feedback (for automated pipelines).")
    train_seeds: list[str] = option(group=_DATA, csv=True, default_factory=list, metavar="SRC[,...]",
                                    help="More training seeds (a dataset, folder or file, like explore --seeds), "
                                         "besides the run's exploration seeds.")
    eval_seeds: str | None = option(None, group=_DATA, metavar="SRC", help="Seeds to measure the shift on (never "
                                    "trained on). Default: the run's held-out seeds that confirmation did not use.")
    num_eval_seeds: int | None = option(None, group=_DATA, low=1, help="Use at most this many evaluation seeds.")
    collateral_share: float = option(0.3, group=_DATA, low=0.0, low_open=True, high=1.0, high_open=True,
                                     help="Share of the untargeted cells held out of training (at least 20 cells "
                                          "when that is at most half of them): the adapter's side effects are "
                                          "measured there, as collateral on unseen perturbations.")
    eval_cells: int = option(20_000, group=_DATA, low=1, help="Evaluation queries per model before the untargeted "
                             "cells are sampled instead of gridded.")


@dataclass
class LoraOptions:
    """The adapter peft's ``LoraConfig`` is given: rank, alpha, dropout, target modules."""

    rank: int = option(8, group=_LORA, low=1, high=MAX_RANK, help="LoRA rank r.")
    alpha: float | None = option(None, group=_LORA, low=0.0, low_open=True, help="LoRA alpha (default 2 x rank).")
    dropout: float = option(0.0, group=_LORA, low=0.0, high=1.0, high_open=True, help="LoRA dropout.")
    target_modules: list[str] = option(group=_LORA, csv=True, default_factory=list, metavar="NAME[,...]",
                                       help="Module names to adapt (default: chosen per architecture).")


@dataclass
class TrainingOptions:
    """How the adapter is trained: the objective, the steps, the batches, the learning rate, the mix, the processes."""

    objective: str = option("auto", group=_TRAIN, choices=OBJECTIVES,
                            help="Text generation: dpo, kto or sft (auto: the measured default).")
    samples: int = option(8, group=_TRAIN, low=1, high=MAX_SAMPLES, help="Text generation: answers sampled per "
                          "failing prompt when neither a correction nor the answer to the clean prompt passes the "
                          "judge.")
    steps: int = option(150, group=_TRAIN, low=1, high=MAX_STEPS, help="Optimizer steps.")
    epochs: float | None = option(None, group=_TRAIN, low=0.0, low_open=True,
                                  help="Train for this many passes over the training examples instead of --steps.")
    batch_size: int = option(32, group=_TRAIN, low=1, high=MAX_BATCH, help="Examples per optimizer step.")
    learning_rate: float | None = option(None, group=_TRAIN, low=0.0, low_open=True, help="Learning rate (default: "
                                         "the task's: 1e-3 for classifiers and language models, 5e-4 for a "
                                         "diffusion UNet: diffusers' 1e-4 faded 7.6 per cent of a test pipeline's "
                                         "failures in 150 steps, 5e-4 98 to 99 per cent).")
    mix: float = option(0.5, group=_TRAIN, low=0.0, low_open=True, high=1.0, help="Share of training examples "
                        "perturbed by a targeted mode; the rest are clean or from untargeted cells (the paper uses "
                        "0.5).")
    seed: int = option(0, group=_TRAIN, low=0, high=MAX_SEED, flag="--random-seed", renamed_from=("--seed",),
                       help="Random seed: the same seed gives the same adapter on CPU.")
    num_processes: int = option(1, group=_TRAIN, low=1, help="Train on this many processes or GPUs (relaunches "
                                "itself with `accelerate launch`; only the main process writes and pushes).")


@dataclass(init=False)
class MitigateConfig(ConfigTree):
    """Settings of one mitigation (``fade-hub mitigate --help`` shows each with its default): what to fade, the
    adapter, its training, and where it goes; each option is also read, set and given by its flat name."""

    source: SourceOptions = section(SourceOptions, helps={
        "run": "The run to mitigate: a run directory or the dataset repo it was pushed to."})
    data: FadeDataOptions = section(FadeDataOptions)
    inputs: SeedOptions = section(SeedOptions, only=("split",), group=_DATA,
                                  helps={"split": "Dataset split of --train-seeds and --eval-seeds."})
    lora: LoraOptions = section(LoraOptions)
    training: TrainingOptions = section(TrainingOptions)
    target: TargetOptions = section(TargetOptions, only=("device", "trust_remote_code"), group=_TRAIN, helps={
        "device": "cpu, cuda, cuda:1 or mps (default: picked by accelerate).",
        "trust_remote_code": "Allow the model's own Python code to run."})
    result: OutputOptions = section(OutputOptions, only=("output", "push_to_hub", "private", "show_progress"), helps={
        "output": "Folder of the adapter (a Hub model repo on disk).",
        "push_to_hub": "Push the adapter as a model repo.",
        "private": "Create the pushed repo as private.",
        "show_progress": "Hide the progress bars."}, output="")
    recheck: bool = option(False, group=_OUT, help="After training, explore the variant afresh (the run's space, "
                           "judge, algorithm and budget, a new random seed, the evaluation seeds) into OUTPUT-recheck "
                           "and compare it with the run: its fixed, persisting and new regions go into fade_eval.json "
                           "and the card (with --push-to-hub, the run is pushed as REPO_ID-failures).")
    flag_order = ("feedback", "modes", "train_seeds", "eval_seeds", "split", "num_eval_seeds", "collateral_share",
                  "eval_cells", "rank", "alpha", "dropout", "target_modules", "objective", "samples", "steps", "epochs",
                  "batch_size", "learning_rate", "mix", "seed", "device", "num_processes", "trust_remote_code",
                  "output", "push_to_hub", "recheck", "private", "show_progress")

    def validate(self) -> None:
        """Check what can be checked before anything is loaded; BadConfig names the option."""
        if not self.run:
            raise BadConfig("no run given: pass a run directory or its dataset repo as RUN")
        if not self.output:
            raise BadConfig("say where the adapter goes: --output DIR")
        if self.modes == "fix" and not self.feedback:
            raise BadConfig("--modes fix needs reviewers' verdicts: pass --feedback DIR|REPO (or --modes confirmed)")
        if type(self.mix) in (int, float) and self.mix == 0:
            raise BadConfig("--mix 0 would train on no input of a targeted mode, so nothing would fade; pass the "
                            "share of targeted examples in (0, 1] (the paper uses 0.5)")
        check_ranges(self)
        check_output(self.output_dir)
        if self.recheck:
            from ..recheck import check_recheck_output

            check_recheck_output(self.output_dir)
        for source in self.feedback:
            if Path(source).expanduser().exists() and not Path(source).expanduser().is_dir():
                raise BadConfig(f"--feedback {source} is a file; pass the folder that holds the feedback-*.jsonl "
                                "files (space serve's --feedback-dir) or the feedback dataset repo id")
            if not Path(source).expanduser().exists():
                if looks_like_path(source):
                    raise BadConfig(f"--feedback {source}: no such folder; pass the feedback folder or its dataset "
                                    "repo")
                check_repo_id(source, "--feedback")
        if self.push_to_hub is not None:
            check_repo_id(self.push_to_hub, "--push-to-hub")

    @property
    def lora_alpha(self) -> float:
        """The LoRA alpha: the user's, else twice the rank."""
        return self.alpha if self.alpha is not None else 2.0 * self.rank

    @classmethod
    def from_args(cls, args: Any) -> MitigateConfig:
        """The config of ``fade-hub mitigate``: its ``--config`` file overridden by the flags given."""
        return build_config(cls, args, args.config)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a tree: the run and one dict per section."""
        return to_dict(self)

    @property
    def output_dir(self) -> Path:
        """The adapter folder."""
        return Path(self.output)


def check_output(folder: Path) -> None:
    """BadConfig when ``folder`` cannot become the adapter folder: a file, unwritable, or a folder with something in
    it (an adapter already, or anything else)."""
    from ..targets.source import DIFFUSERS_LORA_FILE

    check_folder_target(folder, "--output", "for the adapter")
    if folder.is_dir() and any(folder.iterdir()):
        if (folder / "adapter_config.json").exists() or (folder / DIFFUSERS_LORA_FILE).exists():
            raise BadConfig(f"{folder} already holds an adapter; choose another --output or delete it first")
        raise BadConfig(f"{folder} is not an empty folder; choose a new --output for the adapter")
