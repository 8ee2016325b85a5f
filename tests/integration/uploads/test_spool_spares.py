"""Spool files whose inode is made ahead (bastion.uploads.spool._SpareFiles): an unnamed file,
made once an answer has left, becomes the next upload's spool file (and so its stored file);
nothing of a spare is ever seen in the spool directory, and a dead process leaves none."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from bastion.uploads import spool
from tests.integration.conftest import spooled_files
from tests.integration.uploads.test_storage_failures import _blob_path, _post, _wheel

pytestmark = pytest.mark.skipif(not spool._UNNAMED, reason="needs O_TMPFILE (Linux)")


@pytest.fixture
def spares() -> spool._SpareFiles:
    return spool._SpareFiles()


def _names(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def test_without_a_spare_a_file_is_made_as_before(spares, tmp_path: Path) -> None:
    descriptor, path = spares.take(tmp_path)
    os.close(descriptor)
    assert Path(path).parent == tmp_path
    assert Path(path).name.startswith(spool.spool_prefix())
    assert Path(path).stat().st_size == 0
    assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600


def test_a_spare_is_unseen_until_taken_then_is_the_spool_file(spares, tmp_path: Path) -> None:
    spares.take(tmp_path)  # the first take makes its own file and asks for a spare
    before = _names(tmp_path)
    spares.replenish()
    assert _names(tmp_path) == before  # an unnamed file: nothing in the directory
    ((directory, ready),) = spares._ready
    inode = os.fstat(ready).st_ino
    descriptor, path = spares.take(tmp_path)
    assert descriptor == ready
    assert os.stat(path).st_ino == inode  # the spare itself, now named
    assert Path(path).name.startswith(spool.spool_prefix())
    assert set(_names(tmp_path)) == {*before, Path(path).name}
    os.write(descriptor, b"written through the spare")
    os.close(descriptor)
    assert Path(path).read_bytes() == b"written through the spare"
    assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600
    spares.replenish()  # the take asked for the next one
    assert len(spares._ready) == 1
    spares.replenish()  # nothing taken since: no second one
    assert len(spares._ready) == 1


def test_a_spare_of_another_directory_is_dropped_unseen(spares, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    spares.take(first)
    spares.replenish()
    ((_directory, ready),) = spares._ready
    kept = os.dup(ready)  # (so that its inode number is not given to the new file)
    descriptor, path = spares.take(second)
    assert Path(path).parent == second
    assert os.fstat(descriptor).st_ino != os.fstat(kept).st_ino  # a new file
    assert os.fstat(kept).st_nlink == 0  # the spare was named nowhere
    os.close(kept)
    assert spares._ready == []
    assert len(_names(first)) == 1  # only the first take's own file


def test_a_process_that_dies_leaves_no_spare(tmp_path: Path) -> None:
    """The kernel frees an unnamed file with its last descriptor: kill -9 leaves nothing."""
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from bastion.uploads import spool\n"
        "spares = spool._SpareFiles()\n"
        "d = Path(sys.argv[1])\n"
        "descriptor, path = spares.take(d)\n"
        "os.close(descriptor); os.unlink(path)\n"
        "spares.replenish()\n"
        "assert len(spares._ready) == 1\n"
        "print('ready', flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bastion.settings"}
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", script, str(spool_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert done.stdout.strip() == "ready"
    assert _names(spool_dir) == []


def test_a_forked_child_keeps_none_of_its_parents_spares(spares, tmp_path: Path) -> None:
    spares.take(tmp_path)
    spares.replenish()
    ((_directory, ready),) = spares._ready
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        spares.forget_after_fork()
        os.write(writer, b"%d" % len(spares._ready))
        os._exit(0)
    os.close(writer)
    assert os.read(reader, 16) == b"0"
    os.waitpid(child, 0)
    os.close(reader)
    assert os.fstat(ready).st_nlink == 0  # the parent's spare is still open, still unnamed


@pytest.mark.django_db
def test_an_upload_takes_the_spare_made_after_the_last_answer(alice_token, tmp_path) -> None:
    """Through the whole request: the answer's end makes a spare (``request_finished``), the
    next upload's stored file is that very inode, and the spool directory shows nothing."""
    spool._spares.forget_after_fork()  # (this process's: none left from other tests)
    first = _wheel(tmp_path, "spare-first", "1.0")
    assert _post(first, alice_token).status_code == 200
    assert spooled_files() == []
    ((directory, ready),) = spool._spares._ready
    assert directory == settings.BASTION.spool_dir
    inode = os.fstat(ready).st_ino
    second = _wheel(tmp_path, "spare-second", "1.0")
    assert _post(second, alice_token).status_code == 200
    assert _blob_path(second).stat().st_ino == inode
    assert _blob_path(second).read_bytes() == second.read_bytes()
    assert spooled_files() == []
    assert len(spool._spares._ready) == 1  # and the next one is ready


@pytest.mark.django_db
def test_a_refused_upload_leaves_nothing_of_its_spare(alice_token, tmp_path) -> None:
    spool._spares.forget_after_fork()
    assert _post(_wheel(tmp_path, "spare-ok", "1.0"), alice_token).status_code == 200
    assert len(spool._spares._ready) == 1
    broken = tmp_path / "spare_broken-1.0-py3-none-any.whl"
    broken.write_bytes(b"not a zip archive at all")
    assert _post(broken, alice_token).status_code == 400
    assert spooled_files() == []
    assert len(spool._spares._ready) == 1
