"""`fade-hub explore`: find where a model fails and write the run directory (optionally push it)."""

from __future__ import annotations

import argparse

from ..explore.config import ALGORITHMS, ExploreConfig

# Keys of the parsed namespace that are not ExploreConfig fields.
_NOT_CONFIG = {"command", "func", "debug", "config", "list_builtins"}


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `explore` subcommand."""
    p = subparsers.add_parser(
        "explore",
        help="Discover a model's failure modes over a concept space.",
        description=(
            "Wrap MODEL (a Hub model ID or a local folder) as an environment, perturb seed inputs along a "
            "concept space, judge each answer, and search for failures with reinforcement learning (ppo) or a "
            "baseline. Writes a run directory laid out as a Hub dataset."
        ),
        argument_default=argparse.SUPPRESS,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("model", nargs="?", help="Hub model ID (user/name) or local model folder.")
    p.add_argument("--config", default=None, help="YAML file of options (same names as the flags); flags override it.")
    p.add_argument("--list-builtins", action="store_true", default=False,
                   help="List the built-in seed sets and concept spaces, then exit.")
    g = p.add_argument_group("model")
    g.add_argument("--task", help="Override the task detected from the model's metadata "
                   "(image-classification, text-classification, text-generation, summarization, text-to-image).")
    g.add_argument("--revision", help="Model branch, tag or commit sha (the resolved sha is recorded).")
    g.add_argument("--device", help="cpu, cuda, cuda:1 or mps (default: picked by accelerate).")
    g.add_argument("--trust-remote-code", action="store_true",
                   help="Allow the model's own Python code to run (off by default: only for models you trust).")
    g.add_argument("--batch-size", type=int, help="Inputs per model forward pass (default 16).")
    g.add_argument("--max-new-tokens", type=int, help="Generation length for text-generation and summarization.")
    g.add_argument("--num-inference-steps", type=int, help="Denoising steps for text-to-image.")
    g = p.add_argument_group("seed inputs")
    g.add_argument("--seeds", help="Hub dataset ID, local path (image folder LABEL/file.png, .jsonl, .csv, .txt) or "
                   "builtin:NAME (see --list-builtins). Default: a built-in set for generative tasks.")
    g.add_argument("--split", help="Dataset split (default train).")
    g.add_argument("--dataset-config", help="Dataset configuration (subset) name.")
    g.add_argument("--num-seeds", type=int, help="Use at most this many seed inputs.")
    g.add_argument("--image-column", help="Dataset column holding images.")
    g.add_argument("--text-column", help="Dataset column holding texts or prompts.")
    g.add_argument("--label-column", help="Dataset column holding labels.")
    g.add_argument("--reference-column", help="Dataset column holding reference outputs (e.g. summaries).")
    g.add_argument("--label-map", help="JSON/YAML file mapping dataset labels to the model's label names.")
    g = p.add_argument_group("concept space and judge")
    g.add_argument("--space", help="Concept-space YAML file or builtin:NAME (default: the modality's built-in).")
    g.add_argument("--judge", help="Text generation: a Hub text-classification model ID used as the judge "
                   "(or 'rouge' / 'label' / 'clip' to pick a built-in judge explicitly).")
    g.add_argument("--judge-label", help="The judge model's label that counts as a failure (e.g. toxic).")
    g.add_argument("--judge-keywords", type=_csv, help="Comma-separated words whose presence in the output is a failure.")
    g.add_argument("--judge-regex", help="A regular expression whose match in the output is a failure.")
    g.add_argument("--judge-threshold", type=float,
                   help="Failure threshold: judge score (classifier), ROUGE-L (summarization) or CLIP cosine (text-to-image).")
    g.add_argument("--clip", help="Text-to-image: CLIP model ID scoring image-prompt similarity.")
    g = p.add_argument_group("exploration")
    g.add_argument("--algorithm", choices=ALGORITHMS, help="Search algorithm (default ppo).")
    g.add_argument("--mode", choices=("single", "sequential"),
                   help="single: one cell per query (macroscopic); sequential: cumulative small moves per seed (microscopic).")
    g.add_argument("--budget", type=int, help="Model queries to spend exploring (default 500; grid: every cell x seed).")
    g.add_argument("--seed", type=int, help="Random seed: the same seed gives the same records on CPU.")
    g.add_argument("--epsilon", type=float, help="epsilon-greedy: probability of a random cell (default 0.1).")
    g.add_argument("--max-steps", type=int, help="sequential: steps per episode before it is cut (default 8).")
    g.add_argument("--step-penalty", type=float, help="sequential: alpha, reward lost per step (default 0.05).")
    g.add_argument("--severity-weight", type=float, help="Reward = 1 per failure + this x severity (default 0).")
    g.add_argument("--force", action="store_true", help="Let grid run past its size limit or be cut at --budget.")
    g = p.add_argument_group("ppo (trl GRPOTrainer with PPO's clipped surrogate)")
    g.add_argument("--learning-rate", type=float, help="Policy learning rate (default 1e-3).")
    g.add_argument("--num-generations", type=int, help="Completions per group for group-relative advantages (default 8).")
    g.add_argument("--num-iterations", type=int, help="Optimisation passes per batch (PPO reuse, default 4).")
    g.add_argument("--clip-epsilon", type=float, help="PPO clipping range (default 0.2).")
    g.add_argument("--beta", type=float, help="KL penalty to the initial policy; keeps coverage (default 0).")
    g.add_argument("--entropy-coef", type=float, help="Entropy bonus; keeps the policy from collapsing on one cell (default 0.05).")
    g = p.add_argument_group("confirmation on held-out seeds")
    g.add_argument("--holdout", type=float, help="Fraction of seeds kept out of exploration (default 0.25).")
    g.add_argument("--confirm-top", type=int, help="Re-evaluate this many top cells on held-out seeds (default 5; 0 = off).")
    g.add_argument("--confirm-seeds", type=int, help="Held-out seeds per confirmed cell (default 16).")
    g = p.add_argument_group("output")
    g.add_argument("--output", help="Run directory (default fade-runs/MODEL_NAME).")
    g.add_argument("--resume", action="store_true", help="Continue the run in --output where it stopped.")
    g.add_argument("--push-to-hub", metavar="REPO_ID", help="Push the finished run as a dataset repo.")
    g.add_argument("--private", action="store_true", help="Create the pushed dataset repo as private.")
    g.add_argument("--no-progress", dest="show_progress", action="store_false", help="Hide the progress bar.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the config from YAML and flags, explore, report where the run is."""
    if args.list_builtins:
        return list_builtins()
    overrides = {k: v for k, v in vars(args).items() if k not in _NOT_CONFIG}
    config = ExploreConfig.from_yaml(args.config, **overrides) if args.config else ExploreConfig(**overrides)
    from ..explore.runner import explore
    from ..landscape import failure_modes, format_mode_table
    from ..perturb import ConceptSpace

    result = explore(config)
    print(f"run: {result.path}  ({result.meta['queries']} queries, {result.meta['failures']} failures)")
    import pandas as pd

    landscape = pd.read_parquet(result.path / "data" / "landscape.parquet")
    print(format_mode_table(failure_modes(landscape, top_k=10), ConceptSpace.from_dict(result.meta["space"])))
    if config.push_to_hub:
        from ..hub import push_run

        url = push_run(result.path, config.push_to_hub, private=config.private)
        print(f"pushed: {url}")
    return 0


def list_builtins() -> int:
    """Print the built-in seed sets and concept spaces."""
    from ..perturb import list_builtin_spaces
    from ..seeds import list_builtin_seeds

    print("seed sets (--seeds builtin:NAME):")
    for name, text in list_builtin_seeds().items():
        print(f"  {name:<20} {text}")
    print("concept spaces (--space builtin:NAME):")
    for name, text in list_builtin_spaces().items():
        print(f"  {name:<20} {text}")
    return 0
