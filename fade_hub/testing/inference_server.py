"""A local inference server speaking the routes ``InferenceClient`` calls, for endpoint tests and benchmarks.

``PipelineBackend`` serves a real (tiny) transformers or diffusers model the way TGI / the Inference
Endpoints toolkit do: ``POST /`` with ``{"inputs", "parameters"}`` (raw image bytes too) for every task,
``POST /v1/chat/completions`` (OpenAI-compatible; the chat template of the served tokenizer is applied to
the messages received), ``GET /info`` (model id and sha, like TGI), ``GET /v1/models`` and ``GET /health``.
``FixedBackend`` sleeps and answers a fixed payload, so that a benchmark measures the client, not a model;
``ScriptedBackend`` answers the fixed payload or, as the URL's query asks, one a client cannot read.

    python -m fade_hub.testing.inference_server --fixed text-classification --delay 0.05
    python -m fade_hub.testing.inference_server --task text-classification --model-dir DIR --model-id ID

print ``READY <url>`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fade_hub.testing.http_server import Faults, HTTPServerThread, Request, Response

FIXED_PAYLOADS: dict[str, Any] = {
    "text-classification": [[{"label": "POSITIVE", "score": 0.75}, {"label": "NEGATIVE", "score": 0.25}]],
    "image-classification": [{"label": "circle", "score": 0.5}, {"label": "square", "score": 0.3},
                             {"label": "triangle", "score": 0.2}],  # fmt: skip
    "text-generation": [{"generated_text": " fixed answer"}],
    "summarization": [{"summary_text": "fixed summary"}],
}


class FixedBackend:
    """Answers every POST with a fixed payload after ``delay_s`` seconds (no model); GET routes as a TGI server."""

    def __init__(self, payload: Any, delay_s: float = 0.05, model_id: str = "fixed/model") -> None:
        self.body = payload if isinstance(payload, bytes) else Response.json(payload).body
        self.delay_s, self.model_id = delay_s, model_id

    async def __call__(self, request: Request) -> Response:
        """Serve one request."""
        if request.method == "GET":
            return _get_route(request, self.model_id, None)
        await asyncio.sleep(self.delay_s)
        return Response(200, self.body)


class ScriptedBackend:
    """Answers each POST as its URL's ``?answer=`` query asks (see ``scripted_answer``): the task's fixed payload
    (``ok``, the default) or one a client cannot read, a body sent one byte per second, a refused credential. A
    run records no query string, so one recorded endpoint can be made to answer either way."""

    def __init__(self, task: str, model_id: str = "fixed/model") -> None:
        self.ok = Response.json(FIXED_PAYLOADS[task])
        self.model_id = model_id

    async def __call__(self, request: Request) -> Response:
        """Serve one request."""
        if request.method == "GET":
            return _get_route(request, self.model_id, None)
        answer = dict(part.partition("=")[::2] for part in request.query.split("&") if part).get("answer", "ok")
        return scripted_answer(answer) or self.ok


def scripted_answer(name: str) -> Response | None:
    """The scripted answer ``name`` (None for ``ok`` or an unknown name: the fixed payload)."""
    classes = [[{"label": "POSITIVE", "score": 0.5}, {"label": "NEGATIVE", "score": 0.5}]]
    answers = {
        "nan": lambda: Response(200, b'[[{"label": "POSITIVE", "score": NaN}, {"label": "NEGATIVE", "score": 0.5}]]'),
        "html": lambda: Response(200, b"<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html"),
        "empty": lambda: Response(200, b""),
        "null": lambda: Response(200, b"null"),
        "huge-label": lambda: Response.json([[{"label": "X" * 10_000_000, "score": 0.9}]]),
        "other-label": lambda: Response.json([[{"label": "joy", "score": 0.9}, {"label": "anger", "score": 0.1}]]),
        "object": lambda: Response.json([{"generated_text": {"text": "not a string"}}]),
        "trickle": lambda: Response(200, json.dumps(classes * 100).encode(), trickle_s=1.0),
        "refuse": lambda: Response.json({"error": "Authorization header is correct, but the token seems invalid"},
                                        status=401),  # fmt: skip
    }
    return answers[name]() if name in answers else None


def _get_route(request: Request, model_id: str, revision: str | None, labels: dict[int, str] | None = None) -> Response:
    if request.path.rstrip("/").endswith("/info"):
        info = {"model_id": model_id, "version": "fade-hub-test", "max_input_tokens": 128}
        if revision:
            info["model_sha"] = revision
        if labels:  # TEI reports a classifier's labels
            info["model_type"] = {"classifier": {"id2label": {str(k): v for k, v in labels.items()}}}
        return Response.json(info)
    if request.path.rstrip("/").endswith("/models"):
        return Response.json({"object": "list", "data": [{"id": model_id, "object": "model"}]})
    if request.path.rstrip("/").endswith("/health"):
        return Response.json({})
    return Response.json({"error": f"no route {request.path}"}, status=404)


class PipelineBackend:
    """A real model answering ``InferenceClient`` requests (one at a time, like a single-replica server)."""

    def __init__(
        self, task: str, model_dir: str | Path, model_id: str = "tester/served", revision: str | None = None,
        labels_in_info: bool = False,
    ) -> None:  # fmt: skip
        self.task, self.model_id, self.revision = task, model_id, revision
        self.model_dir = Path(model_dir)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fade-hub-test-model")
        self.pipeline = self._load()
        labels = getattr(getattr(getattr(self.pipeline, "model", None), "config", None), "id2label", None)
        self.labels = {int(k): str(v) for k, v in labels.items()} if labels_in_info and labels else None

    def close(self) -> None:
        """Let the model's worker thread go."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _load(self) -> Any:
        if self.task == "text-to-image":
            from diffusers import DiffusionPipeline

            pipe = DiffusionPipeline.from_pretrained(self.model_dir)
            pipe.set_progress_bar_config(disable=True)
            return pipe
        if self.task in ("text-generation", "summarization"):  # transformers 5 has no summarization pipeline
            from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

            auto = AutoModelForCausalLM if self.task == "text-generation" else AutoModelForSeq2SeqLM
            return _Generator(auto.from_pretrained(self.model_dir).eval(), AutoTokenizer.from_pretrained(self.model_dir))
        from transformers import pipeline

        return pipeline(self.task, model=str(self.model_dir), device="cpu")

    async def __call__(self, request: Request) -> Response:
        """Serve one request (model work on the backend's single worker thread)."""
        if request.method == "GET":
            return _get_route(request, self.model_id, self.revision, self.labels)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._answer, request)

    def _answer(self, request: Request) -> Response:
        if request.path.rstrip("/").endswith("/chat/completions"):
            return self._chat(request.json())
        if request.headers.get("content-type", "").startswith("image/") or self.task == "image-classification" and \
                "json" not in request.headers.get("content-type", ""):  # fmt: skip
            inputs, parameters = request.body, {}
        else:
            payload = request.json()
            inputs, parameters = payload.get("inputs"), payload.get("parameters") or {}
        if inputs in (None, ""):
            return Response.json({"error": "Input validation error: `inputs` cannot be empty"}, status=422)
        return getattr(self, "_" + self.task.replace("-", "_"))(inputs, parameters)

    def _image_classification(self, inputs: Any, parameters: dict) -> Response:
        from PIL import Image

        data = inputs if isinstance(inputs, bytes) else base64.b64decode(inputs)
        image = Image.open(io.BytesIO(data)).convert("RGB")
        return Response.json(self.pipeline(image, top_k=int(parameters.get("top_k") or 5)))

    def _text_classification(self, inputs: str, parameters: dict) -> Response:
        found = self.pipeline(inputs, top_k=int(parameters.get("top_k") or 1), truncation=True)
        return Response.json([found])

    def _summarization(self, inputs: str, parameters: dict) -> Response:
        text = self.pipeline.summarize(inputs, parameters.get("generate_parameters") or {})
        return Response.json([{"summary_text": text}])

    def _text_generation(self, inputs: str, parameters: dict) -> Response:
        text, prompt_tokens, tokens = self.pipeline.generate(inputs, parameters.get("max_new_tokens") or 20, True)
        if parameters.get("return_full_text"):
            text = inputs + text
        answer: dict[str, Any] = {"generated_text": text}
        if parameters.get("details"):
            answer["details"] = {"finish_reason": "length", "generated_tokens": tokens, "seed": parameters.get("seed"),
                                 "prefill": [], "tokens": []}  # fmt: skip
        return Response.json([answer])

    def _text_to_image(self, inputs: str, parameters: dict) -> Response:
        import torch

        generator = torch.Generator("cpu").manual_seed(int(parameters.get("seed") or 0))
        keep = ("num_inference_steps", "guidance_scale", "negative_prompt", "height", "width")
        image = self.pipeline(prompt=inputs, generator=generator, output_type="pil",
                              **{k: v for k, v in parameters.items() if k in keep}).images[0]  # fmt: skip
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return Response(200, buffer.getvalue(), content_type="image/png")

    def _chat(self, payload: dict) -> Response:
        if self.task != "text-generation":
            return Response.json({"error": "this model has no chat route"}, status=404)
        prompt = self.pipeline.tokenizer.apply_chat_template(payload["messages"], tokenize=False, add_generation_prompt=True)
        text, prompt_tokens, tokens = self.pipeline.generate(prompt, payload.get("max_tokens") or 20, False)
        return Response.json({
            "id": f"chatcmpl-{time.monotonic_ns()}", "object": "chat.completion", "created": int(time.time()),
            "model": payload.get("model") or self.model_id, "system_fingerprint": self.revision or "",
            "choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": tokens, "total_tokens": prompt_tokens + tokens},
        })  # fmt: skip


