"""Learn where a model fails: train a :class:`Policy` with trl's ``GRPOTrainer`` against a query budget.

With ``num_iterations > 1`` and ``epsilon``, GRPO optimises PPO's clipped surrogate objective, using
the reward of each completion relative to its group (``num_generations`` completions of the same
prompt) in place of a learned critic. The world is reached only through two callbacks:

* ``evaluate(actions, contexts) -> rewards``: queries the model under test; one reward per action.
* ``budget_left() -> int``: model queries the caller still allows.

and, for a reward that a model of the failures computes (model-based RL, as in Dyna), a third:

* ``imagine(actions, contexts) -> rewards``: the reward of actions *not* asked of the model, from what the caller's
  failure model predicts after the queries of the batch. Only ``queried_per_group`` completions of each group are
  then asked of the model (the first of the group) and all of them are scored, so that the group-relative
  advantage compares many cells for the price of a few queries and the policy follows the model's values closely.

Each optimizer-step batch holds ``num_generations * prompts_per_step`` completions and is reused for
``num_iterations`` optimizer steps. A new batch is generated only while ``budget_left()`` covers its
worst-case cost (one query per asked action in single mode, ``max_steps`` per trajectory in sequential
mode); what is left after that is spent on actions sampled from the final policy, without training.

Two knobs keep the policy from collapsing onto the first failures it finds:

* ``entropy_coef`` (soft / maximum-entropy RL): every training reward gets ``entropy_coef * -log pi(a)``,
  the exact log-probability of the sampled action under the sampling policy. Its expectation is
  ``entropy_coef`` times the policy's entropy, so the policy gradient maximises
  ``E[reward] + entropy_coef * H(pi)``. Only the training signal changes; ``evaluate`` sees nothing.
* ``beta``: trl's KL penalty to the reference model, the initial near-uniform policy saved in
  ``policy.folder`` (trl reloads it from ``config._name_or_path``).

trl's own ``GRPOConfig.entropy_coef`` is not used: it measures the entropy of the unrestricted
next-token softmax, including tokens the sampler never draws, not the entropy of the sampled actions.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from transformers import PrinterCallback, TrainerCallback

from fade_hub.errors import BadConfig
from fade_hub.options import check_ranges

from .config import PPOOptions
from .policy import Action, Policy, PolicyConfig

logger = logging.getLogger(__name__)

Evaluate = Callable[[list, list], list[float]]


def _search_defaults() -> PPOOptions:
    """The ``ppo`` options of a GRPO search given none: groups of 8, the ``failures`` reward's learning rate."""
    return PPOOptions(num_generations=8, ppo_reward="failures")


