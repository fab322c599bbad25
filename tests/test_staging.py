"""OutputClaim: one writer per output folder, its staging folder beside it, leftovers of a killed writer removed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from fade_hub.errors import BadConfig
from fade_hub.staging import OutputClaim, staging_folder


def test_a_second_claim_refuses_while_the_first_holds_and_nothing_is_left_after(tmp_path):
    output = tmp_path / "deep" / "adapter"
    with OutputClaim(output, "mitigate") as claim:
        assert claim.folder == staging_folder(output) == tmp_path / "deep" / ".adapter.fade-staging"
        assert (claim.folder / "lock").read_text() == str(os.getpid())
        with pytest.raises(BadConfig, match=rf"another fade-hub mitigate \(process {os.getpid()}\) is writing"):
            with OutputClaim(output, "mitigate"):
                pass
        assert claim.folder.is_dir()  # the refused claim took nothing away from the holder
    assert list(tmp_path.iterdir()) == []  # neither the staging folder nor the folder made for it is left


def test_leftovers_of_a_killed_writer_go_and_the_lock_it_held_is_free(tmp_path):
    output = tmp_path / "adapter"
    killed = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from fade_hub.staging import OutputClaim\n"
        f"claim = OutputClaim({str(output)!r}, 'mitigate').__enter__()\n"
        "claim.path('adapter').mkdir(); (claim.path('adapter') / 'half.bin').write_bytes(b'x' * 10)\n"
        "print('ready', flush=True); time.sleep(600)")], stdout=subprocess.PIPE, text=True)
    try:
        assert killed.stdout.readline().strip() == "ready"
        with pytest.raises(BadConfig, match="is writing"):
            OutputClaim(output, "mitigate").__enter__()
    finally:
        killed.kill()
        killed.wait()
    assert (staging_folder(output) / "adapter" / "half.bin").is_file()  # what kill -9 leaves
    with OutputClaim(output, "mitigate") as claim:
        assert sorted(entry.name for entry in claim.folder.iterdir()) == ["lock"]
        built = claim.path("adapter")
        built.mkdir()
        (built / "weights").write_text("w")
        claim.publish(built)
    assert (output / "weights").read_text() == "w" and not staging_folder(output).exists()


def test_publishing_keeps_the_mode_of_an_existing_output_and_the_umask_of_a_new_one(tmp_path):
    existing = tmp_path / "existing"
    existing.mkdir()
    os.chmod(existing, 0o755)
    for output in (existing, tmp_path / "new"):
        with OutputClaim(output, "mitigate") as claim:
            built = claim.path("adapter")
            built.mkdir()
            claim.publish(built)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(existing.stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o777 & ~umask
