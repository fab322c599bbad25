"""Planted-failure classifiers for the discovery benchmark: real models that fail in known regions of a big space.

A planted fixture is a concept space plus *failure modes*, each a set of factor levels (and optionally
the seed classes it affects). The model is trained on seed inputs perturbed to random cells of the
space with the exact ops of the space (``ConceptSpace.apply``); inside a mode the training label is
shifted to the next class, so the trained model really answers wrong there. Nothing else is faked:
``grid`` exploration measures where it ends up failing, and that measurement is the ground truth.

A mode may hold for a share of the seeds only (``Mode.share``): it then applies to an input whose *key*, a number
in [0, 1) the model can see in the input (``PlantedFixture.key``; for shapes the size of the shape), is below the
share, so that the trained model fails there on that share of the seeds and not at random.

``HARD_IMAGE`` is the hard image fixture: the demo's shapes, drawn in vivid colours so that saturation
shows, under rotation x brightness x saturation x noise, six levels each (1296 cells), with three small
modes: one that only appears where two factors meet (tilted *and* dark), one at three factors, and one
at three factors that affects triangles only. ``MIXED_IMAGE`` has the same space and three regions of different
sizes and strengths: 216 cells (the heaviest noise) failing on about 30 % of the seeds (the smallest shapes),
36 cells of a two-factor interaction, and 72 cells that fail on squares only.
"""

from __future__ import annotations

import colorsys
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mode:
    """A planted failure mode: factor name -> the level indices where it applies; ``classes`` limits it."""

    name: str
    levels: dict[str, tuple[int, ...]]
    classes: tuple[str, ...] = ()
    share: float = 1.0  # the share of the seeds it holds for: those whose key is below it

    def covers(self, names: Sequence[str], cell: Sequence[int], label: str) -> bool:
        """Whether the mode applies to a seed of class ``label`` perturbed to ``cell``."""
        if self.classes and label not in self.classes:
            return False
        return all(cell[names.index(factor)] in allowed for factor, allowed in self.levels.items())


@dataclass(frozen=True)
class PlantedFixture:
    """A concept space (YAML layout) and the failure modes planted in the model trained over it."""

    name: str
    space: dict[str, Any]
    modes: tuple[Mode, ...]
    description: str = ""
    train: dict[str, Any] = field(default_factory=dict)
    key: Callable[[Any, str], float] | None = None  # an input's key in [0, 1) (given its class), for shared modes

    @property
    def factor_names(self) -> list[str]:
        """Factor names in space order."""
        return [factor["name"] for factor in self.space["factors"]]

    @property
    def shape(self) -> tuple[int, ...]:
        """Levels per factor."""
        return tuple(len(factor["levels"]) for factor in self.space["factors"])

    def planted(self, cell: Sequence[int], label: str, key: float = 0.0) -> bool:
        """Whether any mode applies to a seed of class ``label`` and key ``key`` at ``cell``."""
        return any(mode.covers(self.factor_names, cell, label) and key < mode.share for mode in self.modes)

    def planted_cells(self) -> set[int]:
        """Row-major ids of the cells some mode covers for at least one class."""
        cells = set()
        for action_id, cell in enumerate(np.ndindex(*self.shape)):
            if any(mode.covers(self.factor_names, cell, c) for mode in self.modes for c in mode.classes or ("",)):
                cells.add(action_id)
        return cells

    def write_space(self, path: Path) -> Path:
        """Write the concept space YAML to ``path``."""
        from fade_hub.perturb import ConceptSpace

        path.parent.mkdir(parents=True, exist_ok=True)
        ConceptSpace.from_dict(self.space).to_yaml(path)
        return path


