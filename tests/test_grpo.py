"""The GRPO explorer on synthetic planted landscapes: it learns where the failures are, within budget."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from transformers import GenerationConfig

from fade_hub.errors import BadConfig
from fade_hub.explore.grpo import GRPOSearchConfig, run_grpo
from fade_hub.explore.policy import Policy, build_policy


def search(**ppo) -> GRPOSearchConfig:
    """The GRPO search's settings with some of its ppo options changed."""
    return GRPOSearchConfig(ppo=replace(GRPOSearchConfig().ppo, **ppo))


SHAPE = (5, 5, 5)
BLOCK_A = {(a, b, c) for a in (1, 2) for b in range(5) for c in (2, 3)}  # 20 of 125 cells: random hit rate 16 %
BLOCK_B = {(a, b, c) for a in (3, 4) for b in range(5) for c in (0, 1)}
RANDOM_RATE = len(BLOCK_A) / 125


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """The policy is tiny: threads only spin-wait (run_grpo does the same for its own work)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _cells(block: set) -> list[int]:
    return [int(np.ravel_multi_index(cell, SHAPE)) for cell in block]


def _entropy(probs: np.ndarray) -> float:
    return float(-(probs * np.log(np.clip(probs, 1e-300, None))).sum())


class PlantedLandscape:
    """A model under test whose failures are planted blocks: reward 1 inside (per context), 0 outside, plus noise."""

    def __init__(self, budget: int, blocks: dict[str | None, set], noise: float = 0.05, seed: int = 0):
        self.left = budget
        self.blocks = blocks
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.queries: list[tuple] = []

    def evaluate(self, actions: list, contexts: list) -> list[float]:
        assert len(actions) == len(contexts)
        assert len(actions) <= self.left, "the explorer asked for more queries than the budget left"
        for action in actions:
            assert isinstance(action, tuple) and len(action) == len(SHAPE)
            assert all(isinstance(v, int) and 0 <= v < s for v, s in zip(action, SHAPE)), action
        self.left -= len(actions)
        self.queries += list(zip(contexts, actions))
        hits = [float(action in self.blocks[ctx]) for action, ctx in zip(actions, contexts)]
        return [h + self.noise * self.rng.standard_normal() for h in hits]

    def budget_left(self) -> int:
        return self.left


def _explore(tmp_path, budget: int, seed: int = 0, contexts=("circle",), blocks=None, **config) -> tuple:
    blocks = blocks or {c: BLOCK_A for c in contexts}
    landscape = PlantedLandscape(budget, blocks, seed=seed)
    policy = build_policy(SHAPE, list(contexts), tmp_path / "policy", seed=seed)
    spent: list[int] = []
    run_grpo(
        policy,
        list(contexts),
        landscape.evaluate,
        landscape.budget_left,
        search(**config),
        seed,
        tmp_path / "trl",
        progress=spent.append,
    )
    return policy, landscape, spent


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A policy trained on BLOCK_A with a budget that leaves a partial batch (601 = 18 batches of 32 + 25)."""
    return _explore(tmp_path_factory.mktemp("planted"), budget=601)


def test_learns_the_planted_block_within_the_exact_budget(trained):
    policy, landscape, spent = trained
    assert len(landscape.queries) == 601 and landscape.left == 0
    assert sum(spent) == 601
    hits = np.array([action in BLOCK_A for _, action in landscape.queries])
    assert hits[-200:].mean() >= 3 * RANDOM_RATE
    probs = policy.cell_probs()
    assert probs.shape == (125,) and probs.sum() == pytest.approx(1.0)
    assert probs[_cells(BLOCK_A)].sum() > 0.5


@pytest.mark.slow  # 20,000 samples; the fast tier checks generation against cell_probs on 5,000 (test below)
def test_cell_probs_are_the_sampling_distribution(trained):
    policy = trained[0]
    probs = policy.cell_probs("circle")
    np.testing.assert_allclose(policy.cell_probs(), probs)  # one context: the average is that context
    actions = policy.sample("circle", 20_000, np.random.default_rng(1))
    counts = np.bincount([np.ravel_multi_index(a, SHAPE) for a in actions], minlength=125)
    assert 0.5 * np.abs(counts / counts.sum() - probs).sum() < 0.05