@dataclass
class GRPOSearchConfig:
    """Hyper-parameters of the GRPO search: the ``ppo`` explorer's options (``PPOOptions``: the learning rate, the
    group size ``num_generations``, ``num_iterations``, ``clip_epsilon`` (trl's ``epsilon``), ``beta``,
    ``entropy_coef`` and ``queried_per_group``, asked of the model when a model of the failures scores the rest),
    and what only the search sets."""

    ppo: PPOOptions = field(default_factory=_search_defaults)
    prompts_per_step: int = 4  # groups per optimizer step: batch = num_generations * prompts_per_step
    temperature: float = 1.0  # the policy's sampling temperature
    # trl's advantage scaling. "none": reward minus group mean, so the objective is exactly E[r] + c·H;
    # "group" divides by the group's std, which blows the entropy bonus up in groups without failures
    scale_rewards: str = "none"
    policy: PolicyConfig = field(default_factory=PolicyConfig)

    @property
    def batch_size(self) -> int:
        """Completions per generated batch."""
        return self.ppo.num_generations * self.prompts_per_step

    def queried(self, model_based: bool) -> int:
        """Completions of each group asked of the model: ``queried_per_group`` when a model of the failures scores
        the others (``model_based``), else all of them."""
        groups = self.ppo.num_generations
        return min(self.ppo.queried_per_group, groups) if model_based else groups

    def validate(self) -> None:
        """Raise BadConfig on out-of-range values (the ``ppo`` options' own ranges, flag named)."""
        check_ranges(self.ppo)
        if self.prompts_per_step < 1:
            raise BadConfig("prompts_per_step must be >= 1")
        if self.temperature <= 0:
            raise BadConfig("temperature must be > 0")
        if self.scale_rewards not in ("none", "group", "batch"):
            raise BadConfig(f"scale_rewards must be 'none', 'group' or 'batch', got {self.scale_rewards!r}")


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op torch threads, then restore the previous number."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _Spender:
    """Calls ``evaluate`` (with the caller's torch threads) and reports the queries it spent to ``progress``."""

    def __init__(self, evaluate: Evaluate, budget_left: Callable[[], int], progress: Callable[[int], None] | None):
        self.evaluate = evaluate
        self.budget_left = budget_left
        self.progress = progress
        self.threads = torch.get_num_threads()

    def __call__(self, actions: list[Action], contexts: list[str | None]) -> np.ndarray:
        before = self.budget_left()
        with _torch_threads(self.threads):
            rewards = list(self.evaluate(actions, contexts))
        if len(rewards) != len(actions):
            raise ValueError(f"evaluate returned {len(rewards)} rewards for {len(actions)} actions")
        if self.progress is not None:
            self.progress(before - self.budget_left())
        return np.asarray(rewards, dtype=np.float64)


class _StopWhenBudgetShort(TrainerCallback):
    """Stops training before a generation step whose batch the budget cannot cover."""

    def __init__(self, budget_left: Callable[[], int], cost: int, every: int):
        self.budget_left = budget_left
        self.cost = cost
        self.every = every

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.every == 0 and self.budget_left() < self.cost:
            control.should_training_stop = True
        return control


def _trajectory_cost(policy: Policy) -> int:
    return 1 if policy.mode == "single" else policy.max_steps


def run_grpo(
    policy: Policy,
    contexts: Sequence[str | None],
    evaluate: Evaluate,
    budget_left: Callable[[], int],
    config: GRPOSearchConfig,
    seed: int,
    output_dir: Path,
    progress: Callable[[int], None] | None = None,
    imagine: Callable[[list, list], list[float]] | None = None,
) -> None:
    """Train ``policy`` in place with GRPO on ``evaluate``'s rewards, then spend the leftover budget sampling.

    ``contexts`` are cycled over the prompts (each must be one of ``policy.contexts``, or None).
    ``progress(n)`` is called after every evaluation with the number of queries it spent. With ``imagine``, only
    ``config.ppo.queried_per_group`` completions of each group are asked of the model (see module doc).
    """
    config.validate()
    if not contexts:
        raise BadConfig("run_grpo needs at least one context (use [None] for the no-context prompt)")
    contexts = list(contexts)
    prompt_texts = [policy.prompt(c) for c in contexts]
    spend = _Spender(evaluate, budget_left, progress)
    batch_cost = config.queried(imagine is not None) * config.prompts_per_step * _trajectory_cost(policy)
    # sequential trajectories may stop early, so their batches may cost less: the callback decides when to stop
    generations = budget_left() // (batch_cost if policy.mode == "single" else config.batch_size)
    # the policy is tiny: one thread is fastest, and several spin-wait badly on a busy machine
    with _torch_threads(1):
        if budget_left() >= batch_cost:
            _train(policy, contexts, prompt_texts, spend, batch_cost, generations, config, seed, Path(output_dir),
                   imagine)
        policy.model.eval()
        _spend_leftover(policy, contexts, spend, config, np.random.default_rng([seed, 1]))


