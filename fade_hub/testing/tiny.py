"""Tiny randomly-initialised models, built offline from configs, for tests and the demo.

``build(kind, folder)`` writes a Hub-style model folder (safetensors weights, config, tokenizer
or processor) that the matching ``Auto*`` class or ``DiffusionPipeline`` loads. Builds are
deterministic (fixed torch seed, in-memory tokenizer training on a built-in corpus) and idempotent.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

SHAPE_LABELS = {0: "circle", 1: "square", 2: "triangle"}
SENTIMENT_LABELS = {0: "NEGATIVE", 1: "POSITIVE"}
_MAX_LEN = 128
_INIT_STD = 0.2  # wider than the usual 0.02 so that random outputs depend on the input

CORPUS = (
    "the quick brown fox jumps over the lazy dog",
    "a photo of a cat sitting on a red chair in the sun",
    "a painting of a house near the river at night",
    "this movie was great and i loved every minute of it",
    "this film was terrible and boring and far too long",
    "the food is good but the service is slow",
    "i am happy with the new phone and its camera",
    "she said that the weather will be cold tomorrow",
    "we went to the city to see the old market and the bridge",
    "people like music books games and sports",
    "the model answers questions about images and text",
    "a man and a woman walk with a small dog in the park",
    "the children play in the garden after school",
    "this is not what we wanted but it works well enough",
    "please write a short story about a blue bird",
    "summarize the following article in one sentence",
    "scientists found water on a distant planet last year",
    "the president met the team and talked about the plan",
    "it is a very bad idea to leave the door open",
    "you are wonderful kind smart and funny",
    "hello world how are you today",
    "one two three four five six seven eight nine ten",
)


def _words() -> list[str]:
    """Distinct words of the built-in corpus, in first-seen order."""
    seen: dict[str, None] = {}
    for line in CORPUS:
        for word in line.split():
            seen.setdefault(word, None)
    return list(seen)


def _bert_vocab() -> dict[str, int]:
    """WordPiece vocabulary: specials, corpus words, letters, digits and punctuation."""
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_words()]
    tokens += [c for c in "abcdefghijklmnopqrstuvwxyz0123456789.,!?'\"-:;()" if c not in tokens]
    tokens += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    return {tok: i for i, tok in enumerate(tokens)}


def _byte_bpe(special_tokens: list[str], vocab_size: int = 600) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Train a byte-level BPE on the built-in corpus in memory; return (vocab, merges)."""
    from tokenizers import ByteLevelBPETokenizer

    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(
        list(CORPUS), vocab_size=vocab_size, min_frequency=2, special_tokens=special_tokens, show_progress=False
    )
    model = json.loads(trainer._tokenizer.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return model["vocab"], merges


def _clip_tokenizer():
    """A character-level CLIP tokenizer (byte alphabet + end-of-word variants), max length 77."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    alphabet = sorted(ByteLevel.alphabet())
    tokens = ["<|startoftext|>", "<|endoftext|>", *alphabet, *[f"{c}</w>" for c in alphabet]]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def _clip_text_config(vocab_size: int) -> dict:
    """A tiny CLIP text-encoder config (ids match ``_clip_tokenizer``)."""
    return dict(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        projection_dim=16,
    )


def _vit_config():
    """The tiny ViT classifier config shared by the image and remote-code kinds."""
    from transformers import ViTConfig

    return ViTConfig(
        image_size=32,
        patch_size=8,
        num_channels=3,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        initializer_range=_INIT_STD,
        id2label=dict(SHAPE_LABELS),
        label2id={v: k for k, v in SHAPE_LABELS.items()},
    )


def _save_vit_processor(folder: Path) -> None:
    from transformers import ViTImageProcessor

    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)


def _build_image_classification(folder: Path) -> None:
    from transformers import ViTForImageClassification

    ViTForImageClassification(_vit_config()).save_pretrained(folder, safe_serialization=True)
    _save_vit_processor(folder)


def _build_text_classification(folder: Path) -> None:
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    vocab = _bert_vocab()
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=_MAX_LEN,
        initializer_range=_INIT_STD,
        id2label=dict(SENTIMENT_LABELS),
        label2id={v: k for k, v in SENTIMENT_LABELS.items()},
    )
    BertForSequenceClassification(config).save_pretrained(folder, safe_serialization=True)
    BertTokenizer(vocab=vocab, model_max_length=_MAX_LEN).save_pretrained(folder)


def _build_text_generation(folder: Path) -> None:
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

    eos = "<|endoftext|>"
    vocab, merges = _byte_bpe([eos])
    tokenizer = GPT2Tokenizer(vocab=vocab, merges=merges, pad_token=eos, model_max_length=_MAX_LEN, padding_side="left")
    eos_id = tokenizer.convert_tokens_to_ids(eos)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=_MAX_LEN,
        n_embd=32,
        n_layer=2,
        n_head=2,
        initializer_range=_INIT_STD,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )
    model = GPT2LMHeadModel(config)
    model.generation_config = GenerationConfig(
        max_new_tokens=16, bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id
    )
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|> {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def _build_chat(folder: Path) -> None:
    """The tiny text generator with a chat template, as chat models ship one in their tokenizer config."""
    from transformers import AutoTokenizer

    _build_text_generation(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)


def _build_summarization(folder: Path) -> None:
    from transformers import BartConfig, BartForConditionalGeneration, BartTokenizer, GenerationConfig

    vocab, merges = _byte_bpe(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tokenizer = BartTokenizer(vocab=vocab, merges=merges, model_max_length=_MAX_LEN)
    specials = (("bos", "<s>"), ("pad", "<pad>"), ("eos", "</s>"))
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in specials}
    config = BartConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=_MAX_LEN,
        init_std=_INIT_STD,
        bos_token_id=ids["bos"],
        pad_token_id=ids["pad"],
        eos_token_id=ids["eos"],
        decoder_start_token_id=ids["eos"],
        forced_bos_token_id=None,
        forced_eos_token_id=None,
    )
    model = BartForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        max_new_tokens=16,
        bos_token_id=ids["bos"],
        pad_token_id=ids["pad"],
        eos_token_id=ids["eos"],
        decoder_start_token_id=ids["eos"],
    )
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def _build_text_to_image(folder: Path) -> None:
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = _clip_tokenizer()
    text_encoder = CLIPTextModel(CLIPTextConfig(**_clip_text_config(len(tokenizer))))
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=8,
        sample_size=32,
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)


def _build_clip(folder: Path) -> None:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = _clip_tokenizer()
    text = _clip_text_config(len(tokenizer))
    vision = dict(
        image_size=32, patch_size=8, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2
    )
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    CLIPModel(config).save_pretrained(folder, safe_serialization=True)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)


_REMOTE_CONFIG = '''"""Custom config of the fade-hub remote-code test model."""

from transformers import ViTConfig


class FadeTinyConfig(ViTConfig):
    """A ViT config under a model type transformers does not know."""

    model_type = "fade-tiny-vit"
'''

_REMOTE_MODEL = '''"""Custom model of the fade-hub remote-code test model."""

from transformers import ViTForImageClassification

from .configuration_fade_tiny import FadeTinyConfig


class FadeTinyForImageClassification(ViTForImageClassification):
    """A ViT classifier loaded through ``auto_map``."""

    config_class = FadeTinyConfig
'''


def _build_remote_code(folder: Path) -> None:
    from transformers import ViTForImageClassification

    ViTForImageClassification(_vit_config()).save_pretrained(folder, safe_serialization=True)
    _save_vit_processor(folder)
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    config.update(
        model_type="fade-tiny-vit",
        architectures=["FadeTinyForImageClassification"],
        auto_map={
            "AutoConfig": "configuration_fade_tiny.FadeTinyConfig",
            "AutoModelForImageClassification": "modeling_fade_tiny.FadeTinyForImageClassification",
        },
    )
    config_path.write_text(json.dumps(config, indent=2))
    (folder / "configuration_fade_tiny.py").write_text(_REMOTE_CONFIG)
    (folder / "modeling_fade_tiny.py").write_text(_REMOTE_MODEL)


_BUILDERS: dict[str, Callable[[Path], None]] = {
    "image-classification": _build_image_classification,
    "text-classification": _build_text_classification,
    "text-generation": _build_text_generation,
    "chat": _build_chat,
    "summarization": _build_summarization,
    "text-to-image": _build_text_to_image,
    "clip": _build_clip,
    "remote-code": _build_remote_code,
}
KINDS = tuple(_BUILDERS)


def build(kind: str, folder: Path | str) -> Path:
    """Build the tiny model ``kind`` into ``folder`` (once; later calls return it) and return the folder."""
    if kind not in _BUILDERS:
        raise ValueError(f"unknown tiny model kind {kind!r}; choose one of {', '.join(KINDS)}")
    folder = Path(folder)
    if (folder / "config.json").is_file() or (folder / "model_index.json").is_file():
        return folder
    if folder.exists() and any(folder.iterdir()):
        raise ValueError(f"{folder} is not empty and holds no model; pass an empty or new folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            _BUILDERS[kind](staging)
        if folder.exists():
            folder.rmdir()
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.debug("built tiny %s model in %s", kind, folder)
    return folder
