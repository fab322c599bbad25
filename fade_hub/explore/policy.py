"""The exploration policy: a tiny GPT-2 whose tokens are the actions of a concept space.

Vocabulary: special tokens (``<pad> <bos> <eos> <unk>``), one token per context (``ctx:<name>``,
plus ``ctx:<none>``), then the action tokens of the mode:

* ``single`` (macroscopic): one token per (factor, level), ``f0=3``. A completion is exactly one
  token per factor, in factor order; the token at position ``k`` may only be a level of factor ``k``.
* ``sequential`` (microscopic): one token per (factor, direction) move, ``f0+`` / ``f0-``. A
  completion is exactly ``max_steps`` moves; the caller applies them from its start cell, clamping
  at the edges of the space, and may stop early (e.g. at the first failure).

Generation (``transformers.generate`` inside trl) is kept valid by :meth:`Policy.generation_kwargs`:
``suppress_tokens`` bans every non-action token and ``bad_words_ids`` bigrams ban, after the last
token of position ``k - 1``, every action token that is not allowed at position ``k``. The sampler
therefore draws each token from the model's softmax renormalised over the allowed tokens, which is
exactly what :meth:`Policy.cell_probs`, :meth:`Policy.log_probs` and :meth:`Policy.sample` compute.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from fade_hub.errors import BadConfig
from fade_hub.jsonio import to_json

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
NO_CONTEXT = "ctx:<none>"
MODES = ("single", "sequential")
META_FILE = "fade_policy.json"
_CHUNK = 8192  # rows per forward pass when reading the exact distribution

Action = tuple[int, ...] | list[tuple[int, int]]


@dataclass
class PolicyConfig:
    """Size of the policy network, a GPT-2 built from config (dropout is always off)."""

    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 2


def context_token(context: str | None) -> str:
    """The vocabulary token of a context: ``ctx:<name>`` with whitespace as ``_``; None -> ``ctx:<none>``."""
    if context is None:
        return NO_CONTEXT
    return "ctx:" + re.sub(r"\s+", "_", str(context).strip())


def _action_tokens(shape: Sequence[int], mode: str) -> list[str]:
    if mode == "single":
        return [f"f{k}={level}" for k, size in enumerate(shape) for level in range(size)]
    return [f"f{k}{sign}" for k in range(len(shape)) for sign in "+-"]


class Policy:
    """A policy over a concept space: a causal LM, its tokenizer, and the action encoding."""

    def __init__(
        self,
        model: GPT2LMHeadModel,
        tokenizer: PreTrainedTokenizerFast,
        shape: Sequence[int],
        contexts: Sequence[str],
        mode: str,
        max_steps: int,
        folder: Path,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.shape = tuple(int(s) for s in shape)
        self.contexts = list(contexts)
        self.mode = mode
        self.max_steps = int(max_steps)
        self.folder = Path(folder)
        vocab = tokenizer.get_vocab()
        self._action_ids = [vocab[t] for t in _action_tokens(self.shape, mode)]
        self._context_ids = {c: vocab[context_token(c)] for c in [None, *self.contexts]}
        # _position_ids[k]: the tokens allowed at completion position k
        if mode == "single":
            self._position_ids = [[vocab[f"f{k}={lv}"] for lv in range(size)] for k, size in enumerate(self.shape)]
            self._level_of = [{tid: level for level, tid in enumerate(ids)} for ids in self._position_ids]
        else:
            self._position_ids = [list(self._action_ids)] * self.max_steps
            moves = [(k, sign, d) for k in range(len(self.shape)) for sign, d in (("+", 1), ("-", -1))]
            self._token_to_move = {vocab[f"f{k}{sign}"]: (k, d) for k, sign, d in moves}
        mask = torch.zeros(self.completion_length, len(vocab), dtype=torch.bool)
        for k, ids in enumerate(self._position_ids):
            mask[k, ids] = True
        self._allowed = mask

    @property
    def completion_length(self) -> int:
        """Tokens per completion: the number of factors (single) or ``max_steps`` (sequential)."""
        return len(self.shape) if self.mode == "single" else self.max_steps

    @property
    def num_cells(self) -> int:
        """Number of cells of the space."""
        return int(np.prod(self.shape))

    @classmethod
    def load(cls, folder: Path) -> "Policy":
        """Load a policy saved by :meth:`save` (or :func:`build_policy`)."""
        folder = Path(folder)
        meta_path = folder / META_FILE
        if not meta_path.is_file():
            raise BadConfig(f"{folder} holds no fade-hub policy ({META_FILE} missing); build one with build_policy")
        meta = json.loads(meta_path.read_text())
        model = GPT2LMHeadModel.from_pretrained(folder)
        model.eval()
        tokenizer = PreTrainedTokenizerFast.from_pretrained(folder)
        return cls(model, tokenizer, meta["shape"], meta["contexts"], meta["mode"], meta["max_steps"], folder)

    def save(self, folder: Path) -> None:
        """Write the model, tokenizer and action encoding to ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        meta = {"shape": list(self.shape), "contexts": self.contexts, "mode": self.mode, "max_steps": self.max_steps}
        (folder / META_FILE).write_text(to_json(meta, indent=2))

    def prompt(self, context: str | None) -> str:
        """The prompt string of a context, e.g. ``"<bos> ctx:circle"``; None gives the no-context prompt."""
        if context not in self._context_ids:
            raise BadConfig(f"context {context!r} is not one of the policy's contexts {self.contexts}")
        return f"{BOS} {context_token(context)}"

    def generation_kwargs(self) -> dict:
        """``suppress_tokens`` + ``bad_words_ids`` that make ``generate`` sample only valid completions."""
        actions = set(self._action_ids)
        suppress = sorted(set(range(len(self.tokenizer.get_vocab()))) - actions)
        kwargs: dict = {"suppress_tokens": suppress}
        if self.mode == "single":
            bigrams = []
            previous = list(self._context_ids.values())
            for ids in self._position_ids:
                banned = sorted(actions - set(ids))
                bigrams += [[p, b] for p in previous for b in banned]
                previous = ids
            if bigrams:
                kwargs["bad_words_ids"] = bigrams
        return kwargs

    def decode(self, completion_ids: Sequence[int] | torch.Tensor) -> Action:
        """Completion token ids -> action: level per factor (single) or list of ``(factor, ±1)`` moves."""
        ids = [int(t) for t in (completion_ids.tolist() if torch.is_tensor(completion_ids) else completion_ids)]
        stop = {self.tokenizer.pad_token_id, self.tokenizer.eos_token_id}
        while ids and ids[-1] in stop:
            ids.pop()
        if self.mode == "sequential":
            if len(ids) > self.max_steps or any(t not in self._token_to_move for t in ids):
                raise ValueError(f"completion {ids} is not a sequence of at most {self.max_steps} moves")
            return [self._token_to_move[t] for t in ids]
        if len(ids) != len(self.shape) or any(t not in self._level_of[k] for k, t in enumerate(ids)):
            raise ValueError(f"completion {ids} is not one level token per factor of a space of shape {self.shape}")
        return tuple(self._level_of[k][t] for k, t in enumerate(ids))

    def encode(self, action: Action) -> list[int]:
        """Action -> completion token ids (inverse of :meth:`decode`)."""
        if self.mode == "sequential":
            move_ids = {move: tid for tid, move in self._token_to_move.items()}
            return [move_ids[(int(f), int(d))] for f, d in action]
        return [self._position_ids[k][int(level)] for k, level in enumerate(action)]

    def _prompt_ids(self, contexts: Sequence[str | None]) -> torch.Tensor:
        bos = self.tokenizer.bos_token_id
        return torch.tensor([[bos, self._context_ids[c]] for c in contexts], dtype=torch.long)

    def _restricted_log_softmax(self, logits: torch.Tensor, start: int, temperature: float) -> torch.Tensor:
        """Log-softmax of ``logits`` (B, L, V) for positions ``start..start+L-1``, over the allowed tokens only."""
        allowed = self._allowed[start : start + logits.size(1)].to(logits.device)
        return torch.log_softmax((logits / temperature).masked_fill(~allowed, float("-inf")), dim=-1)

    @torch.no_grad()
    def log_probs(
        self, contexts: Sequence[str | None], completion_ids: Sequence[Sequence[int]], temperature: float = 1.0
    ) -> np.ndarray:
        """Exact log-probability, under the sampler, of each full-length completion (one teacher-forced pass)."""
        completions = torch.tensor([list(c) for c in completion_ids], dtype=torch.long)
        if completions.size(1) != self.completion_length:
            raise ValueError(f"completions must have {self.completion_length} tokens, got {completions.size(1)}")
        inputs = torch.cat([self._prompt_ids(contexts), completions], dim=1).to(self.model.device)
        logits = self.model(input_ids=inputs).logits[:, 1:-1].float()
        logp = self._restricted_log_softmax(logits, 0, temperature)
        picked = logp.gather(-1, completions.to(logp.device).unsqueeze(-1)).squeeze(-1)
        return picked.sum(dim=1).cpu().numpy().astype(np.float64)

    @torch.no_grad()
    def cell_probs(self, context: str | None = None, temperature: float = 1.0) -> np.ndarray:
        """Exact probability the sampler gives each cell (row-major over ``shape``); None averages the contexts."""
        if self.mode != "single":
            raise BadConfig("cell_probs needs a single-mode policy; a sequential policy's cells depend on its start")
        contexts = ([context] if context is not None else self.contexts) or [None]
        heads = list(itertools.product(*[self._position_ids[k] for k in range(len(self.shape) - 1)]))
        prefix_tokens = torch.tensor(heads, dtype=torch.long).reshape(len(heads), len(self.shape) - 1)
        total = np.zeros(self.num_cells, dtype=np.float64)
        for ctx in contexts:
            rows = []
            for begin in range(0, len(prefix_tokens), _CHUNK):
                chunk = prefix_tokens[begin : begin + _CHUNK]
                inputs = torch.cat([self._prompt_ids([ctx] * len(chunk)), chunk], dim=1).to(self.model.device)
                logp = self._restricted_log_softmax(self.model(input_ids=inputs).logits[:, 1:].float(), 0, temperature)
                picked = [logp[:, k].gather(-1, chunk[:, k : k + 1].to(logp.device)) for k in range(chunk.size(1))]
                prefix_logp = torch.cat(picked, dim=1).sum(dim=1, keepdim=True) if picked else 0.0
                last = logp[:, -1][:, self._position_ids[-1]]
                rows.append((prefix_logp + last).double().exp().cpu())
            probs = torch.cat(rows).reshape(-1).numpy()
            total += probs / probs.sum()
        return total / len(contexts)

    @torch.no_grad()
    def sample(
        self, context: str | None, n: int, rng: np.random.Generator, temperature: float = 1.0
    ) -> list[Action]:
        """Draw ``n`` actions token by token exactly as generation does (renormalised over allowed tokens)."""
        if n <= 0:
            return []
        generator = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
        ids = self._prompt_ids([context] * n).to(self.model.device)
        for k in range(self.completion_length):
            logits = self.model(input_ids=ids).logits[:, -1:].float()
            probs = self._restricted_log_softmax(logits, k, temperature)[:, 0].exp().cpu()
            token = torch.multinomial(probs, 1, generator=generator)
            ids = torch.cat([ids, token.to(ids.device)], dim=1)
        return [self.decode(row[2:]) for row in ids.cpu()]


