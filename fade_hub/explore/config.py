"""ExploreConfig: every setting of an exploration run, loadable from YAML and overridable by CLI flags."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import BadConfig

ALGORITHMS = ("ppo", "random", "epsilon-greedy", "grid")
# grid runs above this many queries only with --force
GRID_LIMIT = 20_000


@dataclass
class ExploreConfig:
    """Settings of one exploration run (see ``fade-hub explore --help`` for each field)."""

    model: str = ""
    task: str | None = None
    revision: str | None = None
    device: str | None = None
    trust_remote_code: bool = False
    batch_size: int = 16
    max_new_tokens: int | None = None
    num_inference_steps: int | None = None
    # seeds
    seeds: str | None = None
    split: str = "train"
    dataset_config: str | None = None
    num_seeds: int | None = None
    image_column: str | None = None
    text_column: str | None = None
    label_column: str | None = None
    reference_column: str | None = None
    label_map: str | None = None
    # concept space and judge
    space: str | None = None
    judge: str | None = None
    judge_label: str | None = None
    judge_keywords: list[str] = field(default_factory=list)
    judge_regex: str | None = None
    judge_threshold: float | None = None
    clip: str | None = None
    # exploration
    algorithm: str = "ppo"
    mode: str = "single"
    budget: int | None = None
    seed: int = 0
    epsilon: float = 0.1
    max_steps: int = 8
    step_penalty: float = 0.05
    severity_weight: float = 0.0
    force: bool = False
    # ppo (trl GRPO with PPO's clipped surrogate)
    learning_rate: float = 1e-3
    num_generations: int = 8
    num_iterations: int = 4
    clip_epsilon: float = 0.2
    beta: float = 0.0
    entropy_coef: float = 0.05
    # confirmation on held-out seeds
    holdout: float = 0.25
    confirm_top: int = 5
    confirm_seeds: int = 16
    # output
    output: str | None = None
    resume: bool = False
    push_to_hub: str | None = None
    private: bool = False
    show_progress: bool = True

    def validate(self) -> None:
        """Check ranges and choices; raise BadConfig naming the option."""
        if not self.model:
            raise BadConfig("no model given: pass a Hub model ID or a local folder as MODEL")
        if self.algorithm not in ALGORITHMS:
            raise BadConfig(f"--algorithm {self.algorithm!r} is not one of {', '.join(ALGORITHMS)}")
        if self.budget is not None and self.budget < 1:
            raise BadConfig(f"--budget must be a positive number of model queries, got {self.budget}")
        if self.batch_size < 1:
            raise BadConfig(f"--batch-size must be >= 1, got {self.batch_size}")
        if not 0.0 <= self.holdout < 1.0:
            raise BadConfig(f"--holdout must be a fraction in [0, 1), got {self.holdout}")
        if self.confirm_top < 0 or self.confirm_seeds < 0:
            raise BadConfig("--confirm-top and --confirm-seeds must be >= 0")
        if self.num_generations < 2:
            raise BadConfig(f"--num-generations must be >= 2 for group-relative advantages, got {self.num_generations}")
        # checked here too, not only by the explorers, so that a bad value fails before the run directory exists
        if self.algorithm == "grid" and self.mode != "single":
            raise BadConfig("--algorithm grid only runs in --mode single (it enumerates cells, not trajectories)")
        if not 0.0 <= self.epsilon <= 1.0:
            raise BadConfig(f"--epsilon must be in [0, 1], got {self.epsilon}")
        if self.learning_rate <= 0 or self.clip_epsilon <= 0 or self.num_iterations < 1:
            raise BadConfig("--learning-rate and --clip-epsilon must be > 0 and --num-iterations >= 1")
        if self.beta < 0 or self.entropy_coef < 0:
            raise BadConfig("--beta and --entropy-coef must be >= 0")

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> "ExploreConfig":
        """Load a YAML config (keys = field names, dashes allowed), then apply overrides."""
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise BadConfig(f"config file {path} not found") from None
        except yaml.YAMLError as err:
            raise BadConfig(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise BadConfig(f"config file {path} must be a mapping of option: value")
        data = {str(k).replace("-", "_"): v for k, v in data.items()}
        field_types = {f.name: str(f.type) for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(field_types))
        if unknown:
            raise BadConfig(f"config file {path}: unknown option {unknown[0]!r}; see fade-hub explore --help")
        data = {key: _coerce(path, key, value, field_types[key]) for key, value in data.items()}
        data.update(overrides)
        if isinstance(data.get("judge_keywords"), str):
            data["judge_keywords"] = [w.strip() for w in data["judge_keywords"].split(",") if w.strip()]
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the settings."""
        return dataclasses.asdict(self)


def _coerce(path: str | Path, key: str, value: Any, type_name: str) -> Any:
    """YAML 1.1 reads ``3e-3`` as a string: turn numbers-as-text into the field's number type."""
    base = type_name.split("|")[0].strip()
    if value is None or base not in ("int", "float") or not isinstance(value, str):
        return value
    try:
        return int(value) if base == "int" else float(value)
    except ValueError:
        raise BadConfig(f"config file {path}: {key} must be a number, got {value!r}") from None
