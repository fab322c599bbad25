"""Remote targets against a local inference server backed by real tiny pipelines: answers, faults, labels, routes."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from PIL import Image

from fade_hub.errors import BadConfig, EndpointFailed, UnsupportedTask
from fade_hub.targets import RemoteConfig, load_remote_target, load_target
from fade_hub.targets.chat import chat_prompt, prompt_messages
from fade_hub.targets.endpoint import redact_url
from fade_hub.testing.http_server import Faults

TEXTS = [f"the film number {i} was {'great' if i % 2 else 'boring and far too long'}" for i in range(24)]


def _remote(model: str, url: str, task: str | None = None, **options) -> object:
    settings = {key: options.pop(key) for key in ("concurrency", "max_retries", "request_timeout", "labels",
                                                   "generation_route", "endpoint_token") if key in options}  # fmt: skip
    return load_remote_target(model, RemoteConfig(endpoint=url, **settings), task=task, **options)


def _same_answers(remote_out, local_out) -> None:
    assert [p.text for p in remote_out] == [p.text for p in local_out]
    assert [p.label for p in remote_out] == [p.label for p in local_out]
    assert [p.score for p in remote_out] == pytest.approx([p.score for p in local_out], abs=1e-5)
    for remote, local in zip(remote_out, local_out):
        assert remote.probs == pytest.approx(local.probs, abs=1e-5)


def test_text_classifier_matches_local_through_faults(served, tiny_models):
    """429s, 503s with Retry-After, slow answers and dropped connections: every answer still equals the local one."""
    faults = Faults(rate_limit_every=7, unavailable_every=11, slow_every=5, drop_every=13, slow_s=0.2)
    server = served("text-classification", faults, revision="a1b2c3d")
    folder = str(tiny_models("text-classification"))
    target = _remote(folder, server.url, concurrency=8)
    try:
        out = target.predict(TEXTS)
        used = target.take_usage()
    finally:
        target.close()
    _same_answers(out, load_target(folder, device="cpu").predict(TEXTS))
    assert server.stats.faults["rate_limit"] and server.stats.faults["unavailable"] and server.stats.faults["drop"]
    assert 1 < server.stats.max_in_flight <= 8
    failed = sum(count for kind, count in server.stats.faults.items() if kind != "slow")
    assert used["requests"] == len(TEXTS) and used["retries"] == failed == server.stats.requests - len(TEXTS)
    assert server.stats.answered == len(TEXTS)  # nothing asked twice once answered
    assert server.stats.authorized == 0  # HF_TOKEN goes to Hugging Face hosts only
    described = target.describe()
    assert described["commit_sha"] == "a1b2c3d" and described["endpoint"] == server.url
    assert described["labels"] == ["NEGATIVE", "POSITIVE"]  # from the local folder's config.json


def test_retry_after_is_honoured(served):
    """A 503 with Retry-After: 1 delays the retry by that second (the plain back-off would be 0.5 s)."""
    server = served("text-classification", Faults(unavailable_every=2, retry_after=1))
    target = _remote("someone/served", server.url, task="text-classification", concurrency=1,
                     labels=["NEGATIVE", "POSITIVE"])  # fmt: skip
    try:
        start = time.perf_counter()
        out = target.predict(["good", "bad"])
        waited = time.perf_counter() - start
    finally:
        target.close()
    assert len(out) == 2 and server.stats.faults["unavailable"] == 1
    assert waited >= 1.0


def test_timeouts_are_retried(served):
    """An answer slower than --request-timeout counts as a failure and is asked again."""
    server = served("text-classification", Faults(slow_every=3, slow_s=3.0))
    target = _remote("someone/served", server.url, task="text-classification", concurrency=2, request_timeout=0.5,
                     labels=["NEGATIVE", "POSITIVE"])  # fmt: skip
    try:
        out = target.predict(TEXTS[:6])
        used = target.take_usage()
    finally:
        target.close()
    assert len(out) == 6 and used["retries"] >= 1 and server.stats.faults["slow"] >= 1


def test_an_endpoint_that_keeps_failing_stops_after_handing_over_every_answer(served):
    server = served("text-classification", Faults(fail_from=5))
    target = _remote("someone/served", server.url + "/?api_key=SECRET", task="text-classification", concurrency=1,
                     max_retries=1, labels=["NEGATIVE", "POSITIVE"])  # fmt: skip
    answered = []
    try:
        with pytest.raises(EndpointFailed) as caught:
            for group in target.predict_stream(TEXTS[:10]):
                answered.extend(group)
    finally:
        target.close()
    message = str(caught.value)
    assert [index for index, _ in answered] == [0, 1, 2, 3] and all(p.text in ("NEGATIVE", "POSITIVE") for _, p in answered)
    assert message == f"{server.url}/ kept failing (HTTP 503) after 1 retry"  # recorded form: no query string


def test_a_first_ctrl_c_keeps_the_answers_in_flight(served):
    """Ctrl-C sends no new request and hands over the answers of those in flight before KeyboardInterrupt: every
    request the server received is answered to the caller (none to ask again on --resume)."""
    server = served("text-classification", Faults(slow_every=1, slow_s=0.3))
    target = _remote("someone/served", server.url, task="text-classification", concurrency=4,
                     labels=["NEGATIVE", "POSITIVE"])  # fmt: skip
    answered = []
    try:
        with pytest.raises(KeyboardInterrupt):
            for group in target.predict_stream(TEXTS):
                if not answered:
                    os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C does, once the first answer came
                answered.extend(group)
    finally:
        target.close()
    assert 4 <= len(answered) < len(TEXTS)  # the first answer and the requests in flight at the Ctrl-C
    assert server.stats.requests == server.stats.answered == len(answered)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Python's own handler is back


@pytest.mark.parametrize(
    ("answer", "task", "said"),
    [
        ("nan", "text-classification", "(RecursionError): HTTP 200, application/json, 76 bytes: '[[{\"label\": "
                                       "\"POSITIVE\", \"score\": NaN}"),
        ("html", "text-classification", "(JSONDecodeError: Expecting value: line 1 column 1 (char 0)): HTTP 200, "
                                        "text/html, 50 bytes: '<html><body><h1>502 Bad Gateway</h1></body></html>'"),
        ("object", "text-generation", "(ValueError: the generated text is a dict, not a string): HTTP 200"),
    ],
)
def test_an_answer_that_is_not_one_says_what_the_server_sent(answer, task, said):
    from fade_hub.testing.inference_server import ScriptedBackend, serve

    server = serve(ScriptedBackend(task))
    target = _remote("someone/served", f"{server.url}/?answer={answer}", task=task, labels=["NEGATIVE", "POSITIVE"])
    try:
        with pytest.raises(EndpointFailed) as caught:
            target.predict(["hello"])
    finally:
        target.close()
        server.stop()
    assert str(caught.value).startswith(f"{server.url}/ sent an answer that is not a {task} answer {said}")
    assert server.stats.requests == 1  # not retried


def test_a_refused_token_stops_at_once_without_leaking_it(served):
    server = served("text-classification", token="the_right_one")
    target = _remote("someone/served", server.url, task="text-classification", labels=["NEGATIVE", "POSITIVE"],
                     endpoint_token="a_wrong_one")  # fmt: skip
    try:
        with pytest.raises(EndpointFailed, match=r"^http://\S+ failed: HTTP 401: refused the credentials; pass "
                                                 r"--endpoint-token") as caught:  # fmt: skip
            target.predict(["hello"])
    finally:
        target.close()
    assert server.stats.requests == 1  # not retried
    assert "a_wrong_one" not in str(caught.value)


def test_labels_from_the_server_info_or_a_probe(served):
    """Without Hub metadata, class names come from TEI-style /info, else from one probe answer (alphabetical ids)."""
    with_info = served("text-classification", labels_in_info=True)
    target = _remote("someone/unknown", with_info.url, task="text-classification")
    assert target.id2label == {0: "NEGATIVE", 1: "POSITIVE"} and with_info.stats.requests == 0
    target.close()
    bare = served("text-classification")
    target = _remote("someone/unknown", bare.url, task="text-classification")
    assert target.id2label == {0: "NEGATIVE", 1: "POSITIVE"} and bare.stats.requests == 1
    target.close()
    target = _remote("someone/unknown", bare.url, task="text-classification", labels=["POSITIVE", "NEGATIVE"])
    try:
        first = target.predict(["lovely"])[0]
    finally:
        target.close()
    assert target.id2label == {0: "POSITIVE", 1: "NEGATIVE"} and first.label == target.label2id[first.text]


def test_an_answer_outside_the_labels_stops_with_advice(served):
    server = served("text-classification")
    target = _remote("someone/unknown", server.url, task="text-classification", labels=["neg", "pos"])
    try:
        with pytest.raises(EndpointFailed, match=r"answered class '(NEGATIVE|POSITIVE)', which is not one of --labels "
                                                 r"\(neg, pos\); give --labels the names the server answers with"):
            target.predict(["hello"])
    finally:
        target.close()


def test_task_needs_the_hub_or_task_flag(served):
    server = served("text-classification")
    with pytest.raises(UnsupportedTask, match="pass --task"):
        _remote("someone/not-on-any-hub", server.url)


def test_task_and_labels_from_the_hub_without_downloading_weights(served, hub, tiny_models):
    """A Hub repo holding only config.json and a card is enough: nothing but metadata is fetched."""
    from huggingface_hub import HfApi

    from conftest import unique_repo

    repo = unique_repo("served-config-only")
    api = HfApi()
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=str(tiny_models("text-classification") / "config.json"), path_in_repo="config.json",
                    repo_id=repo)  # fmt: skip
    api.upload_file(path_or_fileobj=b"---\npipeline_tag: text-classification\n---\n", path_in_repo="README.md", repo_id=repo)
    server = served("text-classification")
    target = _remote(repo, server.url)
    try:
        assert target.task == "text-classification" and target.id2label == {0: "NEGATIVE", 1: "POSITIVE"}
        assert target.describe()["hub_commit_sha"] and target.predict(["fine"])[0].text in ("NEGATIVE", "POSITIVE")
    finally:
        target.close()


def test_image_classifier_matches_local(served, tiny_models, shape_seeds):
    server = served("image-classification", Faults(drop_every=4))
    folder = str(tiny_models("image-classification"))
    images = [Image.open(path).convert("RGB") for path in sorted(shape_seeds.rglob("*.png"))]
    target = _remote(folder, server.url, concurrency=4)
    try:
        out = target.predict(images)
    finally:
        target.close()
    _same_answers(out, load_target(folder, device="cpu").predict(images))


def test_chat_applies_the_model_template_to_the_same_messages(served, tiny_models):
    """An OpenAI-style /v1 URL goes through chat_completion: the server renders the model's chat template on the
    messages ``prompt_messages`` makes, which is what a local run of the same model generates from."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    server = served("chat", task="text-generation")
    prompts = ["the cat sat", "hello world how are you", "please write a short story"]
    target = _remote("tester/served-chat", server.url + "/v1", task="text-generation", concurrency=3,
                     generation_kwargs={"max_new_tokens": 8})  # fmt: skip
    try:
        out = target.predict(prompts)
        used = target.take_usage()
    finally:
        target.close()
    assert target.route == "chat" and target.describe()["route"] == "chat"
    assert sorted(map(str, (body["messages"] for body in server.stats.bodies))) == sorted(
        map(str, (prompt_messages(p) for p in prompts))
    )
    folder = tiny_models("chat")
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(folder).eval()
    expected, prompt_tokens = [], 0
    for prompt in prompts:
        encoded = tokenizer(chat_prompt(tokenizer, prompt), return_tensors="pt", add_special_tokens=False)
        prompt_tokens += encoded["input_ids"].shape[1]
        generated = model.generate(**encoded, do_sample=False, max_new_tokens=8)
        expected.append(tokenizer.decode(generated[0, encoded["input_ids"].shape[1] :], skip_special_tokens=True))
    assert [p.text for p in out] == expected
    assert used["prompt_tokens"] == prompt_tokens and used["completion_tokens"] == 8 * len(prompts)


