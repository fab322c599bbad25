"""The options that name a run's judge (``JudgeOptions``): a section of ``ExploreConfig``, turned into the judges'
``JudgeConfig`` in one place (``fade_hub.assembly.judge_config``)."""

from __future__ import annotations

from dataclasses import dataclass

from fade_hub.errors import BadConfig
from fade_hub.options import option

JUDGE_GROUP = "concept space and judge"


@dataclass
class JudgeOptions:
    """Which judge calls an answer a failure: a model, a built-in judge, words, a pattern or an LLM with a rubric."""

    judge: str | None = option(None, group=JUDGE_GROUP, help="A Hub model ID used as the judge: a text-classification "
                               "model for generated text, an image classifier for text-to-image (the right label is "
                               "the one the prompt names); a built-in judge by name (rouge, label, clip), or your "
                               "own package.module:Class (with --allow-user-code).")
    judge_label: str | None = option(None, group=JUDGE_GROUP,
                                     help="The judge model's label that counts as a failure (e.g. toxic).")
    judge_keywords: list[str] = option(group=JUDGE_GROUP, csv=True, default_factory=list,
                                       help="Comma-separated words whose presence in the output is a failure.")
    judge_regex: str | None = option(None, group=JUDGE_GROUP,
                                     help="A regular expression whose match in the output is a failure.")
    judge_threshold: float | None = option(None, group=JUDGE_GROUP, low=0.0, high=1.0, help="Failure threshold: judge "
                                           "score (classifier), share of ROUGE-L kept (summarization), CLIP cosine "
                                           "(text-to-image) or, with an image-classifier judge, the least probability "
                                           "of the label the prompt names (default: its top class must be it).")
    clip: str | None = option(None, group=JUDGE_GROUP,
                              help="Text-to-image: CLIP model ID scoring image-prompt similarity.")
    judge_llm: str | None = option(None, group=JUDGE_GROUP, metavar="MODEL_ID", help="Judge text with a chat model and "
                                   "a rubric (--judge-rubric): loaded here on --judge-device, or the model "
                                   "--judge-endpoint / --judge-provider serves. It answers JSON verdicts with a "
                                   "reason, greedily, cached by (rubric, judge, input, answer).")
    judge_endpoint: str | None = option(None, group=JUDGE_GROUP, metavar="URL", help="The LLM judge is served at this "
                                        "URL (a TGI, vLLM or OpenAI-compatible chat server); with the same retries "
                                        "and --concurrency as --endpoint.")
    judge_provider: str | None = option(None, group=JUDGE_GROUP, metavar="NAME", help="The LLM judge (--judge-llm) is "
                                        "asked through this Inference Provider, with HF_TOKEN.")
    judge_endpoint_token: str | None = option(None, group=JUDGE_GROUP, metavar="TOKEN", secret=True, help="Bearer "
                                              "token sent to --judge-endpoint and nowhere else (default: "
                                              "$FADE_HUB_JUDGE_TOKEN); never recorded. HF_TOKEN goes to Hugging Face "
                                              "hosts only.")
    judge_rubric: str | None = option(None, group=JUDGE_GROUP, metavar="NAME|FILE", help="What the LLM judge calls a "
                                      "failure: a built-in rubric (harmful, refusal, off-task for text generation; "
                                      "unfaithful, missing-key-point for summaries) or a YAML file with question, "
                                      "fail, pass and optional examples (default: harmful, or unfaithful).")
    judge_device: str | None = option(None, group=JUDGE_GROUP,
                                      help="Where a local LLM judge runs (default: as --device).")
    judge_audit: int = option(0, group=JUDGE_GROUP, low=0, help="Mark this many judged answers, half failing and half "
                              "passing, for reviewers to check (run.json judge_audit), so that the judge's agreement "
                              "with them is measured on passes too.")

    def check(self) -> None:
        """BadConfig when two judges are named, or the LLM judge's flags disagree with each other; a rubric file
        reads."""
        self.check_llm()
        if self.clip and self.judge not in (None, "clip"):
            raise BadConfig(f"--clip names the CLIP judge and --judge {self.judge} another; pass one of them")

    def check_llm(self) -> None:
        """The LLM judge's flags agree with each other and with the other judges; a rubric file reads."""
        served = self.judge_endpoint or self.judge_provider
        if not (self.judge_llm or served):
            for flag, value in (("--judge-rubric", self.judge_rubric),
                                ("--judge-endpoint-token", self.judge_endpoint_token)):
                if value:
                    raise BadConfig(f"{flag} is for the LLM judge: pass --judge-llm MODEL_ID or --judge-endpoint URL")
            return
        other = [flag for flag, value in (("--judge-keywords", self.judge_keywords), ("--judge-regex", self.judge_regex),
                                          ("--judge", self.judge), ("--clip", self.clip)) if value]
        if other:
            raise BadConfig(f"--judge-llm/--judge-endpoint and {other[0]} name two judges; pass one of them")
        if self.judge_endpoint and self.judge_provider:
            raise BadConfig("--judge-endpoint and --judge-provider exclude each other")
        if self.judge_provider and not self.judge_llm:
            raise BadConfig("--judge-provider needs --judge-llm MODEL_ID: the model the provider serves")
        if self.judge_endpoint and not self.judge_endpoint.startswith(("http://", "https://")):
            raise BadConfig("--judge-endpoint must be an http:// or https:// URL")
        if self.judge_endpoint_token and not self.judge_endpoint:
            raise BadConfig("--judge-endpoint-token is sent to --judge-endpoint, and none is given")
        if self.judge_rubric:
            from fade_hub.judges.rubric import load_rubric

            load_rubric(self.judge_rubric)
