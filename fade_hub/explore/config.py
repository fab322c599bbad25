"""ExploreConfig: every setting of an exploration run, a tree of option sections (the model, where it is served, the
seed inputs, the concept space, the judge, the search, ppo, confirmation, the regions, the output) whose options are
the YAML keys and the ``explore`` flags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BadConfig
from ..config.judge import JUDGE_GROUP, JudgeOptions
from ..config.output import OutputOptions
from ..config.regions import CONFIRM_GROUP, RegionOptions
from ..options import MAX_SEED, ConfigTree, build_config, check_ranges, load_options, option, section, to_dict
from ..paths import check_repo_id, looks_like_path
from ..config.seeds import SeedOptions
from ..config.target import RemoteOptions, TargetOptions
from .registry import EXPLORERS, MODES

# grid runs above this many queries only with --force
GRID_LIMIT = 20_000
PPO_REWARDS = ("regions", "coverage", "failures")
# the policy's learning rate when --learning-rate is not given, by --ppo-reward
DEFAULT_LEARNING_RATE = {"regions": 3e-3, "coverage": 3e-3, "failures": 1e-3}
_SEARCH, _PPO, _CONFIRM = "exploration", "ppo (trl GRPOTrainer with PPO's clipped surrogate)", CONFIRM_GROUP


@dataclass
class ConceptOptions:
    """The concept space explored."""

    space: str | None = option(None, group=JUDGE_GROUP, flag="--concepts", renamed_from=("--space",), metavar="CONCEPTS",
                               help="Concept space: a YAML file or builtin:NAME (default: the task's built-in).")


@dataclass
class SearchOptions:
    """How the space is searched: the algorithm, its episodes, its budget and its random seed."""

    algorithm: str = option("ppo", group=_SEARCH, choices=tuple(EXPLORERS), help="Search algorithm.")
    mode: str = option("single", group=_SEARCH, choices=MODES, flag="--episodes", renamed_from=("--mode",),
                       help="single: one cell per query (macroscopic); "
                       "sequential: cumulative small moves per seed (microscopic).")
    budget: int | None = option(None, group=_SEARCH, low=1, help="Model queries to spend exploring (default 500; "
                                "grid: every cell x seed).")
    seed: int = option(0, group=_SEARCH, low=0, high=MAX_SEED, flag="--random-seed", renamed_from=("--seed",),
                       help="Random seed: the same seed gives the same records on CPU.")
    epsilon: float = option(0.1, group=_SEARCH, low=0.0, high=1.0,
                            help="epsilon-greedy: probability of a random cell.")
    max_steps: int = option(8, group=_SEARCH, low=1, help="sequential: steps per episode before it is cut.")
    step_penalty: float = option(0.05, group=_SEARCH, low=0.0, help="sequential: alpha, reward lost per step.")
    severity_weight: float = option(0.0, group=_SEARCH, low=0.0, help="Reward = 1 per failure + this x severity.")
    force: bool = option(False, group=_SEARCH, help="Let grid run past its size limit or be cut at --budget.")
    stop_when_converged: bool = option(False, group=_SEARCH, help="Stop before the budget is spent once the regions "
                                       "the run would confirm have stopped changing: the same screened regions "
                                       "(characterized every 50 queries) over the last --convergence-window "
                                       "queries; the rest of the budget is not spent, and run.json says so.")
    convergence_window: int = option(200, group=_SEARCH, low=1, help="Explore queries over which the screened "
                                     "regions must stay the same for --stop-when-converged to stop.")

    def check(self) -> None:
        """BadConfig on an unknown algorithm or episode kind, or one the algorithm cannot run."""
        if self.algorithm not in EXPLORERS:
            raise BadConfig(f"--algorithm {self.algorithm!r} is not one of {', '.join(EXPLORERS)}")
        if self.mode not in MODES:
            raise BadConfig(f"--episodes {self.mode!r} is not one of {', '.join(MODES)}")

    def check_algorithm(self) -> None:
        """BadConfig when the algorithm cannot run these episodes or stop early (checked before the run directory
        exists, not only by the explorers)."""
        if self.mode not in EXPLORERS[self.algorithm].modes:
            raise BadConfig(f"--algorithm {self.algorithm} only runs in --episodes "
                            f"{' or '.join(EXPLORERS[self.algorithm].modes)}")
        if self.stop_when_converged and not EXPLORERS[self.algorithm].stops_early:
            stopping = " or ".join(name for name, spec in EXPLORERS.items() if spec.stops_early)
            raise BadConfig(f"--stop-when-converged needs --algorithm {stopping}; {self.algorithm} spends the whole "
                            "budget")


@dataclass
class PPOOptions:
    """The ``ppo`` explorer: trl's GRPO hyper-parameters and the reward the policy learns from."""

    learning_rate: float | None = option(None, group=_PPO, low=0.0, low_open=True, help="Policy learning rate "
                                         "(default 3e-3 with --ppo-reward coverage, 1e-3 with failures).")
    num_generations: int = option(16, group=_PPO, low=2,
                                  help="Completions per group for group-relative advantages.")
    num_iterations: int = option(4, group=_PPO, low=1, help="Optimisation passes per batch (PPO reuse).")
    queried_per_group: int = option(4, group=_PPO, low=1, help="regions: of each group of --num-generations "
                                    "completions, this many are asked of the model; the failure model scores them "
                                    "all (model-based), so the policy learns from more cells than it queries.")
    clip_epsilon: float = option(0.2, group=_PPO, low=0.0, low_open=True, help="PPO clipping range.")
    beta: float = option(0.0, group=_PPO, low=0.0, help="KL penalty to the initial policy; keeps coverage.")
    entropy_coef: float = option(0.05, group=_PPO, low=0.0,
                                 help="Entropy bonus; keeps the policy from collapsing on one cell.")
    ppo_reward: str = option("regions", group=_PPO, choices=PPO_REWARDS, help="regions: the policy learns to "
                             "sample each cell in proportion to what it would teach about the failure regions (a "
                             "failure the shared failure model does not expect, or a query on the boundary of a "
                             "region found, weighted by --boundary-weight-start/-end); coverage: the policy learns to "
                             "sample each cell in proportion to its estimated failure rate (a model shared across "
                             "cells with levels in common), with a premium on cells not yet seen failing; failures: "
                             "1 per failure, the reward before coverage (sequential episodes always use it).")
    boundary_weight_start: float = option(0.6, group=_PPO, low=0.0, high=1.0, help="regions: the weight of "
                                          "settling the boundaries of the regions found (against looking for new "
                                          "ones) at the first query; it moves linearly to --boundary-weight-end by "
                                          "the last.")
    boundary_weight_end: float = option(0.9, group=_PPO, low=0.0, high=1.0, help="regions: the boundary weight at "
                                        "the last query of the budget.")
    novelty_bonus: float = option(10.0, group=_PPO, low=0.0, help="coverage: a cell with k failures seen so far "
                                  "is worth 1 + this / (1 + k) times its estimated rate (0 = no premium).")
    coverage_power: float = option(3.0, group=_PPO, low=0.0, low_open=True, help="coverage: the policy's target "
                                   "is proportional to (rate x premium) to this power; higher exploits harder.")
    coverage_growth: float = option(2.0, group=_PPO, low=0.0, help="coverage: the power rises to (1 + this) x "
                                    "--coverage-power: all at once during a quiet spell (see "
                                    "--coverage-quiet-window), or linearly by the end of the budget when that is 0 "
                                    "(0 = constant power, the reward before the quiet spell).")
    coverage_quiet_window: int = option(100, group=_PPO, low=0, help="coverage: queries without a new failing cell "
                                        "after which the search exploits what it mapped (power x (1 + "
                                        "--coverage-growth)) until a new cell fails (0 = the power rises with the "
                                        "budget spent instead).")
    coverage_optimism: float = option(0.0, group=_PPO, low=0.0, help="coverage: a cell's rate is read as its "
                                      "posterior mean + this x its posterior std (wide while the cell has few "
                                      "queries), fading linearly to the mean by the end of the budget; maps more "
                                      "cells and ranks them better at a lower hit rate (0 = the mean throughout).")

    @property
    def policy_learning_rate(self) -> float:
        """The learning rate the policy trains with: ``--learning-rate``, else its ``--ppo-reward``'s default."""
        return self.learning_rate or DEFAULT_LEARNING_RATE[self.ppo_reward]