def test_text_generation_route_sends_the_raw_prompt(served, tiny_models):
    server = served("text-generation")
    prompts = ["the quick brown fox", "a photo of a cat"]
    folder = str(tiny_models("text-generation"))
    target = _remote(folder, server.url, generation_kwargs={"max_new_tokens": 6})
    try:
        out = target.predict(prompts)
        used = target.take_usage()
    finally:
        target.close()
    assert target.route == "text-generation"
    # both requests are in flight at once, so they may reach the server in either order
    assert sorted(body["inputs"] for body in server.stats.bodies) == sorted(prompts)
    local = load_target(folder, device="cpu", batch_size=1, generation_kwargs={"max_new_tokens": 6})
    assert [p.text for p in out] == [p.text for p in local.predict(prompts)]
    assert used["completion_tokens"] == 6 * len(prompts)


def test_summarizer_and_text_to_image_match_local(served, tiny_models):
    documents = ["scientists found water on a distant planet last year and the team talked about the plan"]
    folder = str(tiny_models("summarization"))
    target = _remote(folder, served("summarization").url, generation_kwargs={"max_new_tokens": 8})
    try:
        summaries = target.predict(documents)
    finally:
        target.close()
    local = load_target(folder, device="cpu", batch_size=1, generation_kwargs={"max_new_tokens": 8})
    assert [p.text for p in summaries] == [p.text for p in local.predict(documents)]

    folder = str(tiny_models("text-to-image"))
    kwargs = {"num_inference_steps": 2, "height": 32, "width": 32}
    target = _remote(folder, served("text-to-image").url, generation_kwargs=kwargs, seed=3)
    try:
        images = target.predict(["a cat", "a dog"])
        used = target.take_usage()
    finally:
        target.close()
    local = load_target(folder, device="cpu", batch_size=1, generation_kwargs=kwargs, seed=3)
    for remote_image, local_pred in zip(images, local.predict(["a cat", "a dog"])):
        assert np.array_equal(np.asarray(remote_image.image), np.asarray(local_pred.image))
    assert used["images"] == 2


