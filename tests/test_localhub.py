"""LocalHub through the real, unmodified clients: huggingface_hub, datasets, transformers, peft."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import free_port, unique_repo

from fade_hub.localhub import LocalHub


def _client_env(endpoint: str, hf_home: Path, token: str = "hf_dummy_test_token") -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("HF_")}
    env.update(HF_ENDPOINT=endpoint, HF_HUB_DISABLE_XET="1", HF_TOKEN=token, HF_HOME=str(hf_home))
    env.update(HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_TELEMETRY="1")
    return env


def _run_client(code: str, env: dict[str, str], timeout: float = 120) -> str:
    """Run Python code in a fresh interpreter; return its stdout (fail the test on a non-zero exit)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def api(hub):
    from huggingface_hub import HfApi

    return HfApi()


def test_create_repos_of_every_type(api):
    from huggingface_hub.errors import HfHubHTTPError

    model, dataset, space = unique_repo("model"), unique_repo("data"), unique_repo("space")
    assert api.create_repo(model).repo_id == model
    assert api.create_repo(dataset, repo_type="dataset").repo_type == "dataset"
    assert api.create_repo(space, repo_type="space", space_sdk="gradio").repo_id == space
    assert api.create_repo(model, exist_ok=True).repo_id == model
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo(dataset, repo_type="dataset")
    assert err.value.response.status_code == 409
    assert api.space_info(space).sdk == "gradio"
    assert api.list_repo_files(dataset, repo_type="dataset") == [".gitattributes"]
    api.add_space_variable(space, "MODEL_ID", "org/model")
    assert api.get_space_variables(space)["MODEL_ID"].value == "org/model"
    api.update_repo_settings(model, private=True)
    assert api.model_info(model).private is True
    api.delete_repo(model)
    assert not api.repo_exists(model)


def test_upload_download_branches_and_history(api, tmp_path):
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, hf_hub_download, snapshot_download
    from safetensors.numpy import save_file

    repo = unique_repo("files")
    api.create_repo(repo)
    folder = tmp_path / "upload"
    (folder / "docs").mkdir(parents=True)
    (folder / "README.md").write_text("---\nlicense: mit\ntags: [tiny]\n---\n# tiny\n")
    (folder / "docs" / "notes.txt").write_text("version 1")
    weights = np.random.default_rng(0).standard_normal(300_000).astype(np.float32)
    save_file({"w": weights}, str(folder / "model.safetensors"))
    first = api.upload_folder(folder_path=folder, repo_id=repo, commit_message="first")

    info = api.model_info(repo, files_metadata=True)
    assert info.sha == first.oid and info.card_data.license == "mit" and info.tags == ["tiny"]
    siblings = {sibling.rfilename: sibling for sibling in info.siblings}
    assert siblings["model.safetensors"].lfs is not None and siblings["model.safetensors"].size > 1_000_000
    assert siblings["docs/notes.txt"].lfs is None
    assert api.file_exists(repo, "docs/notes.txt") and not api.file_exists(repo, "docs/missing.txt")

    second = api.create_commit(
        repo,
        [CommitOperationAdd("docs/notes.txt", b"version 2"), CommitOperationDelete("README.md")],
        commit_message="second",
    )
    assert sorted(api.list_repo_files(repo)) == [".gitattributes", "docs/notes.txt", "model.safetensors"]
    assert [commit.title for commit in api.list_repo_commits(repo)][:2] == ["second", "first"]
    assert Path(hf_hub_download(repo, "docs/notes.txt")).read_text() == "version 2"
    assert Path(hf_hub_download(repo, "docs/notes.txt", revision=first.oid)).read_text() == "version 1"
    assert Path(hf_hub_download(repo, "README.md", revision=first.oid)).exists()
    downloaded = Path(hf_hub_download(repo, "model.safetensors", revision=second.oid))
    assert downloaded.read_bytes() == (folder / "model.safetensors").read_bytes()

    api.create_branch(repo, branch="v1", revision=first.oid)
    snapshot = Path(snapshot_download(repo, revision="v1"))
    assert (snapshot / "docs" / "notes.txt").read_text() == "version 1" and (snapshot / "README.md").exists()
    assert {ref.name for ref in api.list_repo_refs(repo).branches} == {"main", "v1"}
    assert (Path(snapshot_download(repo, revision=second.oid)) / "docs" / "notes.txt").read_text() == "version 2"


