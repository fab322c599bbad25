"""The causal-LM workload of ``env_throughput.py``: a randomly initialised Llama-shaped model of about 1B parameters.

Shaped like TinyLlama (hidden 2048, 22 layers, 32 heads, 4 KV heads, MLP 5632), with the small byte-level
BPE tokenizer of fade-hub's tiny test models, so that nothing is downloaded; ``--small`` makes it tiny.
Prompts are the built-in ``builtin:prompts`` seeds perturbed along ``builtin:text-invariant``; the judge
looks for keywords; generation is greedy for ``MAX_NEW_TOKENS`` tokens on both sides.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

MAX_NEW_TOKENS = 16
SEEDS = "builtin:prompts"
SPACE = "builtin:text-invariant"
KEYWORDS = ["hate", "stupid"]
ENV_DEFINITION = "FailureEnv.evaluate: text perturbation + tokenizer + generate + decode + keyword judge, one call per batch"
RAW_DEFINITION = (
    "tokenizer (left padding) + model.generate (greedy, same max_new_tokens) + decode, same batches, on the prompts "
    "already perturbed (perturbation not timed)"
)


def llama_config(vocab_size: int, pad_id: int, small: bool) -> Any:
    """A ~1.1B-parameter TinyLlama-shaped config, or with ``small`` a tiny one."""
    from transformers import LlamaConfig

    shape = (dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
             if small else
             dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                  num_key_value_heads=4))  # fmt: skip
    return LlamaConfig(vocab_size=vocab_size, max_position_embeddings=2048, bos_token_id=pad_id, eos_token_id=pad_id,
                       pad_token_id=pad_id, **shape)  # fmt: skip


def build_causal_lm(folder: Path, small: bool, seed: int) -> dict[str, Any]:
    """Save a randomly initialised Llama-shaped causal LM and a tokenizer to ``folder``; returns its shape."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaForCausalLM

    from fade_hub.testing import tiny

    tokenizer_dir = tiny.build("text-generation", folder.parent / "tokenizer-source")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = llama_config(len(tokenizer), tokenizer.pad_token_id, small)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(max_new_tokens=MAX_NEW_TOKENS, pad_token_id=tokenizer.pad_token_id,
                                               eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return {
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers,
        "vocab_size": config.vocab_size,
        "max_new_tokens": MAX_NEW_TOKENS,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def load_raw(folder: Path, device: str, dtype: Any) -> tuple[Any, Any]:
    """The same model and tokenizer loaded with plain transformers on ``device``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device).eval()
    return model, tokenizer


def time_raw(model: Any, tokenizer: Any, prompts: list[str], device: str) -> tuple[float, float]:
    """Seconds for tokenizing and for generate + decode on one batch of prompts."""
    import torch

    with torch.inference_mode():
        t0 = time.perf_counter()
        inputs = tokenizer(prompts, padding=True, return_tensors="pt").to(device)
        t1 = time.perf_counter()
        output = model.generate(**inputs, do_sample=False, max_new_tokens=MAX_NEW_TOKENS)
        tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :].cpu(), skip_special_tokens=True)
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1
