"""Which credential goes where: a test endpoint records the headers it receives (issue 25, items 23 and 24)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fade_hub.cli import main
from fade_hub.errors import BadConfig
from fade_hub.perturb import ConceptSpace
from fade_hub.targets import RemoteConfig
from fade_hub.targets.endpoint import ENDPOINT_TOKEN_ENV, is_hugging_face_url
from fade_hub.testing.inference_server import ScriptedBackend, serve

HF_TOKEN = "hf_dummy_test_token"  # conftest's
TEXT_SPACE = {"modality": "text", "factors": [{"name": "case", "op": "case", "levels": ["none", "upper"]}]}


@pytest.fixture
def endpoint(hub):  # the Hub answers the model's metadata lookups at once (not found)
    server = serve(ScriptedBackend("text-classification"))
    yield server
    server.stop()


def _explore(url: str, tmp_path, *flags: str) -> list[str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    space = tmp_path / "space.yaml"
    ConceptSpace.from_dict(TEXT_SPACE).to_yaml(space)
    return ["explore", "someone/classifier", "--task", "text-classification", "--labels", "NEGATIVE,POSITIVE",
            "--seeds", "builtin:sentences", "--num-seeds", "4", "--concepts", str(space), "--algorithm", "random",
            "--budget", "2", "--confirm-top", "0", "--concurrency", "1", "--batch-size", "4", "--no-progress",
            "--output", str(tmp_path / "run"), "--endpoint", url, *flags]  # fmt: skip


def _authorizations(server) -> list[str | None]:
    """The Authorization header of every request the server received (GET /info included)."""
    return [headers.get("authorization") for headers in server.stats.headers]


def test_the_hub_token_never_reaches_another_host(endpoint, tmp_path, capsys):
    assert main(_explore(endpoint.url, tmp_path)) == 0
    assert len(endpoint.stats.headers) > endpoint.stats.requests > 0  # the /info probe and the queries
    assert _authorizations(endpoint) == [None] * len(endpoint.stats.headers)
    capsys.readouterr()
    assert main(["report", str(tmp_path / "run")]) == 0  # the report names where the model was served
    assert capsys.readouterr().out.startswith(f"someone/classifier (served at {endpoint.url}): ")


def test_the_endpoint_token_goes_to_the_endpoint_only(endpoint, tmp_path, monkeypatch):
    assert main(_explore(endpoint.url, tmp_path, "--endpoint-token", "for-this-server")) == 0
    assert set(_authorizations(endpoint)) == {"Bearer for-this-server"}
    assert "for-this-server" not in "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())
    endpoint.stats.headers.clear()
    monkeypatch.setenv(ENDPOINT_TOKEN_ENV, "from-the-environment")
    assert main(_explore(endpoint.url, tmp_path / "env")) == 0
    assert set(_authorizations(endpoint)) == {"Bearer from-the-environment"}


def test_a_hugging_face_host_gets_the_hub_token(endpoint, tmp_path, monkeypatch):
    """An endpoint on the Hub's own host (HF_ENDPOINT) is a Hugging Face service: HF_TOKEN goes along."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", endpoint.url)
    assert main(_explore(endpoint.url + "/", tmp_path)) == 0
    assert set(_authorizations(endpoint)) == {f"Bearer {HF_TOKEN}"}


@pytest.mark.parametrize(
    ("url", "is_hf"),
    [
        ("https://abc123.us-east-1.aws.endpoints.huggingface.cloud", True),
        ("https://router.huggingface.co/v1", True),
        ("http://router.huggingface.co/v1", False),  # not over plain http
        ("https://router.huggingface.co.evil.example/v1", False),
        ("https://evil.example/abc.endpoints.huggingface.cloud", False),
        ("https://endpoints.huggingface.cloud.evil.example", False),
        ("http://127.0.0.1:8080", False),
    ],
)
def test_hugging_face_hosts(url, is_hf):
    assert is_hugging_face_url(url) is is_hf


def test_no_credential_over_plain_http_to_another_machine(monkeypatch):
    monkeypatch.delenv(ENDPOINT_TOKEN_ENV, raising=False)
    for url, token in (("http://192.0.2.7:8080", "t"), ("http://me:secret@192.0.2.7", None),
                       ("http://some-server.example/v1", "t")):  # fmt: skip
        with pytest.raises(BadConfig, match="plain http to another machine") as caught:
            RemoteConfig(endpoint=url, endpoint_token=token)
        assert "secret" not in str(caught.value)
    assert RemoteConfig(endpoint="http://192.0.2.7:8080").credential is None  # no credential: fine
    assert RemoteConfig(endpoint="https://192.0.2.7:8080", endpoint_token="t").credential == "t"
    assert RemoteConfig(endpoint="http://localhost:8080", endpoint_token="t").credential == "t"  # this machine
    assert RemoteConfig(endpoint="http://[::1]:8080", endpoint_token="t").credential == "t"


@pytest.mark.slow
def test_debug_output_shows_no_user_info_or_query(endpoint, tmp_path):
    """--debug logs every request (httpx, huggingface_hub, fade-hub): the URL's password and api_key never show."""
    url = endpoint.url.replace("http://", "http://someone:pa55word@") + "/?api_key=S3CRET&answer=ok"
    done = subprocess.run([sys.executable, "-m", "fade_hub.cli", "--debug", *_explore(url, tmp_path)],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"POST {endpoint.url}/ " in done.stderr  # the requests are logged, redacted
    assert "pa55word" not in done.stderr + done.stdout and "S3CRET" not in done.stderr + done.stdout
    assert "someone@" not in done.stderr
    assert {headers.get("authorization", "")[:6] for headers in endpoint.stats.headers} == {"Basic "}  # its own
