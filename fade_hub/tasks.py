"""The task registry: one ``TaskSpec`` per task fade-hub explores, the single source of every per-task fact.

Targets, judges, seeds, concept spaces, the dataset card, the feedback app, the tiny test models and
mitigation all read what a task means from here. Adding a task is one ``TaskSpec`` plus the modules it
names. Classes are named as ``"package.module:Class"`` strings and imported on demand, so this module
stays a leaf that the Space (which has no torch) can import.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from .errors import UnsupportedTask

CORRECTION_KINDS = ("label", "text", "image")


@dataclass(frozen=True)
class ModalitySpec:
    """What one kind of seed input means to fade-hub: how seeds are read, and what a run can show of them."""

    name: str
    image_seeds: bool  # seeds are pictures (an image folder or an Image column), else text
    templates: bool  # seeds are prompt templates with ``{slot}`` placeholders that the concepts fill
    clean_input: bool  # a seed can be asked unperturbed (a prompt only exists once the concepts fill it)
    media: bool  # a query's input or answer is a picture stored with the run
    clean_media: bool  # the unperturbed seed is a picture shown beside the perturbed one


MODALITY_SPECS: dict[str, ModalitySpec] = {
    spec.name: spec
    for spec in (
        ModalitySpec("image", image_seeds=True, templates=False, clean_input=True, media=True, clean_media=True),
        ModalitySpec("text", image_seeds=False, templates=False, clean_input=True, media=False, clean_media=False),
        ModalitySpec("prompt", image_seeds=False, templates=True, clean_input=False, media=True, clean_media=False),
    )
}
MODALITIES = tuple(MODALITY_SPECS)


@dataclass(frozen=True)
class TaskSpec:
    """What one task means to fade-hub.

    ``target``/``mitigator`` are ``"module:Class"`` paths imported on demand (``remote_target``: the class that
    queries a model served by an endpoint or an Inference Provider); ``judges`` lists the judge
    kinds that apply, ``default_judge`` is used when the user names none (None: the user must choose);
    ``correction`` is what a reviewer may give for one example (a label, a preferred text, or accepting a
    generated image); ``peft_task_type`` is peft's ``TaskType`` name (None where peft has none); ``diffusers``:
    its models are diffusers pipelines (else transformers models); ``adapter_library`` and ``adapter_tags`` go
    into the card of a mitigated variant, with ``adapter_snippet``.
    """

    name: str
    modality: str
    target: str
    judges: tuple[str, ...]
    default_judge: str | None
    correction: str
    card_category: str
    peft_task_type: str | None
    default_space: str
    default_seeds: str | None
    mitigator: str
    pipeline_tags: tuple[str, ...] = ()
    remote_target: str = ""
    diffusers: bool = False
    adapter_library: str = "peft"
    adapter_tags: tuple[str, ...] = ()
    adapter_snippet: str = ""  # stock code that loads a mitigated variant ({repo}, {base}), for its card

    def __post_init__(self) -> None:
        if self.modality not in MODALITY_SPECS:
            raise ValueError(f"task {self.name}: unknown modality {self.modality!r}")
        if self.correction not in CORRECTION_KINDS:
            raise ValueError(f"task {self.name}: unknown correction kind {self.correction!r}")
        if self.default_judge is not None and self.default_judge not in self.judges:
            raise ValueError(f"task {self.name}: default judge {self.default_judge!r} is not one of its judges")

    @property
    def modality_spec(self) -> ModalitySpec:
        """The facts of this task's seed inputs."""
        return MODALITY_SPECS[self.modality]

    def target_class(self) -> type:
        """The ``Target`` subclass that loads and runs models of this task."""
        return load_object(self.target)

    def remote_target_class(self) -> type:
        """The ``RemoteTarget`` subclass that queries served models of this task."""
        if not self.remote_target:
            raise UnsupportedTask(f"task {self.name!r} cannot be explored through an endpoint or a provider")
        return load_object(self.remote_target)

    def mitigator_class(self) -> type:
        """The ``Mitigator`` subclass that trains LoRA adapters for this task."""
        return load_object(self.mitigator)


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            name="image-classification",
            modality="image",
            target="fade_hub.targets.image_classification:ImageClassifier",
            judges=("label",),
            default_judge="label",
            correction="label",
            card_category="image-classification",
            peft_task_type=None,  # peft has no image-classification TaskType: LoRA + modules_to_save on the head
            default_space="image-default",
            default_seeds=None,
            mitigator="fade_hub.mitigate.classifier:ClassifierMitigator",
            pipeline_tags=("image-classification",),
            remote_target="fade_hub.targets.remote_tasks:RemoteImageClassifier",
            adapter_snippet=(
                "from peft import PeftModel\nfrom transformers import AutoModelForImageClassification, pipeline\n\n"
                'model = PeftModel.from_pretrained(AutoModelForImageClassification.from_pretrained("{base}"), '
                '"{repo}")\n'
                'classifier = pipeline("image-classification", model="{repo}")'
            ),
        ),
        TaskSpec(
            name="text-classification",
            modality="text",
            target="fade_hub.targets.text_classification:TextClassifier",
            judges=("label",),
            default_judge="label",
            correction="label",
            card_category="text-classification",
            peft_task_type="SEQ_CLS",
            default_space="text-default",
            default_seeds="builtin:sentences",
            mitigator="fade_hub.mitigate.classifier:ClassifierMitigator",
            pipeline_tags=("text-classification", "sentiment-analysis"),
            remote_target="fade_hub.targets.remote_tasks:RemoteTextClassifier",
            adapter_snippet=(
                "from peft import AutoPeftModelForSequenceClassification\nfrom transformers import pipeline\n\n"
                'model = AutoPeftModelForSequenceClassification.from_pretrained("{repo}")\n'
                'classifier = pipeline("text-classification", model="{repo}")'
            ),
        ),
        TaskSpec(
            name="text-generation",
            modality="text",
            target="fade_hub.targets.text_generation:TextGenerator",
            judges=("classifier", "keywords", "regex", "llm"),
            default_judge=None,
            correction="text",
            card_category="text-generation",
            peft_task_type="CAUSAL_LM",
            default_space="text-invariant",
            default_seeds="builtin:prompts",
            mitigator="fade_hub.mitigate.language_model:LanguageModelMitigator",
            pipeline_tags=("text-generation",),
            remote_target="fade_hub.targets.remote_tasks:RemoteTextGenerator",
            adapter_snippet=(
                "from peft import AutoPeftModelForCausalLM\nfrom transformers import AutoTokenizer, pipeline\n\n"
                'model = AutoPeftModelForCausalLM.from_pretrained("{repo}")\n'
                'tokenizer = AutoTokenizer.from_pretrained("{repo}")'
                "  # with the chat template the run used\n"
                'generator = pipeline("text-generation", model="{repo}")'
            ),
        ),
        TaskSpec(
            name="summarization",
            modality="text",
            target="fade_hub.targets.summarization:Summarizer",
            judges=("rouge", "classifier", "keywords", "regex", "llm"),
            default_judge="rouge",
            correction="text",
            card_category="summarization",
            peft_task_type="SEQ_2_SEQ_LM",
            default_space="text-invariant",
            default_seeds="builtin:articles",
            mitigator="fade_hub.mitigate.seq2seq:Seq2SeqMitigator",
            pipeline_tags=("summarization", "text2text-generation"),
            remote_target="fade_hub.targets.remote_tasks:RemoteSummarizer",
            adapter_snippet=(
                "from peft import AutoPeftModelForSeq2SeqLM\nfrom transformers import AutoTokenizer, pipeline\n\n"
                'model = AutoPeftModelForSeq2SeqLM.from_pretrained("{repo}")\n'
                'tokenizer = AutoTokenizer.from_pretrained("{repo}")\n'
                'summarizer = pipeline("summarization", model="{repo}")'
            ),
        ),
        TaskSpec(
            name="text-to-image",
            modality="prompt",
            target="fade_hub.targets.text_to_image:TextToImage",
            judges=("clip", "image-classifier"),
            default_judge="clip",
            correction="image",
            card_category="text-to-image",
            peft_task_type=None,  # a diffusers UNet LoRA, saved in diffusers' LoRA format
            default_space="paper-prompts",
            default_seeds="builtin:paper-activities",
            mitigator="fade_hub.mitigate.diffusion:DiffusionMitigator",
            pipeline_tags=("text-to-image",),
            remote_target="fade_hub.targets.remote_tasks:RemoteTextToImage",
            diffusers=True,
            adapter_library="diffusers",
            adapter_tags=("diffusers", "diffusers-training"),
            adapter_snippet=(
                "from diffusers import DiffusionPipeline\n\n"
                'pipe = DiffusionPipeline.from_pretrained("{base}")\npipe.load_lora_weights("{repo}")'
            ),
        ),
    )
}
TASK_NAMES = tuple(TASKS)


def get_task(name: str) -> TaskSpec:
    """The spec of a supported task; UnsupportedTask naming the supported ones otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnsupportedTask(f"task {name!r} is not supported; choose one of: {', '.join(TASKS)}") from None


def get_modality(name: str) -> ModalitySpec:
    """The facts of a modality (``image``, ``text``, ``prompt``); ValueError naming the known ones otherwise."""
    try:
        return MODALITY_SPECS[name]
    except KeyError:
        raise ValueError(f"unknown modality {name!r}; known: {', '.join(MODALITY_SPECS)}") from None


def task_for_pipeline_tag(tag: str | None) -> str | None:
    """The supported task a Hub ``pipeline_tag`` stands for, or None."""
    return next((spec.name for spec in TASKS.values() if tag in spec.pipeline_tags), None)


def load_object(path: str) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)