def test_resolve_headers_and_range_reads(api, hub):
    from huggingface_hub import CommitOperationAdd

    repo = unique_repo("range")
    api.create_repo(repo, repo_type="dataset")
    payload = bytes(range(256)) * 64
    commit = api.create_commit(
        repo, [CommitOperationAdd("blob.bin", payload)], commit_message="binary", repo_type="dataset"
    )
    url = f"{hub.endpoint}/datasets/{repo}/resolve/main/blob.bin"
    request = urllib.request.Request(url, headers={"Range": "bytes=100-299"})
    with urllib.request.urlopen(request) as response:
        assert response.status == 206 and response.read() == payload[100:300]
        assert response.headers["Content-Range"] == f"bytes 100-299/{len(payload)}"
    with urllib.request.urlopen(urllib.request.Request(url, method="HEAD")) as response:
        assert response.headers["X-Repo-Commit"] == commit.oid
        assert response.headers["Content-Length"] == str(len(payload))
        sha256 = hashlib.sha256(payload).hexdigest()
        assert response.headers["X-Linked-Etag"] == response.headers["ETag"] == f'"{sha256}"'
        assert "X-Xet-Hash" not in response.headers
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(urllib.request.Request(url, headers={"Range": f"bytes={len(payload)}-"}))
    assert err.value.code == 416


def test_typed_errors(api):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    repo = unique_repo("errors")
    api.create_repo(repo)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(unique_repo("missing"))
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(unique_repo("missing"), "config.json")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo, ".gitattributes", revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        api.list_repo_files(repo, revision="refs/convert/parquet")
    with pytest.raises(RevisionNotFoundError):
        api.model_info(repo, revision="0" * 40)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo, "missing.py")
    with pytest.raises(ValueError, match="Invalid metadata"):  # /api/validate-yaml rejects a broken card header
        api.upload_file(path_or_fileobj=b"---\nlicense: [mit\n---\n", path_in_repo="README.md", repo_id=repo)


@pytest.mark.slow  # end to end (a served app, a subprocess or timed requests): the slow tier
def test_dataset_push_then_load_in_fresh_process(api, hub, tmp_path):
    import datasets
    from PIL import Image

    rng = np.random.default_rng(1)

    def split(rows: int) -> datasets.Dataset:
        images = [Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)) for _ in range(rows)]
        features = datasets.Features(
            {"text": datasets.Value("string"), "label": datasets.Value("int64"), "image": datasets.Image()}
        )
        data = {"text": [f"row {i}" for i in range(rows)], "label": list(range(rows)), "image": images}
        return datasets.Dataset.from_dict(data, features=features)

    original = datasets.DatasetDict({"train": split(5), "test": split(3)})
    repo = unique_repo("dataset")
    original.push_to_hub(repo)

    out = _run_client(
        f"""
        import json
        import numpy as np
        from datasets import load_dataset
        loaded = load_dataset({repo!r})
        print(json.dumps({{
            name: [[row["text"], row["label"], np.asarray(row["image"]).tobytes().hex()] for row in split]
            for name, split in loaded.items()
        }}))
        """,
        _client_env(hub.endpoint, tmp_path / "fresh_home"),
    )
    loaded = json.loads(out.strip().splitlines()[-1])
    expected = {
        name: [[row["text"], row["label"], np.asarray(row["image"]).tobytes().hex()] for row in split]
        for name, split in original.items()
    }
    assert loaded == expected


def test_tiny_gpt2_and_lora_adapter_round_trip(api):
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64, n_positions=32)
    repo = unique_repo("gpt2")
    GPT2LMHeadModel(config).push_to_hub(repo)
    reloaded = AutoModelForCausalLM.from_pretrained(repo)
    pushed = GPT2LMHeadModel.from_pretrained(repo)
    for name, tensor in pushed.state_dict().items():
        assert torch.equal(tensor, reloaded.state_dict()[name]), name

    adapter_repo = unique_repo("lora")
    lora = get_peft_model(pushed, LoraConfig(r=4, target_modules=["c_attn"], init_lora_weights=False))
    lora.push_to_hub(adapter_repo)
    adapter_weights = {name: t.clone() for name, t in lora.state_dict().items() if "lora_" in name}
    assert adapter_weights
    restored = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(repo), adapter_repo)
    restored_weights = {name: t for name, t in restored.state_dict().items() if "lora_" in name}
    assert restored_weights.keys() == adapter_weights.keys()
    for name, tensor in adapter_weights.items():
        assert torch.equal(tensor, restored_weights[name]), name