def test_provider_reaches_the_client_without_network(monkeypatch):
    """--provider is handed to AsyncInferenceClient; the request it would send goes to that provider's route."""
    from huggingface_hub.hf_api import InferenceProviderMapping
    from huggingface_hub.inference._providers import _common, get_provider_helper

    target = load_remote_target("tester/some-chat-model", RemoteConfig(provider="together"), task="text-generation")
    try:
        assert target.client.provider == "together" and target.client.model == "tester/some-chat-model"
        assert target.route == "chat" and target.describe()["provider"] == "together"
    finally:
        target.close()
    mapping = InferenceProviderMapping(provider="together", providerId="Some/Chat-Model", hf_model_id="tester/some-chat-model",
                                       task="conversational", status="live")  # fmt: skip
    monkeypatch.setitem(_common.HARDCODED_MODEL_INFERENCE_MAPPING, "together", {"tester/some-chat-model": mapping})
    helper = get_provider_helper(target.client.provider, "conversational", target.client.model)

    def request(api_key: str):
        return helper.prepare_request(inputs=prompt_messages("hi"), parameters={}, headers={},
                                      model=target.client.model, api_key=api_key)

    # with a Hub token, through Hugging Face's router: on the provider's own route (huggingface_hub 2.4), or on the
    # router's OpenAI-compatible route with the provider named after the model id (2.5)
    routed = request("hf_x")
    provider_route = (routed.url.startswith("https://router.huggingface.co/together/")
                      and routed.json["model"] == "Some/Chat-Model")
    openai_route = (routed.url == "https://router.huggingface.co/v1/chat/completions"
                    and routed.json["model"] == "tester/some-chat-model:together")
    assert provider_route or openai_route, (routed.url, routed.json)
    direct = request("sk_x")  # with the provider's own key, straight to it, with its id of the model
    assert direct.url.startswith("https://api.together.xyz/") and direct.json["model"] == "Some/Chat-Model"
    with pytest.raises(BadConfig, match="--provider not-a-provider"):
        load_remote_target("tester/x", RemoteConfig(provider="not-a-provider"), task="text-generation")
    with pytest.raises(BadConfig, match="--provider groq"):  # groq serves chat only
        load_remote_target("tester/x", RemoteConfig(provider="groq"), task="image-classification")