def _tokenizer(tokens: list[str], max_length: int) -> PreTrainedTokenizerFast:
    vocab = {token: i for i, token in enumerate(tokens)}
    backend = Tokenizer(WordLevel(vocab=vocab, unk_token=UNK))
    backend.pre_tokenizer = WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        padding_side="left",
        truncation_side="left",
        model_max_length=max_length,
    )


def build_policy(
    shape: Sequence[int],
    contexts: Sequence[str],
    folder: Path,
    config: PolicyConfig = PolicyConfig(),
    mode: str = "single",
    max_steps: int = 8,
    seed: int = 0,
) -> Policy:
    """Build a fresh (near-uniform) policy for a space of ``shape``, save it to ``folder`` and load it back."""
    if mode not in MODES:
        raise BadConfig(f"policy mode must be one of {MODES}, got {mode!r}")
    if not shape or any(int(s) < 1 for s in shape):
        raise BadConfig(f"space shape must be a non-empty list of positive sizes, got {list(shape)}")
    if mode == "sequential" and max_steps < 1:
        raise BadConfig(f"max_steps must be >= 1 for a sequential policy, got {max_steps}")
    ctx_tokens = [context_token(c) for c in contexts]
    if len(set(ctx_tokens)) != len(ctx_tokens) or NO_CONTEXT in ctx_tokens:
        raise BadConfig(f"contexts must be distinct (after whitespace -> '_') and not '<none>': {list(contexts)}")
    tokens = [PAD, BOS, EOS, UNK, NO_CONTEXT, *ctx_tokens, *_action_tokens(shape, mode)]
    completion = len(shape) if mode == "single" else max_steps
    n_positions = 2 + completion
    model_config = GPT2Config(
        vocab_size=len(tokens),
        n_positions=n_positions,
        n_layer=config.n_layer,
        n_embd=config.n_embd,
        n_head=config.n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokens.index(BOS),
        eos_token_id=tokens.index(EOS),
        pad_token_id=tokens.index(PAD),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(model_config)
    policy = Policy(model, _tokenizer(tokens, n_positions), shape, contexts, mode, max_steps, Path(folder))
    policy.save(folder)
    return Policy.load(folder)