def test_commit_scheduler_lands_every_line(api, tmp_path):
    from huggingface_hub import CommitScheduler, hf_hub_download

    repo = unique_repo("feedback")
    folder = tmp_path / "feedback"
    folder.mkdir()
    scheduler = CommitScheduler(repo_id=repo, repo_type="dataset", folder_path=folder, every=10_000)
    try:
        records = folder / "records.jsonl"
        with records.open("a") as handle:
            handle.writelines(json.dumps({"id": i}) + "\n" for i in range(3))
        scheduler.trigger().result()
        with records.open("a") as handle:
            handle.writelines(json.dumps({"id": i}) + "\n" for i in range(3, 7))
        os.utime(records, ns=(records.stat().st_atime_ns, records.stat().st_mtime_ns + 1_000_000))
        scheduler.trigger().result()
    finally:
        scheduler.stop()
    lines = Path(hf_hub_download(repo, "records.jsonl", repo_type="dataset")).read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == list(range(7))


def test_concurrent_writers_lose_nothing(api, hub, tmp_path):
    """8 threads and 2 processes commit at once through two servers sharing one root; a stale parent fails."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    repo = unique_repo("concurrent")
    api.create_repo(repo, repo_type="dataset")
    first_sha = api.dataset_info(repo).sha
    per_writer = 3
    errors: list[BaseException] = []

    def write(client: HfApi, writer: int) -> None:
        try:
            for index in range(per_writer):
                client.upload_file(
                    path_or_fileobj=f"{writer}-{index}".encode(),
                    path_in_repo=f"thread-{writer}/{index}.txt",
                    repo_id=repo,
                    repo_type="dataset",
                )
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    code = f"""
        import sys
        from huggingface_hub import HfApi
        api = HfApi()
        for index in range({per_writer}):
            api.upload_file(path_or_fileobj=b"x" * (index + 1), path_in_repo=f"proc-{{sys.argv[1]}}/{{index}}.txt",
                            repo_id={repo!r}, repo_type="dataset")
        """
    with LocalHub(hub.root) as twin:  # a second server on the same folder
        endpoints = [hub.endpoint, twin.endpoint]
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", textwrap.dedent(code), str(n)],
                env=_client_env(endpoints[n], tmp_path / f"proc_home{n}"),
                stderr=subprocess.PIPE,
            )
            for n in range(2)
        ]
        clients = [api, HfApi(endpoint=twin.endpoint)]
        threads = [threading.Thread(target=write, args=(clients[writer % 2], writer)) for writer in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for process in processes:
            _, stderr = process.communicate(timeout=120)
            assert process.returncode == 0, stderr.decode()[-2000:]
    assert not errors, errors
    files = set(api.list_repo_files(repo, repo_type="dataset"))
    expected = {f"thread-{w}/{i}.txt" for w in range(8) for i in range(per_writer)}
    expected |= {f"proc-{p}/{i}.txt" for p in range(2) for i in range(per_writer)}
    assert expected <= files
    assert len(api.list_repo_commits(repo, repo_type="dataset")) == 1 + 10 * per_writer

    with pytest.raises(HfHubHTTPError) as err:
        api.create_commit(
            repo,
            [CommitOperationAdd("stale.txt", b"stale")],
            commit_message="stale",
            repo_type="dataset",
            parent_commit=first_sha,
        )
    assert err.value.response.status_code == 412
    assert not api.file_exists(repo, "stale.txt", repo_type="dataset")


def test_cli_help_documents_every_flag(capsys):
    from fade_hub.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["localhub", "serve", "--help"])
    assert exit_info.value.code == 0
    usage = capsys.readouterr().out
    for flag in ("--root", "--host", "--port"):
        assert flag in usage
    assert main(["localhub"]) == 2 and "serve" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_cli_serve_in_a_subprocess(tmp_path):
    port = free_port()
    token = "hf_secret_token_never_logged"
    server = subprocess.Popen(
        [sys.executable, "-m", "fade_hub.cli", "--debug", "localhub", "serve", "--root", str(tmp_path / "root"),
         "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = [server.stdout.readline() for _ in range(3)]
        endpoint = f"http://127.0.0.1:{port}"
        assert f"export HF_ENDPOINT={endpoint} HF_HUB_DISABLE_XET=1\n" in banner, banner
        out = _run_client(
            """
            from huggingface_hub import HfApi
            api = HfApi()
            repo = api.create_repo("cli-repo").repo_id
            api.upload_file(path_or_fileobj=b"hello", path_in_repo="hello.txt", repo_id=repo)
            print(repo, sorted(api.list_repo_files(repo)))
            """,
            _client_env(endpoint, tmp_path / "client_home", token=token),
        )
        assert out.strip() == "local-user/cli-repo ['.gitattributes', 'hello.txt']"
    finally:
        server.send_signal(signal.SIGINT)
        stdout, stderr = server.communicate(timeout=30)
    assert server.returncode == 0, stderr[-2000:]
    assert "POST /api/repos/create" in stderr  # requests are logged at debug level...
    assert token not in stderr + stdout  # ...but never the Authorization header
    assert (tmp_path / "root" / "models" / "local-user" / "cli-repo" / "repo.json").is_file()


def test_restart_on_same_root_keeps_repos(tmp_path):
    from huggingface_hub import HfApi, hf_hub_download

    local = LocalHub(tmp_path / "hub", port=free_port())
    client = HfApi(endpoint=local.endpoint)
    with local:
        repo = client.create_repo("keep/me").repo_id
        sha = client.upload_file(path_or_fileobj=b"kept", path_in_repo="kept.txt", repo_id=repo).oid
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{local.endpoint}/api/models/{repo}", timeout=5)
    with local:
        assert client.model_info(repo).sha == sha
        path = hf_hub_download(repo, "kept.txt", revision=sha, endpoint=local.endpoint, cache_dir=tmp_path / "c")
        assert Path(path).read_text() == "kept"


def _uploads_in_progress(root: Path) -> list[Path]:
    """Files under ``root/tmp`` (the lock files of running stores aside)."""
    return [p for p in (root / "tmp").rglob("*") if p.is_file() and not p.name.endswith(".lock")]


@pytest.mark.timeout(180)
def test_a_crash_mid_upload_leaves_nothing_after_the_next_start(tmp_path):
    import socket
    import time

    root, port = tmp_path / "root", free_port()
    server = subprocess.Popen([sys.executable, "-m", "fade_hub.cli", "localhub", "serve", "--root", str(root),
                               "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "LocalHub serving" in server.stdout.readline()
        part = os.urandom(1 << 20)
        with socket.create_connection(("127.0.0.1", port)) as sock:  # an LFS upload of 8 MiB, cut after 1 MiB
            sock.sendall(f"PUT /localhub/lfs/{'a' * 64} HTTP/1.1\r\nHost: x\r\nContent-Length: {8 << 20}\r\n\r\n"
                         .encode() + part)
            deadline = time.monotonic() + 30
            while not any(p.stat().st_size >= len(part) for p in _uploads_in_progress(root)):
                assert time.monotonic() < deadline, "the upload never reached the server's disk"
                time.sleep(0.05)
            server.kill()  # SIGKILL: no cleanup can run
            server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
        server.communicate(timeout=30)
    leftovers = _uploads_in_progress(root)
    assert leftovers and sum(p.stat().st_size for p in leftovers) >= len(part)
    (root / "tmp" / "old-layout-partial").write_bytes(b"x" * 1000)  # what earlier versions left behind
    with LocalHub(root, port=free_port()):
        assert _uploads_in_progress(root) == []
    assert sorted((root / "tmp").iterdir()) == []  # a clean stop leaves nothing either


def test_start_keeps_the_uploads_of_a_running_peer_and_failed_uploads_leave_nothing(tmp_path):
    from fade_hub.localhub.store import HubStore

    root = tmp_path / "root"
    peer = HubStore(root)  # another LocalHub process on the same root, mid-upload
    in_flight = peer.staging.new_path()
    in_flight.write_bytes(b"half of an upload")
    with LocalHub(root, port=free_port()) as local:
        assert in_flight.read_bytes() == b"half of an upload"
        request = urllib.request.Request(f"{local.endpoint}/localhub/lfs/{'b' * 64}", data=b"not what the oid says",
                                         method="PUT")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=30)
        assert err.value.code == 400
        assert _uploads_in_progress(root) == [in_flight]  # the refused upload's part is gone at once
    peer.close()
    assert sorted((root / "tmp").iterdir()) == []