def test_endpoint_is_recorded_without_secrets():
    url = "https://user:pa55@example.org:8443/models/x/?api_key=hf_SECRET#frag"
    assert redact_url(url) == "https://example.org:8443/models/x/"
    with pytest.raises(BadConfig, match="exactly one"):
        RemoteConfig(endpoint="http://a", provider="together")
    with pytest.raises(BadConfig, match="not an http"):
        RemoteConfig(endpoint="ftp://user:secret@host/")


def test_batch_size_stays_the_users_and_warns_when_it_starves_the_endpoint(served, caplog):
    """The batch is the explorers' too, so concurrency never changes what is explored; too small a batch is named."""
    server = served("text-classification")
    with caplog.at_level("WARNING", logger="fade_hub.targets.remote"):
        target = _remote("someone/x", server.url, task="text-classification", concurrency=8, batch_size=16,
                         labels=["NEGATIVE", "POSITIVE"])  # fmt: skip
    target.close()
    assert target.batch_size == 16 and "a batch size of 32 or more keeps it busy" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="fade_hub.targets.remote"):
        target = _remote("someone/x", server.url, task="text-classification", concurrency=4, batch_size=16,
                         labels=["NEGATIVE", "POSITIVE"])  # fmt: skip
    target.close()
    assert target.batch_size == 16 and not caplog.text