@pytest.mark.parametrize("which", ["untrained", "trained"])
def test_generate_with_policy_kwargs_only_yields_valid_actions(trained, tmp_path, which):
    """What trl runs, ``model.generate`` with the policy's generation kwargs, samples exactly ``cell_probs``."""
    policy = trained[0] if which == "trained" else build_policy(SHAPE, ["circle"], tmp_path / "p", seed=3)
    config = GenerationConfig(
        do_sample=True,
        max_new_tokens=policy.completion_length,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        pad_token_id=policy.tokenizer.pad_token_id,
        eos_token_id=[policy.tokenizer.eos_token_id],
        **policy.generation_kwargs(),
    )
    inputs = policy.tokenizer([policy.prompt("circle")] * 5000, return_tensors="pt")
    torch.manual_seed(0)
    out = policy.model.generate(**inputs, generation_config=config)
    actions = [policy.decode(row[inputs["input_ids"].size(1) :]) for row in out]  # raises on any invalid one
    assert len(actions) == 5000
    counts = np.bincount([np.ravel_multi_index(a, SHAPE) for a in actions], minlength=125)
    assert 0.5 * np.abs(counts / counts.sum() - policy.cell_probs("circle")).sum() < 0.08


def test_decode_rejects_invalid_completions_and_round_trips(tmp_path):
    policy = build_policy(SHAPE, ["circle", "big dog"], tmp_path / "p")
    assert policy.prompt("big dog") == "<bos> ctx:big_dog"
    for action in [(0, 0, 0), (4, 2, 1)]:
        ids = policy.encode(action)
        assert policy.decode(ids) == action
        assert policy.decode([*ids, policy.tokenizer.eos_token_id, policy.tokenizer.pad_token_id]) == action
    f0, f1, f2 = policy.encode((1, 1, 1))
    for bad in ([f1, f0, f2], [f0, f1], [f0, f1, f2, f2], [f0, policy.tokenizer.bos_token_id, f2]):
        with pytest.raises(ValueError):
            policy.decode(bad)
    with pytest.raises(BadConfig):
        policy.prompt("cat")


def test_save_and_load_keep_the_policy(trained, tmp_path):
    policy = trained[0]
    policy.save(tmp_path / "saved")
    loaded = Policy.load(tmp_path / "saved")
    assert (loaded.shape, loaded.contexts, loaded.mode) == (policy.shape, policy.contexts, policy.mode)
    np.testing.assert_allclose(loaded.cell_probs(), policy.cell_probs(), rtol=1e-5)


def test_same_seed_same_queries(tmp_path):
    first = _explore(tmp_path / "a", budget=100, seed=7)[1].queries
    again = _explore(tmp_path / "b", budget=100, seed=7)[1].queries
    other = _explore(tmp_path / "c", budget=100, seed=8)[1].queries
    assert len(first) == 100
    assert first == again
    assert first != other


def test_budget_below_one_batch_is_spent_by_sampling(tmp_path):
    policy, landscape, spent = _explore(tmp_path, budget=10)
    assert len(landscape.queries) == 10 and spent == [10]


@pytest.mark.slow  # trains a policy of its own on hundreds of queries
def test_larger_entropy_coef_keeps_entropy_higher(tmp_path):
    greedy = _explore(tmp_path / "greedy", budget=400, entropy_coef=0.0)[0].cell_probs()
    soft = _explore(tmp_path / "soft", budget=400, entropy_coef=0.5)[0].cell_probs()
    assert _entropy(soft) > _entropy(greedy) + 0.5
    assert soft[_cells(BLOCK_A)].sum() > 2 * RANDOM_RATE  # still learns where the failures are


@pytest.mark.slow  # trains a policy of its own on hundreds of queries
def test_kl_to_the_initial_policy_trains(tmp_path):
    policy, landscape, _ = _explore(tmp_path, budget=400, beta=0.05, entropy_coef=0.0)
    assert len(landscape.queries) == 400
    assert policy.cell_probs()[_cells(BLOCK_A)].sum() > 0.5


@pytest.mark.slow  # trains a policy of its own on hundreds of queries
def test_context_conditioning(tmp_path):
    blocks = {"circle": BLOCK_A, "square": BLOCK_B}
    policy, landscape, _ = _explore(tmp_path, budget=1000, contexts=("circle", "square"), blocks=blocks)
    assert len(landscape.queries) == 1000
    assert {ctx for ctx, _ in landscape.queries} == {"circle", "square"}
    circle, square = policy.cell_probs("circle"), policy.cell_probs("square")
    assert circle[_cells(BLOCK_A)].sum() > 0.5 and circle[_cells(BLOCK_B)].sum() < 0.2
    assert square[_cells(BLOCK_B)].sum() > 0.5 and square[_cells(BLOCK_A)].sum() < 0.2
    np.testing.assert_allclose(policy.cell_probs(), (circle + square) / 2)


