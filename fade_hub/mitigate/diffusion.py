"""Mitigation of text-to-image pipelines: a LoRA on the UNet's attention projections, trained with the noise-prediction
loss of diffusers' text-to-image LoRA recipe on (fix prompt, image) pairs.

The pairs (``pairs.py`` builds them from the plan):

- *fix pairs*: each training template filled at a targeted cell (the fix prompt) with the pipeline's own image of the
  prompt's clean version, the same template at the nearest untargeted cell, when the run's judge passes that image
  both for its own prompt and for the fix prompt;
- *accepted pairs*: the failing examples reviewers accepted in the Space (correction ``accept``) with their image;
- *preservation pairs*: the clean versions' prompts with their own passing images, so that the rest of the space
  keeps what it draws. A share ``mix`` of the examples comes from fix and accepted pairs, the rest from these.

Training follows the recipe: the frozen VAE encodes each image (``latent_dist.sample()`` times the scaling factor),
noise and a uniform timestep are drawn, the DDPM scheduler of the pipeline's config adds the noise, and the UNet's
prediction is regressed (MSE) on the noise, or on the velocity for ``v_prediction`` models; AdamW on the LoRA
weights only, gradients clipped to norm 1. The adapter is saved with the pipeline's ``save_lora_weights``, its
LoRA config (rank, alpha) in the file's metadata, so that ``pipe.load_lora_weights(REPO)`` restores it as trained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from tqdm.auto import tqdm

from ..errors import BadConfig
from .base import Mitigator, TrainingPlan, name_base, planned_steps
from .pairs import ImagePairs, build_pairs

TARGET_MODULES = ["to_q", "to_k", "to_v", "to_out.0"]
WEIGHT_DECAY = 1e-2  # the recipe's default AdamW weight decay
MAX_GRAD_NORM = 1.0
ENCODE_BATCH = 32


class DiffusionMitigator(Mitigator):
    """UNet LoRA for Stable Diffusion-style pipelines (a UNet conditioned on the text encoder's hidden states)."""

    trainer_name: ClassVar[str] = "diffusers text-to-image LoRA recipe (UNet attention, noise-prediction MSE)"
    default_learning_rate: ClassVar[float] = 1e-4  # diffusers' LoRA recipe; 1e-3 breaks a real UNet's clean images

    def adapted_model(self) -> torch.nn.Module:
        """The pipeline's UNet; BadConfig for pipelines whose UNet fade-hub cannot train (or no pipeline at all)."""
        pipeline = getattr(self.target, "pipeline", None)
        unet = getattr(pipeline, "unet", None)
        supported = (unet is not None and hasattr(pipeline, "encode_prompt")
                     and hasattr(type(pipeline), "save_lora_weights")
                     and getattr(unet.config, "addition_embed_type", None) is None)
        if not supported:
            name = type(pipeline).__name__ if pipeline is not None else type(self.target).__name__
            raise BadConfig(f"{name} is not supported for mitigation: fade-hub trains UNet LoRAs for Stable "
                            "Diffusion-style pipelines (a UNet conditioned only on the text encoder's hidden states)")
        return unet

    def prepare(self) -> None:
        """Add a LoRA to the UNet's attention projections; the text encoder and VAE stay frozen."""
        from peft import LoraConfig

        unet = self.adapted_model()
        pipeline = self.target.pipeline
        for part in (unet, getattr(pipeline, "text_encoder", None), getattr(pipeline, "vae", None)):
            if part is not None:
                part.requires_grad_(False)
        self.pipeline, self.unet = pipeline, unet
        unet.add_adapter(LoraConfig(
            r=self.config.rank, lora_alpha=self.config.lora_alpha, lora_dropout=self.config.dropout,
            init_lora_weights="gaussian", target_modules=self.config.target_modules or TARGET_MODULES,
        ))

    def train(self, plan: TrainingPlan) -> dict[str, Any]:
        """Build the (prompt, image) pairs, then fit the LoRA with the recipe's loss."""
        from diffusers import DDPMScheduler

        config = self.config
        pairs = build_pairs(plan)
        scheduler = DDPMScheduler.from_config(self.pipeline.scheduler.config)
        prediction = scheduler.config.prediction_type
        if prediction not in ("epsilon", "v_prediction"):
            raise BadConfig(f"the pipeline's scheduler predicts {prediction!r}; the LoRA recipe trains epsilon or "
                            "v_prediction models")
        steps = planned_steps(config, len(pairs))
        torch.manual_seed(config.seed)
        means, stds = self._latents(pairs)
        states = self._prompt_states(pairs)
        params = [param for param in self.unet.parameters() if param.requires_grad]
        for param in params:  # the recipe keeps trainable LoRA weights in float32 under half-precision models
            param.data = param.data.float()
        optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=WEIGHT_DECAY)
        generator = torch.Generator("cpu").manual_seed(config.seed)
        device, dtype = self.unet.device, self.unet.dtype
        self.unet.train()
        losses = []
        for _ in tqdm(range(steps), desc="training the LoRA", unit="step", disable=not config.show_progress,
                      dynamic_ncols=True):
            index = pairs.draw(config.batch_size, config.mix, generator)
            noise_in_latent = torch.randn(means[index].shape, generator=generator)
            latents = (means[index] + stds[index] * noise_in_latent) * self.pipeline.vae.config.scaling_factor
            noise = torch.randn(latents.shape, generator=generator)
            timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (len(index),), generator=generator)
            noisy = scheduler.add_noise(latents, noise, timesteps)
            target = noise if prediction == "epsilon" else scheduler.get_velocity(latents, noise, timesteps)
            predicted = self.unet(noisy.to(device, dtype), timesteps.to(device), states[index].to(device, dtype)).sample
            loss = torch.nn.functional.mse_loss(predicted.float(), target.to(device).float())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
            optimizer.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
        self.unet.eval()
        lora = self.unet.peft_config["default"]
        return {
            "trainer": self.trainer_name, "steps": steps, "batch_size": config.batch_size,
            "examples": steps * config.batch_size, "learning_rate": config.learning_rate, "mix": config.mix,
            "seed": config.seed, "rank": config.rank, "alpha": config.lora_alpha, "dropout": config.dropout,
            "target_modules": sorted(lora.target_modules), "prediction_type": prediction,
            "final_loss": round(sum(losses[-20:]) / max(len(losses[-20:]), 1), 4),
            **pairs.summary(),
        }

    def _latents(self, pairs: ImagePairs) -> tuple[torch.Tensor, torch.Tensor]:
        """The VAE posterior (mean, std) of every pair's image, at the pipeline's resolution, on the CPU."""
        vae, processor = self.pipeline.vae, self.pipeline.image_processor
        size = self.unet.config.sample_size * self.pipeline.vae_scale_factor
        means, stds = [], []
        with torch.no_grad():
            for start in range(0, len(pairs.images), ENCODE_BATCH):
                chunk = pairs.images[start : start + ENCODE_BATCH]
                pixels = processor.preprocess(chunk, height=size, width=size).to(vae.device, vae.dtype)
                posterior = vae.encode(pixels).latent_dist
                means.append(posterior.mean.float().cpu())
                stds.append(posterior.std.float().cpu())
        return torch.cat(means), torch.cat(stds)

    def _prompt_states(self, pairs: ImagePairs) -> torch.Tensor:
        """The text encoder's hidden states of every pair's prompt, as the pipeline encodes prompts, on the CPU."""
        states = []
        with torch.no_grad():
            for start in range(0, len(pairs.prompts), ENCODE_BATCH):
                chunk = pairs.prompts[start : start + ENCODE_BATCH]
                states.append(self.pipeline.encode_prompt(chunk, self.unet.device, 1, False)[0].float().cpu())
        return torch.cat(states)

    def save(self, folder: Path, base_model: str, base_commit: str | None) -> None:
        """``pytorch_lora_weights.safetensors`` in diffusers' LoRA format (``save_lora_weights``), with its config."""
        from diffusers.utils import convert_state_dict_to_diffusers
        from peft.utils import get_peft_model_state_dict

        # the diffusers LoRA format names no base (fade_eval.json does, portably): no local path in the weights file
        lora = name_base(self.unet.peft_config["default"], None, None)
        layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(self.unet))
        type(self.pipeline).save_lora_weights(folder, unet_lora_layers=layers, safe_serialization=True,
                                              unet_lora_adapter_metadata=lora.to_dict())