HARD_IMAGE = PlantedFixture(
    name="shapes-hard",
    description="vivid shapes under rotation x brightness x saturation x noise (6^4 = 1296 cells), three planted modes",
    space={
        "modality": "image",
        "description": "Hard benchmark space: rotation x brightness x saturation x noise, 6 levels each (1296 cells)",
        "factors": [
            {"name": "rotation", "op": "rotate", "levels": [0, 9, 18, 27, 36, 45]},
            {"name": "brightness", "op": "brightness", "levels": [1.0, 0.85, 0.7, 0.55, 0.4, 0.25]},
            {"name": "saturation", "op": "saturation", "levels": [1.0, 0.8, 0.6, 0.4, 0.2, 0.0]},
            {"name": "noise", "op": "noise", "levels": [0, 0.03, 0.06, 0.1, 0.15, 0.25]},
        ],
    },
    modes=(
        # only where two factors meet: tilted shapes are fine, dark shapes are fine, dark tilted ones are not
        Mode("tilted-and-dark", {"rotation": (5,), "brightness": (5,)}),
        Mode("upright-grey-noisy", {"rotation": (0,), "saturation": (5,), "noise": (5,)}),
        Mode("bright-vivid-noisy-triangles", {"brightness": (0,), "saturation": (0,), "noise": (5,)}, ("triangle",)),
    ),
    train={"steps": 2500, "batch_size": 64, "lr": 3e-3},
)


# the drawn area of each demo shape as a multiple of its radius squared (``fade_hub.demo.shapes.draw_shape``),
# measured on drawn images (the outline's pixels make it a little more than the geometric pi, 1.7 ** 2, 1.3)
_AREA = {"circle": 3.414, "square": 3.268, "triangle": 1.516}
_RADIUS = (0.26, 0.4)  # the range of radii draw_shape draws from, as a share of the image side


def shape_size(image: Image.Image, label: str) -> float:
    """Where a shape's size lies in the range draw_shape draws from (0: smallest, 1: largest): the key of
    ``MIXED_IMAGE``'s partial mode, readable from the image under any perturbation."""
    pixels = np.asarray(image.convert("RGB"))
    shape = (pixels != pixels[0, 0]).any(axis=-1)  # the corner is always background
    radius = np.sqrt(shape.sum() / _AREA[label]) / shape.shape[0]
    return float(np.clip((radius - _RADIUS[0]) / (_RADIUS[1] - _RADIUS[0]), 0.0, 0.999))


MIXED_IMAGE = PlantedFixture(
    name="shapes-mixed",
    description="vivid shapes under rotation x brightness x saturation x noise (6^4 = 1296 cells), three planted "
                "regions of different sizes and strengths",
    space={**HARD_IMAGE.space, "description": "Mixed benchmark space: rotation x brightness x saturation x noise, "
                                              "6 levels each (1296 cells)"},
    modes=(
        # large and weak: the heaviest noise hides the smallest shapes only (about 30 % of the seeds)
        Mode("noisy-small-shapes", {"noise": (5,)}, share=0.3),
        # a two-factor interaction: tilted shapes are fine, dark shapes are fine, dark tilted ones are not
        Mode("tilted-and-dark", {"rotation": (5,), "brightness": (5,)}),
        # restricted to a class: nearly upright dark squares (the ResNet hardly sees saturation under the other
        # perturbations, so no mode here needs it)
        Mode("upright-dark-squares", {"rotation": (0, 1), "brightness": (5,)}, ("square",)),
    ),
    train={"steps": 3000, "batch_size": 64, "lr": 3e-3},
    key=shape_size,
)