@pytest.mark.slow  # end to end (a served app, a subprocess or timed requests): the slow tier
def test_imagined_completions_teach_the_policy_for_a_few_queries(tmp_path):
    """With a model of the failures (``imagine``), only 2 of each group of 8 completions are asked: the budget
    buys four times the completions, and the policy learns from all of them."""
    landscape = PlantedLandscape(301, {"circle": BLOCK_A})
    imagined: list[tuple] = []

    def imagine(actions: list, contexts: list) -> list[float]:  # a model that knows the block
        imagined.extend(actions)
        return [float(action in BLOCK_A) for action in actions]

    policy = build_policy(SHAPE, ["circle"], tmp_path / "policy", seed=0)
    config = search(queried_per_group=2)
    run_grpo(policy, ["circle"], landscape.evaluate, landscape.budget_left, config, 0, tmp_path / "trl",
             imagine=imagine)
    assert len(landscape.queries) == 301 and landscape.left == 0
    trained_queries = len(landscape.queries) - 301 % (2 * config.prompts_per_step)  # the rest: leftover sampling
    assert len(imagined) == 3 * trained_queries  # 6 of 8 of every group were scored, not asked
    assert policy.cell_probs()[_cells(BLOCK_A)].sum() > 0.5
    hits = np.array([action in BLOCK_A for _, action in landscape.queries])
    assert hits[-100:].mean() >= 3 * RANDOM_RATE


def test_bad_config_is_rejected(tmp_path):
    policy = build_policy(SHAPE, ["circle"], tmp_path / "p")
    landscape = PlantedLandscape(64, {"circle": BLOCK_A})
    with pytest.raises(BadConfig):
        bad = search(num_generations=1)
        run_grpo(policy, ["circle"], landscape.evaluate, landscape.budget_left, bad, 0, tmp_path)
    with pytest.raises(BadConfig):
        run_grpo(policy, ["dog"], landscape.evaluate, landscape.budget_left, GRPOSearchConfig(), 0, tmp_path)
    assert landscape.queries == []


class MovesLandscape:
    """Sequential mode: walk moves from START (clamped at the edges); reaching REGION ends the episode."""

    START = (0, 0, 0)
    PENALTY = 0.05

    def __init__(self, budget: int):
        self.left = budget
        self.reached: list[bool] = []

    @staticmethod
    def in_region(cell) -> bool:
        return cell[0] >= 3 and cell[1] >= 2  # at least 5 moves away from START

    def walk(self, moves) -> tuple[int, bool]:
        cell = list(self.START)
        for step, (factor, direction) in enumerate(moves, 1):
            assert direction in (1, -1) and 0 <= factor < len(SHAPE)
            cell[factor] = min(max(cell[factor] + direction, 0), SHAPE[factor] - 1)
            if self.in_region(cell):
                return step, True
        return len(moves), False

    def evaluate(self, trajectories: list, contexts: list) -> list[float]:
        rewards = []
        for moves in trajectories:
            steps, reached = self.walk(moves)
            self.left -= steps  # one query per step actually taken
            assert self.left >= 0, "the explorer asked for more queries than the budget left"
            self.reached.append(reached)
            rewards.append(float(reached) - self.PENALTY * steps)
        return rewards

    def budget_left(self) -> int:
        return self.left


@pytest.mark.slow
def test_sequential_trajectories_learn_to_reach_the_region(tmp_path):
    landscape = MovesLandscape(budget=5000)
    policy = build_policy(SHAPE, ["circle"], tmp_path / "p", mode="sequential", max_steps=8)
    rng = np.random.default_rng(0)
    before = np.mean([landscape.walk(m)[1] for m in policy.sample("circle", 2000, rng)])
    run_grpo(policy, ["circle"], landscape.evaluate, landscape.budget_left, GRPOSearchConfig(), 0, tmp_path / "trl")
    assert landscape.left == 0  # the whole budget, never more (evaluate asserts it)
    after = np.mean([landscape.walk(m)[1] for m in policy.sample("circle", 2000, rng)])
    assert before < 0.1
    assert after > max(0.3, 5 * before)
    assert np.mean(landscape.reached[-100:]) > 3 * np.mean(landscape.reached[:100])


def test_sequential_policy_samples_valid_moves(tmp_path):
    policy = build_policy(SHAPE, [], tmp_path / "p", mode="sequential", max_steps=6)
    moves = policy.sample(None, 500, np.random.default_rng(0))
    assert all(len(m) == 6 and all(d in (1, -1) and 0 <= f < 3 for f, d in m) for m in moves)
    assert policy.decode(policy.encode(moves[0])) == moves[0]
    with pytest.raises(BadConfig):
        policy.cell_probs()
    landscape = MovesLandscape(budget=40)  # below one batch: leftover trajectories, the last one cut short
    run_grpo(policy, [None], landscape.evaluate, landscape.budget_left, GRPOSearchConfig(), 0, tmp_path / "trl")
    assert landscape.left == 0
