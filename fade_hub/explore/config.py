"""ExploreConfig: every setting of an exploration run; its fields are the YAML keys and the ``explore`` flags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BadConfig
from ..options import MAX_SEED, build_config, check_ranges, load_options, option, to_dict
from ..choices import DTYPE_CHOICES, GENERATION_ROUTES
from ..paths import check_repo_id, looks_like_path
from ..tasks import TASK_NAMES
from .registry import EXPLORERS, MODES

# grid runs above this many queries only with --force
GRID_LIMIT = 20_000
PPO_REWARDS = ("regions", "coverage", "failures")
_MODEL, _SEEDS, _JUDGE = "model", "seed inputs", "concept space and judge"
_SEARCH, _PPO, _CONFIRM, _OUT = "exploration", "ppo (trl GRPOTrainer with PPO's clipped surrogate)", \
    "confirmation on held-out seeds", "output"
_REMOTE = "model served elsewhere (an endpoint URL or an Inference Provider; nothing is downloaded)"


@dataclass
class ExploreConfig:
    """Settings of one exploration run (``fade-hub explore --help`` shows each with its default)."""

    model: str = option("", help="Hub model ID (user/name) or local model folder.", cli=False)
    # the model
    task: str | None = option(None, group=_MODEL, choices=TASK_NAMES,
                              help="Override the task detected from the model's metadata.")
    revision: str | None = option(None, group=_MODEL, help="Model branch, tag or commit sha (the resolved sha is recorded).")
    device: str | None = option(None, group=_MODEL, help="auto, cpu, cuda, cuda:N or mps. auto (the default) picks the "
                                "best device and, when the model does not fit that GPU, spreads it over the GPUs and "
                                "CPU memory with accelerate (device_map='auto'); a named device is used as given.")
    dtype: str | None = option(None, group=_MODEL, choices=DTYPE_CHOICES, help="Weights dtype: auto (the "
                               "checkpoint's), float16, bfloat16 or float32 (default: float32).")
    trust_remote_code: bool = option(False, group=_MODEL, help="Allow the model's own Python code to run (off by "
                                     "default: only for models you trust). Also allows --allow-user-code.")
    allow_user_code: bool = option(False, group=_MODEL, help="Import your own Python named by the concept space "
                                   "(op: package.module:function) or by --judge package.module:Class.")
    batch_size: int | str = option(16, group=_MODEL, low=1, auto=True, help="Inputs per model forward pass, or auto: "
                                   "the largest batch that fits the device (halved on out-of-memory). With "
                                   "--endpoint/--provider: queries handed to the endpoint at once; 4 x --concurrency "
                                   "or more keeps the requests flowing.")
    max_new_tokens: int | None = option(None, group=_MODEL, low=1,
                                        help="Generation length for text-generation and summarization.")
    num_inference_steps: int | None = option(None, group=_MODEL, low=1, help="Denoising steps for text-to-image.")
    system_prompt: str | None = option(None, group=_MODEL, metavar="TEXT", help="Text generation: a system message "
                                       "sent before every prompt through the model's chat template (prepended as "
                                       "plain text when the model has none).")
    raw_prompts: bool = option(False, group=_MODEL, help="Text generation: send prompts as plain text, not through "
                               "the model's chat template (used by default when the tokenizer has one).")
    # model served elsewhere
    endpoint: str | None = option(None, group=_REMOTE, metavar="URL", help="Query MODEL at this URL instead of "
                                  "loading it: a TGI, vLLM or TEI server, an Inference Endpoint, or an "
                                  "OpenAI-compatible base URL ending in /v1. Recorded without user info or query.")
    endpoint_token: str | None = option(None, group=_REMOTE, metavar="TOKEN", help="Bearer token sent to --endpoint "
                                        "and nowhere else (default: $FADE_HUB_ENDPOINT_TOKEN, which keeps it out of "
                                        "the process list); never recorded. Without it an endpoint gets HF_TOKEN "
                                        "only if it is a Hugging Face host (the Hub at HF_ENDPOINT, "
                                        "*.endpoints.huggingface.cloud, router.huggingface.co), else no token; "
                                        "--provider uses HF_TOKEN. No token goes over plain http to another machine.")
    provider: str | None = option(None, group=_REMOTE, metavar="NAME", help="Query MODEL through this Hugging Face "
                                  "Inference Provider (e.g. together, fal-ai, hf-inference, or auto), with HF_TOKEN.")
    concurrency: int = option(8, group=_REMOTE, low=1, help="Requests in flight at once.")
    max_retries: int = option(5, group=_REMOTE, low=0, help="Retries of a request answered 429/5xx, timed out or "
                              "dropped (after Retry-After, else an exponential back-off) before the run stops; "
                              "answered queries are kept for --resume.")
    request_timeout: float = option(120.0, group=_REMOTE, low=0.0, low_open=True, help="Seconds one answer may take, "
                                    "body included (per attempt).")
    labels: list[str] = option(group=_REMOTE, csv=True, default_factory=list, help="A remote classifier's class names "
                               "in id order (default: the model's config on the Hub, the server's /info, else the "
                               "names of a first probe answer in alphabetical order).")
    generation_route: str = option("auto", group=_REMOTE, choices=GENERATION_ROUTES, help="Text generation: chat "
                                   "(messages to chat_completion; the server applies the model's chat template), "
                                   "text-generation (the raw prompt), or auto: chat for --provider or a URL ending "
                                   "in /v1, else text-generation.")
    # seeds
    seeds: str | None = option(None, group=_SEEDS, help="Hub dataset ID, local path (image folder LABEL/file.png, "
                               ".jsonl, .csv, .txt) or builtin:NAME (see --list-builtins). Default: a built-in set "
                               "for text tasks.")
    split: str = option("train", group=_SEEDS, help="Dataset split.")
    dataset_config: str | None = option(None, group=_SEEDS, help="Dataset configuration (subset) name.")
    num_seeds: int | None = option(None, group=_SEEDS, low=1, help="Use at most this many seed inputs.")
    image_column: str | None = option(None, group=_SEEDS, help="Dataset column holding images.")
    text_column: str | None = option(None, group=_SEEDS, help="Dataset column holding texts or prompts.")
    label_column: str | None = option(None, group=_SEEDS, help="Dataset column holding labels.")
    reference_column: str | None = option(None, group=_SEEDS,
                                          help="Dataset column holding reference outputs (e.g. summaries).")
    label_map: str | None = option(None, group=_SEEDS,
                                   help="JSON/YAML file mapping dataset labels to the model's label names.")
    # concept space and judge
    space: str | None = option(None, group=_JUDGE, flag="--concepts", renamed_from=("--space",), metavar="CONCEPTS",
                               help="Concept space: a YAML file or builtin:NAME (default: the task's built-in).")
    judge: str | None = option(None, group=_JUDGE, help="A Hub model ID used as the judge: a text-classification "
                               "model for generated text, an image classifier for text-to-image (the right label is "
                               "the one the prompt names); a built-in judge by name (rouge, label, clip), or your "
                               "own package.module:Class (with --allow-user-code).")
    judge_label: str | None = option(None, group=_JUDGE,
                                     help="The judge model's label that counts as a failure (e.g. toxic).")
    judge_keywords: list[str] = option(group=_JUDGE, csv=True, default_factory=list,
                                       help="Comma-separated words whose presence in the output is a failure.")
    judge_regex: str | None = option(None, group=_JUDGE, help="A regular expression whose match in the output is a failure.")
    judge_threshold: float | None = option(None, group=_JUDGE, low=0.0, high=1.0, help="Failure threshold: judge score "
                                           "(classifier), share of ROUGE-L kept (summarization), CLIP cosine "
                                           "(text-to-image) or, with an image-classifier judge, the least probability "
                                           "of the label the prompt names (default: its top class must be it).")
    clip: str | None = option(None, group=_JUDGE, help="Text-to-image: CLIP model ID scoring image-prompt similarity.")
    judge_llm: str | None = option(None, group=_JUDGE, metavar="MODEL_ID", help="Judge text with a chat model and a "
                                   "rubric (--judge-rubric): loaded here on --judge-device, or the model "
                                   "--judge-endpoint / --judge-provider serves. It answers JSON verdicts with a "
                                   "reason, greedily, cached by (rubric, judge, input, answer).")
    judge_endpoint: str | None = option(None, group=_JUDGE, metavar="URL", help="The LLM judge is served at this URL "
                                        "(a TGI, vLLM or OpenAI-compatible chat server); with the same retries and "
                                        "--concurrency as --endpoint.")
    judge_provider: str | None = option(None, group=_JUDGE, metavar="NAME", help="The LLM judge (--judge-llm) is "
                                        "asked through this Inference Provider, with HF_TOKEN.")
    judge_endpoint_token: str | None = option(None, group=_JUDGE, metavar="TOKEN", help="Bearer token sent to "
                                              "--judge-endpoint and nowhere else (default: $FADE_HUB_JUDGE_TOKEN); "
                                              "never recorded. HF_TOKEN goes to Hugging Face hosts only.")
    judge_rubric: str | None = option(None, group=_JUDGE, metavar="NAME|FILE", help="What the LLM judge calls a "
                                      "failure: a built-in rubric (harmful, refusal, off-task for text generation; "
                                      "unfaithful, missing-key-point for summaries) or a YAML file with question, "
                                      "fail, pass and optional examples (default: harmful, or unfaithful).")
    judge_device: str | None = option(None, group=_JUDGE, help="Where a local LLM judge runs (default: as --device).")
    judge_audit: int = option(0, group=_JUDGE, low=0, help="Mark this many judged answers, half failing and half "
                              "passing, for reviewers to check (run.json judge_audit), so that the judge's agreement "
                              "with them is measured on passes too.")
    sampling: bool = option(False, group=_MODEL, help="Text generation: sample answers as deployed (--temperature, "
                            "--top-p) instead of greedily; each (cell, seed) pair then stands for the share of its "
                            "--samples-per-query answers that failed.")
    temperature: float = option(1.0, group=_MODEL, low=0.0, low_open=True, help="With --sampling: temperature.")
    top_p: float = option(1.0, group=_MODEL, low=0.0, high=1.0, low_open=True, help="With --sampling: nucleus top-p.")
    samples_per_query: int = option(1, group=_MODEL, low=1, help="With --sampling: answers asked per (cell, seed) "
                                    "pair; all of them count as one seed, failing on the share of them that fail.")
    # exploration
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
    # ppo
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
    # confirmation
    holdout: float = option(0.25, group=_CONFIRM, low=0.0, high=1.0, high_open=True,
                            help="Share of the seeds kept out of exploration to confirm regions (raised to "
                            "--confirm-seeds when the seeds allow).")
    confirm_top: int = option(5, group=_CONFIRM, low=0, help="Confirm at most this many screened regions on the "
                              "held-out seeds (0 = no confirmation).")
    confirm_seeds: int = option(24, group=_CONFIRM, low=0, help="Hold out at least this many seeds (never more than "
                                "half), balanced across classes, to confirm regions: each is asked once per region. "
                                "24 confirm a region failing 30%% of the time with probability about 0.99 against a "
                                "clean rate near 0, 12 about 0.75; fewer draws a warning with the power.")
    min_excess: float = option(0.05, group=_CONFIRM, low=0.0, high=1.0, high_open=True, help="A region or cell is a "
                               "failure mode only when the lower 95%% bound of its failure rate above the clean rate "
                               "is at least this.")
    max_regions: int = option(5, group=_CONFIRM, low=1, help="Report at most this many disjoint failure regions.")
    # output
    output: str | None = option(None, group=_OUT, help="Run directory (default fade-runs/MODEL_NAME).")
    resume: bool = option(False, group=_OUT, help="Continue the run in --output where it stopped.")
    push_to_hub: str | None = option(None, group=_OUT, metavar="REPO_ID", help="Push the finished run as a dataset repo.")
    private: bool = option(False, group=_OUT, help="Create the pushed dataset repo as private.")
    public: bool = option(False, group=_OUT, help="Push in public even when the model or the seeds are private or "
                          "gated on the Hub (such runs are pushed private otherwise).")
    show_progress: bool = option(True, group=_OUT, flag="--no-progress", help="Hide the progress bar.")

    def validate(self) -> None:
        """Check ranges and choices; raise BadConfig naming the option."""
        if not self.model:
            raise BadConfig("no model given: pass a Hub model ID or a local folder as MODEL")
        if self.algorithm not in EXPLORERS:
            raise BadConfig(f"--algorithm {self.algorithm!r} is not one of {', '.join(EXPLORERS)}")
        if self.mode not in MODES:
            raise BadConfig(f"--episodes {self.mode!r} is not one of {', '.join(MODES)}")
        check_ranges(self)
        if self.endpoint and self.provider:
            raise BadConfig("--endpoint and --provider exclude each other: an endpoint URL is called directly")
        if self.endpoint and not self.endpoint.startswith(("http://", "https://")):
            raise BadConfig("--endpoint must be an http:// or https:// URL")
        if self.endpoint_token and not self.endpoint:
            raise BadConfig("--endpoint-token is sent to --endpoint, and none is given (--provider uses HF_TOKEN)")
        if self.push_to_hub:
            check_repo_id(self.push_to_hub, "--push-to-hub")
        self.check_judge_llm()
        if self.samples_per_query > 1 and not self.sampling:
            raise BadConfig(f"--samples-per-query {self.samples_per_query} asks a greedy model the same question "
                            "again: pass --sampling")
        if self.clip and self.judge not in (None, "clip"):
            raise BadConfig(f"--clip names the CLIP judge and --judge {self.judge} another; pass one of them")
        if self.private and self.public:
            raise BadConfig("--private and --public contradict each other; pass one of them")
        for flag, value in (("--seeds", self.seeds), ("--concepts", self.space), ("--label-map", self.label_map)):
            if value and looks_like_path(value) and not Path(value).expanduser().exists():
                raise BadConfig(f"{flag} {value}: no such file or folder; check the path")
        # checked here too, not only by the explorers, so that a bad value fails before the run directory exists
        if self.mode not in EXPLORERS[self.algorithm].modes:
            raise BadConfig(f"--algorithm {self.algorithm} only runs in --episodes {' or '.join(EXPLORERS[self.algorithm].modes)}")
        if self.stop_when_converged and not EXPLORERS[self.algorithm].stops_early:
            stopping = " or ".join(name for name, spec in EXPLORERS.items() if spec.stops_early)
            raise BadConfig(f"--stop-when-converged needs --algorithm {stopping}; {self.algorithm} spends the whole budget")

    def check_judge_llm(self) -> None:
        """The LLM judge's flags agree with each other and with the other judges; a rubric file reads."""
        served = self.judge_endpoint or self.judge_provider
        if not (self.judge_llm or served):
            for flag, value in (("--judge-rubric", self.judge_rubric), ("--judge-endpoint-token", self.judge_endpoint_token)):
                if value:
                    raise BadConfig(f"{flag} is for the LLM judge: pass --judge-llm MODEL_ID or --judge-endpoint URL")
            return
        other = [flag for flag, value in (("--judge-keywords", self.judge_keywords), ("--judge-regex", self.judge_regex),
                                          ("--judge", self.judge), ("--clip", self.clip)) if value]
        if other:
            raise BadConfig(f"--judge-llm/--judge-endpoint and {other[0]} name two judges; pass one of them")
        if self.judge_endpoint and self.judge_provider:
            raise BadConfig("--judge-endpoint and --judge-provider exclude each other")
        if self.judge_provider and not self.judge_llm:
            raise BadConfig("--judge-provider needs --judge-llm MODEL_ID: the model the provider serves")
        if self.judge_endpoint and not self.judge_endpoint.startswith(("http://", "https://")):
            raise BadConfig("--judge-endpoint must be an http:// or https:// URL")
        if self.judge_endpoint_token and not self.judge_endpoint:
            raise BadConfig("--judge-endpoint-token is sent to --judge-endpoint, and none is given")
        if self.judge_rubric:
            from ..judges.rubric import load_rubric

            load_rubric(self.judge_rubric)

    @property
    def is_remote(self) -> bool:
        """Whether the model is queried over HTTP (--endpoint or --provider) rather than loaded."""
        return bool(self.endpoint or self.provider)

    @property
    def run_dir(self) -> Path:
        """The run directory: ``--output``, else ``fade-runs/MODEL_NAME``."""
        if self.output:
            return Path(self.output)
        return Path("fade-runs") / (Path(self.model.rstrip("/")).name.replace("/", "--") or "run")

    @property
    def user_code_allowed(self) -> bool:
        """Whether user Python named by the space or the judge may be imported."""
        return self.allow_user_code or self.trust_remote_code

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> ExploreConfig:
        """Load a YAML config (keys = field names, dashes allowed), then apply overrides."""
        return cls(**{**load_options(cls, path), **overrides})

    @classmethod
    def from_args(cls, args: Any) -> ExploreConfig:
        """The config of ``fade-hub explore``: its ``--config`` file overridden by the flags given."""
        return build_config(cls, args, args.config)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the settings."""
        return to_dict(self)