def repaint(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A demo shape image with its shape in a fully saturated random hue, on a pale background of another hue."""
    pixels = np.asarray(image.convert("RGB"))
    shape = (pixels != pixels[0, 0]).any(axis=-1)  # the corner is always background; drawing is not antialiased
    colour = colorsys.hsv_to_rgb(rng.uniform(0, 1), 1.0, rng.uniform(0.45, 0.8))
    background = colorsys.hsv_to_rgb(rng.uniform(0, 1), 0.35, rng.uniform(0.85, 1.0))
    vivid = np.where(shape[..., None], np.array(colour), np.array(background)) * 255
    return Image.fromarray(vivid.round().astype(np.uint8), mode="RGB")


def draw_vivid_shape(label: str, rng: np.random.Generator) -> Image.Image:
    """The demo's shape of class ``label``, repainted in vivid colours (so that saturation changes show)."""
    from fade_hub.demo.shapes import draw_shape

    return repaint(draw_shape(label, rng), rng)


def write_vivid_seed_folder(folder: Path, per_class: int, seed: int) -> Path:
    """Write ``LABEL/NNN.png`` seed images (the layout ``--seeds`` reads): the demo's seeds, repainted."""
    from fade_hub.demo.shapes import write_seed_folder

    write_seed_folder(folder, per_class, seed=seed)
    rng = np.random.default_rng([seed, 1])
    for path in sorted(folder.glob("*/*.png")):
        with Image.open(path) as image:
            vivid = repaint(image, rng)
        vivid.save(path)
    return folder


def sample_training_cells(fixture: PlantedFixture, count: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """Training cells: a third uniform, a third inside some mode, a third one level away from a mode."""
    shape = fixture.shape
    names = fixture.factor_names
    cells = []
    for _ in range(count):
        cell = [int(rng.integers(size)) for size in shape]
        kind = rng.integers(3)
        if kind > 0:
            mode = fixture.modes[int(rng.integers(len(fixture.modes)))]
            for factor, allowed in mode.levels.items():
                cell[names.index(factor)] = int(rng.choice(allowed))
            if kind == 2:  # a near miss teaches the mode's edge
                k = names.index(list(mode.levels)[int(rng.integers(len(mode.levels)))])
                cell[k] = int(np.clip(cell[k] + rng.choice([-1, 1]), 0, shape[k] - 1))
        cells.append(tuple(cell))
    return cells


def planted_batches(fixture: PlantedFixture, classes: Sequence[str], make_input: Callable[[str, np.random.Generator], Any],
                    steps: int, rng: np.random.Generator) -> Iterator[tuple[list, list[int]]]:
    """Training batches: inputs of random classes perturbed to training cells, labelled with the next class in a mode."""
    from fade_hub.perturb import ConceptSpace

    space = ConceptSpace.from_dict(fixture.space)
    batch_size = fixture.train["batch_size"]
    for _ in range(steps):
        labels = rng.integers(len(classes), size=batch_size)
        cells = sample_training_cells(fixture, batch_size, rng)
        inputs, targets = [], []
        for label, cell in zip(labels, cells):
            clean = make_input(classes[label], rng)
            key = fixture.key(clean, classes[label]) if fixture.key is not None else 0.0
            inputs.append(space.apply(clean, cell, seed=int(rng.integers(2**31))))
            targets.append(int((label + 1) % len(classes) if fixture.planted(cell, classes[label], key) else label))
        yield inputs, targets


def fit(model, batches: Iterator[tuple[list, list[int]]], loss_of: Callable[[Any, list, list[int]], Any], steps: int,
        lr: float, progress: Callable[[int, float], None] | None = None) -> float:
    """AdamW with a one-cycle schedule over ``steps`` batches; return the last loss."""
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(steps, 1))
    model.train()
    loss = torch.zeros(())
    for step, (inputs, labels) in enumerate(batches):
        loss = loss_of(model, inputs, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if progress is not None:
            progress(step, float(loss.detach()))
    model.eval()
    return float(loss.detach())


def train_planted_classifier(
    folder: Path,
    fixture: PlantedFixture = HARD_IMAGE,
    *,
    seed: int = 0,
    steps: int | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> Path:
    """Train a small ResNet on vivid shapes perturbed over ``fixture``'s space, wrong inside its modes (idempotent)."""
    if (folder / "model.safetensors").exists():
        return folder
    import torch
    from transformers import ViTImageProcessor

    from fade_hub.demo.shapes import IMAGE_SIZE, LABELS, shapes_resnet, to_pixels

    steps = steps if steps is not None else fixture.train["steps"]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = shapes_resnet(24)
    loss = fit(model, planted_batches(fixture, LABELS, draw_vivid_shape, steps, rng),
               lambda m, images, labels: m(pixel_values=to_pixels(images), labels=torch.as_tensor(labels)).loss,
               steps, lr=fixture.train["lr"], progress=progress)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    ViTImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, do_resize=True).save_pretrained(folder)
    logger.info("trained the %s classifier in %s (last loss %.3f)", fixture.name, folder, loss)
    return folder