@dataclass
class ConfirmOptions:
    """How the regions found are confirmed on held-out seeds."""

    holdout: float = option(0.25, group=_CONFIRM, low=0.0, high=1.0, high_open=True,
                            help="Share of the seeds kept out of exploration to confirm regions (raised to "
                            "--confirm-seeds when the seeds allow).")
    confirm_top: int = option(5, group=_CONFIRM, low=0, help="Confirm at most this many screened regions on the "
                              "held-out seeds (0 = no confirmation).")
    confirm_seeds: int = option(24, group=_CONFIRM, low=0, help="Hold out at least this many seeds (never more than "
                                "half), balanced across classes, to confirm regions: each is asked once per region. "
                                "24 confirm a region failing 30%% of the time with probability about 0.99 against a "
                                "clean rate near 0, 12 about 0.75; fewer draws a warning with the power.")


@dataclass(init=False)
class ExploreConfig(ConfigTree):
    """Settings of one exploration run (``fade-hub explore --help`` shows each with its default): one section per
    group of options; each option is also read, set and given by its flat name (``ExploreConfig(budget=9).budget``)."""

    model: str = option("", help="Hub model ID (user/name) or local model folder.", cli=False)
    target: TargetOptions = section(TargetOptions)
    remote: RemoteOptions = section(RemoteOptions)
    inputs: SeedOptions = section(SeedOptions)
    concept_space: ConceptOptions = section(ConceptOptions)
    judging: JudgeOptions = section(JudgeOptions)
    search: SearchOptions = section(SearchOptions)
    ppo: PPOOptions = section(PPOOptions)
    confirm: ConfirmOptions = section(ConfirmOptions)
    regions: RegionOptions = section(RegionOptions)
    run: OutputOptions = section(OutputOptions)

    def validate(self) -> None:
        """Check ranges and choices; raise BadConfig naming the option."""
        if not self.model:
            raise BadConfig("no model given: pass a Hub model ID or a local folder as MODEL")
        self.search.check()
        check_ranges(self)
        self.remote.check()
        if self.push_to_hub:
            check_repo_id(self.push_to_hub, "--push-to-hub")
        self.judging.check_llm()
        self.target.check()
        self.judging.check()
        if self.private and self.public:
            raise BadConfig("--private and --public contradict each other; pass one of them")
        for flag, value in (("--seeds", self.seeds), ("--concepts", self.space), ("--label-map", self.label_map)):
            if value and looks_like_path(value) and not Path(value).expanduser().exists():
                raise BadConfig(f"{flag} {value}: no such file or folder; check the path")
        self.search.check_algorithm()

    @property
    def is_remote(self) -> bool:
        """Whether the model is queried over HTTP (--endpoint or --provider) rather than loaded."""
        return self.remote.is_remote

    @property
    def run_dir(self) -> Path:
        """The run directory: ``--output``, else ``fade-runs/MODEL_NAME``."""
        if self.output:
            return Path(self.output)
        return Path("fade-runs") / (Path(self.model.rstrip("/")).name.replace("/", "--") or "run")

    @property
    def user_code_allowed(self) -> bool:
        """Whether user Python named by the space or the judge may be imported."""
        return self.target.user_code_allowed

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> ExploreConfig:
        """Load a YAML config (keys = option names, dashes allowed, flat or by section), then apply overrides."""
        return cls(**{**load_options(cls, path), **overrides})

    @classmethod
    def from_args(cls, args: Any) -> ExploreConfig:
        """The config of ``fade-hub explore``: its ``--config`` file overridden by the flags given."""
        return build_config(cls, args, args.config)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a tree: the model and one dict per section."""
        return to_dict(self)