class _Generator:
    """Generation for one input: a greedy continuation (with token counts), or a summary."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = model, tokenizer

    def generate(self, prompt: str, max_new_tokens: int, special_tokens: bool) -> tuple[str, int, int]:
        """Generate greedily; ``special_tokens`` adds the tokenizer's specials (off for a rendered chat template)."""
        import torch

        encoded = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=special_tokens)
        with torch.inference_mode():
            output = self.model.generate(**encoded, do_sample=False, max_new_tokens=int(max_new_tokens))
        new = output[0, encoded["input_ids"].shape[1] :]
        return self.tokenizer.decode(new, skip_special_tokens=True), int(encoded["input_ids"].shape[1]), int(new.shape[0])

    def summarize(self, document: str, generate: dict) -> str:
        """An encoder-decoder summary, the config's task prefix applied (as the summarization pipeline did)."""
        import torch

        params = (getattr(self.model.config, "task_specific_params", None) or {}).get("summarization", {})
        encoded = self.tokenizer(params.get("prefix", "") + document, return_tensors="pt", truncation=True)
        with torch.inference_mode():
            output = self.model.generate(**encoded, **generate)
        return self.tokenizer.decode(output[0], skip_special_tokens=True).strip()


def serve(backend: Any, faults: Faults | None = None, port: int = 0, token: str | None = None) -> HTTPServerThread:
    """A started server for ``backend`` (a ``PipelineBackend`` or ``FixedBackend``); stop it or use ``with``."""
    return HTTPServerThread(backend, faults, port, token).start()


def main(argv: list[str] | None = None) -> int:
    """Run a server in the foreground until killed (for benchmarks and manual tries)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixed", choices=sorted(FIXED_PAYLOADS), help="answer this task's fixed payload (no model)")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds each fixed answer takes")
    parser.add_argument("--task", help="serve a real model of this task (with --model-dir)")
    parser.add_argument("--model-dir", help="the model folder to serve")
    parser.add_argument("--model-id", default="tester/served", help="the model id the server reports")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    if args.fixed:
        backend: Any = FixedBackend(FIXED_PAYLOADS[args.fixed], args.delay, args.model_id)
    elif args.task and args.model_dir:
        backend = PipelineBackend(args.task, args.model_dir, args.model_id)
    else:
        parser.error("pass --fixed TASK, or --task TASK --model-dir DIR")
    server = serve(backend, port=args.port)
    print(f"READY {server.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
