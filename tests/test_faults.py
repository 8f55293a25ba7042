"""Faults (#14.18): workers that outlive a killed command, a full disk, exports over folders
or older exports, and paths in artefacts that lead outside their folder."""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from geolink.errors import DataError

PARENT = textwrap.dedent(
    """
    import multiprocessing as mp, os, sys, time
    from concurrent.futures import ProcessPoolExecutor
    from geolink.utils.process import die_with_parent

    def work(_):
        open(sys.argv[1], "w").write(str(os.getpid()))
        time.sleep(120)

    if __name__ == "__main__":
        init = die_with_parent if sys.argv[2] == "1" else None
        pool = ProcessPoolExecutor(1, mp.get_context("spawn"), initializer=init)
        pool.submit(work, 0)
        time.sleep(120)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead for our purpose
        return f.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
@pytest.mark.parametrize("guarded", [True, False], ids=["die_with_parent", "plain_pool"])
def test_pool_workers_die_with_a_killed_parent(tmp_path, guarded):
    """A killed `geolink synth` left its render workers running (236-285 MB each, still alive
    12 minutes later); the synth and reconstruct pools now start workers with die_with_parent.
    The unguarded pool shows that the test can fail."""
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    pid_file = tmp_path / "worker.pid"
    parent = subprocess.Popen([sys.executable, str(script), str(pid_file), str(int(guarded))])
    try:
        for _ in range(600):
            if pid_file.is_file() and pid_file.read_text():
                break
            time.sleep(0.05)
        worker = int(pid_file.read_text())
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.time() + 5
        while _alive(worker) and time.time() < deadline:
            time.sleep(0.1)
        assert _alive(worker) is not guarded
    finally:
        parent.kill()
        if pid_file.is_file() and _alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_a_full_disk_while_writing_an_index_is_a_clear_error_and_no_half_pair(
    tmp_path, monkeypatch, capsys
):
    """`index` on a full disk crashed with a traceback and left index.faiss without meta.json."""
    from geolink.cli.main import main
    from geolink.testing.deploy import make_checkpoint, make_tiles

    ckpt = make_checkpoint(tmp_path / "tiny.safetensors")
    tiles, csv_path = make_tiles(tmp_path, 3)
    real = Path.write_bytes

    def full_disk(self, data):
        if self.name.startswith(".meta."):
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    out = tmp_path / "index"
    argv = ["index", "--checkpoint", str(ckpt), "--tiles", str(tiles), "--coords",
            str(csv_path), "--out", str(out)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
    assert not (out / "index.faiss").exists() and not (out / "meta.json").exists()
    monkeypatch.setattr(Path, "write_bytes", real)
    assert main(argv) == 0 and (out / "meta.json").is_file()


def test_export_over_a_folder_or_another_checkpoints_export(tmp_path):
    """An export path that is a folder gave InvalidProtobuf; an older export of another
    checkpoint was kept and then failed parity with a misleading message."""
    pytest.importorskip("onnxruntime")
    from geolink.deploy.export import export_onnx
    from geolink.testing.deploy import make_checkpoint

    a = make_checkpoint(tmp_path / "a.safetensors", seed=0)
    b = make_checkpoint(tmp_path / "b.safetensors", seed=1)
    (tmp_path / "folder.onnx").mkdir()
    with pytest.raises(DataError, match="is a folder"):
        export_onnx(a, tmp_path / "folder.onnx")
    out = export_onnx(a, tmp_path / "enc.onnx")
    assert export_onnx(a, out) == out  # same checkpoint: kept
    with pytest.raises(DataError, match="another checkpoint"):
        export_onnx(b, out)
    assert export_onnx(b, out, overwrite=True) == out


def test_manifest_paths_must_stay_inside_the_reconstruction_folder(tmp_path):
    """A manifest entry `ply: ../../../../etc/passwd` was followed outside the output folder."""
    from geolink.recon.features import cache_point_features

    outside = tmp_path / "secret.ply"
    outside.write_text("not yours")
    recon = tmp_path / "recon"
    recon.mkdir()
    scenes = {"0001": {"status": "ok", "ply": "../secret.ply"}}
    (recon / "manifest.json").write_text(json.dumps({"scenes": scenes}))
    with pytest.raises(DataError, match="leads outside"):
        cache_point_features(recon)
