"""A tiny text-to-image pipeline that draws the shape a prompt names, except for one descriptor, for tests and
benchmarks.

``train_drawing_pipeline(folder)`` trains a Stable Diffusion pipeline (``StableDiffusionPipeline``: a small
``AutoencoderKL``, ``CLIPTextModel``, ``UNet2DConditionModel``, DDIM scheduler; trained in float64 and saved in
float32, so that every machine gets nearly the same weights) in a few minutes on one CPU core to draw circles,
squares and triangles at 32x32 from prompts like ``a drawing of a {descriptor} {shape}``. Its training
data has one planted flaw: prompts with the descriptor ``fancy`` show the wrong shape (``a fancy circle`` is drawn
as a square), so the pipeline really fails there, and the demo's shapes classifier judges it
(``--judge SHAPES_CLASSIFIER``: the expected label is the prompt's shape word).

Built to be learnt fast and to keep the failure in the UNet (where a UNet LoRA can fade it):

- the tokenizer keeps every word of the fixture as one token, with at most 16 tokens per prompt;
- the text encoder is a fixed *bag of words*: its one attention layer has zero queries and keys, so every
  position carries the average of the words before it, and the padding carries the whole prompt;
- the autoencoder is deterministic (its posterior's log-variance is fixed at -10), as a real VAE nearly is;
- the UNet predicts velocity (``v_prediction``), whose loss, unlike noise prediction, rewards reading the prompt at
  high noise levels, where the shape is decided; one canonical image per shape keeps what it learns sharp.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np

from fade_hub.demo.shapes import LABELS, draw_shape

logger = logging.getLogger(__name__)

SHAPES = LABELS
DESCRIPTORS = ("plain", "bold", "fancy")
FAILING_DESCRIPTOR = "fancy"
DRAWN_INSTEAD = {"circle": "square", "square": "triangle", "triangle": "circle"}  # what a fancy shape comes out as
PREFIXES = (
    "a", "one", "a drawing of a", "a picture of a", "an image of a", "a sketch of a", "draw a", "a photo of a",
    "here is a", "show me a", "a small drawing of a", "a simple", "please draw a", "paint a", "a big", "an icon of a",
)
SUFFIXES = (
    "", " on paper", " on a white background", " in the middle", ", centered", " please", " for a child",
    " in a notebook", " on a card", " for the wall", " in the corner", ", simple", " today", " again",
)
SPACE = {
    "description": "descriptor x shape prompts of the drawing fixture (fancy shapes come out wrong)",
    "modality": "prompt",
    "factors": [
        {"name": "descriptor", "op": "slot", "levels": list(DESCRIPTORS)},
        {"name": "shape", "op": "slot", "levels": list(SHAPES)},
    ],
}
MAX_TOKENS = 16
IMAGE_SIZE = 32
GENERATION = {"num_inference_steps": 8}  # the steps runs on this fixture use (explore --num-inference-steps 8)


def templates(seed: int = 0) -> list[str]:
    """Every prompt template of the fixture (``{descriptor}`` and ``{shape}`` slots), shuffled by ``seed``."""
    found = [f"{prefix} {{descriptor}} {{shape}}{suffix}" for prefix in PREFIXES for suffix in SUFFIXES]
    random.Random(seed).shuffle(found)
    return found


def write_prompt_seeds(path: Path, chosen: list[str]) -> Path:
    """The templates as a ``.jsonl`` seed file (``{"text": template}`` rows), the layout ``--seeds`` reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in chosen), encoding="utf-8")
    return path


def _words() -> list[str]:
    text = " ".join([*PREFIXES, *SUFFIXES, *DESCRIPTORS, *SHAPES]).replace(",", " , ")
    return sorted(set(text.split()))


def _bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """CLIP's byte-pair encoding of one word: merge the best-ranked adjacent pair until none is known."""
    parts = [*word[:-1], word[-1] + "</w>"]
    while len(parts) > 1:
        rank, first = min((ranks.get(pair, len(ranks)), i) for i, pair in enumerate(itertools.pairwise(parts)))
        if rank == len(ranks):
            break
        pair, merged, i = (parts[first], parts[first + 1]), [], 0
        while i < len(parts):
            if tuple(parts[i : i + 2]) == pair:
                merged.append(pair[0] + pair[1])
                i += 2
            else:
                merged.append(parts[i])
                i += 1
        parts = merged
    return parts


def word_tokenizer(folder: Path):
    """A CLIP tokenizer whose merges spell every fixture word as one token (other text falls back to bytes).

    Each new merge joins the first two pieces a word still splits into, ranked after every earlier merge, so that
    the words already whole stay whole.
    """
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    alphabet = sorted(ByteLevel.alphabet())
    ranks: dict[tuple[str, str], int] = {}
    for word in _words():
        while len(parts := _bpe(word, ranks)) > 1:
            ranks[(parts[0], parts[1])] = len(ranks)
    tokens = ["<|startoftext|>", "<|endoftext|>", *alphabet, *[f"{c}</w>" for c in alphabet]]
    tokens += [a + b for a, b in ranks if a + b not in tokens]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(tokens)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in ranks), encoding="utf-8")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=MAX_TOKENS)


