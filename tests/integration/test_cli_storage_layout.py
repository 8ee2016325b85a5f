"""`bastion migrate` on a data directory from before 2026-12: its files move to the local store's
present layout (``ab/cd<rest>/<name>``, see bastion.storage.local) and are served as before."""

from __future__ import annotations

import hashlib

from bastion.storage import file_key, metadata_key
from bastion.storage.local import LocalBlobStore
from tests.integration.test_cli_release import _env, _run


def test_migrate_moves_files_of_the_previous_layout(tmp_path):
    env = _env(tmp_path)
    files = tmp_path / "data" / "files"
    data = b"a wheel's bytes"
    key = file_key(hashlib.blake2b(data, digest_size=32).hexdigest(), "demo-1.0-py3-none-any.whl")
    old = files.joinpath(*key.split("/"))  # the previous layout followed the key
    old.parent.mkdir(parents=True)
    old.write_bytes(data)
    old.with_name(old.name + ".metadata").write_bytes(b"Name: demo\n")

    done = _run(env, "migrate")
    assert done.returncode == 0, done.stderr
    assert "moved 2 files" in done.stderr
    store = LocalBlobStore(files)
    assert store.local_path(key).read_bytes() == data
    assert store.local_path(metadata_key(key)).read_bytes() == b"Name: demo\n"
    assert not old.exists() and not old.parent.parent.exists()
    assert sorted(p.name for p in files.iterdir() if p.is_dir()) == [f"{i:02x}" for i in range(256)]
    assert (files / ".layout").read_text() == "2\n"

    again = _run(env, "migrate")
    assert again.returncode == 0, again.stderr
    assert "moved" not in again.stderr