def _train(
    policy: Policy,
    contexts: list[str | None],
    prompt_texts: list[str],
    spend: _Spender,
    batch_cost: int,
    generations: int,
    config: GRPOSearchConfig,
    seed: int,
    output_dir: Path,
    imagine: Callable[[list, list], list[float]] | None,
) -> None:
    """Run GRPOTrainer for at most ``generations`` generated batches."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    ppo, queried = config.ppo, config.queried(imagine is not None)

    def reward(prompts, completions, completion_ids, context_id, **_) -> list[float]:
        actions = [policy.decode(ids) for ids in completion_ids]
        batch_contexts = [contexts[i] for i in context_id]
        asked = [i for i in range(len(actions)) if i % ppo.num_generations < queried]
        rewards = np.zeros(len(actions))
        rewards[asked] = spend([actions[i] for i in asked], [batch_contexts[i] for i in asked])
        rest = [i for i in range(len(actions)) if i % ppo.num_generations >= queried]
        if rest:  # scored by the caller's failure model, after the queries above
            rewards[rest] = imagine([actions[i] for i in rest], [batch_contexts[i] for i in rest])
        if ppo.entropy_coef > 0:
            log_pi = policy.log_probs(batch_contexts, completion_ids, config.temperature)
            rewards = rewards - ppo.entropy_coef * log_pi
        return rewards.tolist()

    # contexts cycle so that every epoch of the (unshuffled) dataset visits each one prompts_per_step times
    context_ids = [i % len(contexts) for i in range(config.prompts_per_step * len(contexts))]
    dataset = Dataset.from_dict({"prompt": [prompt_texts[i] for i in context_ids], "context_id": context_ids})
    args = GRPOConfig(
        output_dir=str(output_dir),
        seed=seed,
        data_seed=seed,
        use_cpu=True,
        bf16=False,
        fp16=False,
        activation_checkpointing=False,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        learning_rate=ppo.policy_learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=1,
        num_generations=ppo.num_generations,
        num_iterations=ppo.num_iterations,
        epsilon=ppo.clip_epsilon,
        beta=ppo.beta,
        temperature=config.temperature,
        top_k=0,
        top_p=1.0,
        scale_rewards=config.scale_rewards,
        max_completion_length=policy.completion_length,
        mask_truncated_completions=False,
        generation_kwargs=policy.generation_kwargs(),
        shuffle_dataset=False,
        remove_unused_columns=False,
        max_steps=generations * ppo.num_iterations,
        dataloader_num_workers=0,
    )
    with warnings.catch_warnings():
        # trl 1.16 reads transformers' deprecated `is_gradient_checkpointing`; nothing for our users to act on
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        trainer = GRPOTrainer(
            model=policy.model,
            reward_funcs=reward,
            args=args,
            train_dataset=dataset,
            processing_class=policy.tokenizer,
            callbacks=[_StopWhenBudgetShort(spend.budget_left, batch_cost, ppo.num_iterations)],
        )
        trainer.remove_callback(PrinterCallback)  # disable_tqdm swaps the bar for a printer of the train metrics
        trainer.train()
    logger.info("GRPO: %d optimizer steps", trainer.state.global_step)


def _spend_leftover(
    policy: Policy, contexts: list[str | None], spend: _Spender, config: GRPOSearchConfig, rng: np.random.Generator
) -> None:
    """Spend what the budget still allows on actions sampled from the policy, without training."""
    cost = _trajectory_cost(policy)
    turn = 0
    while (left := spend.budget_left()) > 0:
        n = min(config.batch_size, left // cost) or 1
        batch_contexts = [contexts[(turn + i) % len(contexts)] for i in range(n)]
        turn += n
        draws = {
            ctx: iter(policy.sample(ctx, batch_contexts.count(ctx), rng, config.temperature))
            for ctx in dict.fromkeys(batch_contexts)
        }
        actions = [next(draws[ctx]) for ctx in batch_contexts]
        if policy.mode == "sequential" and left < cost:
            actions = [action[:left] for action in actions]
        spend(actions, batch_contexts)
        if spend.budget_left() >= left:
            logger.warning("evaluate spent no budget on %d leftover actions; stopping", n)
            break