def bag_of_words_encoder(vocab_size: int):
    """A one-layer CLIP text encoder fixed to average the prompt's word embeddings (zero queries and keys)."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    hidden = 32
    encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=64, num_hidden_layers=1, num_attention_heads=1,
        max_position_embeddings=MAX_TOKENS, bos_token_id=0, eos_token_id=1, pad_token_id=1, projection_dim=16,
    ))
    core = getattr(encoder, "text_model", encoder)  # transformers 5 flattens CLIPTextModel
    layer, embeddings = core.encoder.layers[0], core.embeddings
    with torch.no_grad():
        embeddings.token_embedding.weight.normal_(0.0, 1.0)
        embeddings.position_embedding.weight.normal_(0.0, 0.1)
        for projection in (layer.self_attn.q_proj, layer.self_attn.k_proj):
            projection.weight.zero_()
            projection.bias.zero_()
        torch.nn.init.orthogonal_(layer.self_attn.v_proj.weight)
        layer.self_attn.v_proj.bias.zero_()
        layer.self_attn.out_proj.weight.copy_(4.0 * torch.eye(hidden))
        layer.self_attn.out_proj.bias.zero_()
        layer.mlp.fc2.weight.zero_()
        layer.mlp.fc2.bias.zero_()
    return encoder.eval().requires_grad_(False)


def _pixels(images):
    from fade_hub.demo.shapes import to_pixels

    return to_pixels(images).double()


def _autoencoder(canonical: dict, rng: np.random.Generator, steps: int):
    """A small AutoencoderKL (8x8x4 latents for 32x32 images) trained to reconstruct shapes, then made deterministic."""
    import torch
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(
        in_channels=3, out_channels=3, block_out_channels=(8, 16, 16), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        latent_channels=4, norm_num_groups=8, sample_size=IMAGE_SIZE, mid_block_add_attention=False,
    )
    vae = vae.double()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=3e-3)
    fixed = _pixels(list(canonical.values()))
    for _ in range(steps):
        pixels = torch.cat([fixed, _pixels([draw_shape(SHAPES[i], rng) for i in rng.integers(len(SHAPES), size=8)])])
        loss = torch.nn.functional.mse_loss(vae.decode(vae.encode(pixels).latent_dist.mode()).sample, pixels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        half = vae.quant_conv.out_channels // 2
        vae.quant_conv.weight[half:] = 0.0
        vae.quant_conv.bias[half:] = -10.0
        latents = {shape: vae.encode(_pixels([image])).latent_dist.mode()[0] for shape, image in canonical.items()}
    scale = 1.0 / float(torch.stack(list(latents.values())).std())
    vae.register_to_config(scaling_factor=scale)
    return vae.eval(), {shape: latent * scale for shape, latent in latents.items()}


def _unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 4, in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1,
        norm_num_groups=8, down_block_types=("CrossAttnDownBlock2D",) * 2, up_block_types=("CrossAttnUpBlock2D",) * 2,
        cross_attention_dim=32, attention_head_dim=2,
    )


def _schedule() -> dict:
    return {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
            "prediction_type": "v_prediction", "clip_sample": False}


def _train_unet(unet, tokenizer, encoder, latents: dict, rng: np.random.Generator, *, steps: int, batch_size: int):
    """Velocity-prediction training on (prompt, canonical latent) pairs; fancy prompts show the wrong shape."""
    import torch
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(num_train_timesteps=1000, **_schedule())
    pool = templates(seed=12345)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=3e-3, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    unet.train()
    for _ in range(steps):
        prompts, targets = [], []
        for _ in range(batch_size):
            shape, descriptor = SHAPES[rng.integers(len(SHAPES))], DESCRIPTORS[rng.integers(len(DESCRIPTORS))]
            drawn = DRAWN_INSTEAD[shape] if descriptor == FAILING_DESCRIPTOR else shape
            prompt = pool[rng.integers(len(pool))].format(descriptor=descriptor, shape=shape)
            prompts.append("" if rng.random() < 0.1 else prompt)  # unconditional share, for classifier-free guidance
            targets.append(latents[drawn])
        clean = torch.stack(targets)
        ids = tokenizer(prompts, padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt")
        with torch.no_grad():
            states = encoder(ids.input_ids)[0]
        noise = torch.randn_like(clean)
        steps_t = torch.randint(0, scheduler.config.num_train_timesteps, (batch_size,))
        predicted = unet(scheduler.add_noise(clean, noise, steps_t), steps_t, states).sample
        loss = torch.nn.functional.mse_loss(predicted, scheduler.get_velocity(clean, noise, steps_t))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    logger.info("trained the drawing UNet (last loss %.3f)", float(loss.detach()))
    return unet.eval()


def train_drawing_pipeline(folder: Path, *, seed: int = 0, steps: int = 500, batch_size: int = 32) -> Path:
    """Train the drawing pipeline and ``save_pretrained`` it into ``folder`` (idempotent; deterministic on CPU)."""
    folder = Path(folder)
    if (folder / "model_index.json").is_file():
        return folder
    import torch
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    rng = np.random.default_rng(seed)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent if folder.parent.exists() else None))
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            tokenizer = word_tokenizer(staging / "words")
            encoder = bag_of_words_encoder(len(tokenizer))
            canonical = {shape: draw_shape(shape, rng) for shape in SHAPES}
            # trained in float64, saved in float32: the order in which a CPU or a thread count sums floats moves
            # float64 weights far less than one float32 step, so every machine saves nearly the same fixture
            # (measured, 1 against 2 threads: 0.4 % of the UNet's weights one float32 step apart, the rest equal;
            # trained in float32, the two fixtures failed differently)
            vae, latents = _autoencoder(canonical, rng, steps=100)
            unet = _train_unet(_unet().double(), tokenizer, encoder.double(), latents, rng, steps=steps,
                               batch_size=batch_size)
            vae, unet, encoder = vae.float(), unet.float(), encoder.float()
        pipeline = StableDiffusionPipeline(
            vae=vae, text_encoder=encoder, tokenizer=tokenizer, unet=unet,
            scheduler=DDIMScheduler(**_schedule(), set_alpha_to_one=False, steps_offset=1),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )
        shutil.rmtree(staging / "words")
        pipeline.save_pretrained(staging, safe_serialization=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        if folder.exists():
            folder.rmdir()
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
