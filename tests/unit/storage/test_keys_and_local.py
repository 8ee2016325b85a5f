"""Storage keys (ADR 0003), the local blob store's atomic writes, and the shared blob-store
contract run over the local and in-memory stores (the S3 run is in tests/integration/storage)."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bastion.storage import BlobNotFound, StorageError, file_key, metadata_key, store_for_url
from bastion.storage.base import CHUNK_SIZE, check_key
from bastion.storage.local import LocalBlobStore
from bastion.storage.memory import MemoryBlobStore
from tests.unit.storage.contract import (
    DIGEST,
    BlobStoreContract,
    key_for,
    read_all,
    unique_bytes,
)

WHEEL = "demo-1.0-py3-none-any.whl"
GOOD_KEY = f"{DIGEST[:2]}/{DIGEST[2:4]}/{DIGEST[4:]}/{WHEEL}"


# ---------------------------------------------------------------------------------------------
# Keys


def test_file_key_is_pypis_content_addressed_layout() -> None:
    assert file_key(DIGEST, WHEEL) == GOOD_KEY
    assert GOOD_KEY.split("/")[:3] == ["01", "23", DIGEST[4:]]
    assert metadata_key(GOOD_KEY) == GOOD_KEY + ".metadata"


@pytest.mark.parametrize(
    "key",
    [
        GOOD_KEY,
        GOOD_KEY + ".metadata",
        f"{DIGEST[:2]}/{DIGEST[2:4]}/{DIGEST[4:]}/demo-1.0.tar.gz",
        f"{DIGEST[:2]}/{DIGEST[2:4]}/{DIGEST[4:]}/Foo_Bar-2.0+local!x-cp311-abi3-any.whl",
        f"{DIGEST[:2]}/{DIGEST[2:4]}/{DIGEST[4:]}/" + "a" * 255,
    ],
)
def test_check_key_accepts_the_content_addressed_shape(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize(
    ("digest", "filename"),
    [
        pytest.param(DIGEST, "..", id="dot-dot"),
        pytest.param(DIGEST, ".", id="dot"),
        pytest.param(DIGEST, "../../etc/passwd", id="traversal-in-filename"),
        pytest.param(DIGEST, "sub/demo.whl", id="slash-in-filename"),
        pytest.param(DIGEST, "/etc/passwd", id="absolute-filename"),
        pytest.param(DIGEST, "..\\..\\demo.whl", id="backslash"),
        pytest.param(DIGEST, "demo\x00.whl", id="nul"),
        pytest.param(DIGEST, "demo.whl\n", id="trailing-newline"),
        pytest.param(DIGEST, "", id="empty-filename"),
        pytest.param(DIGEST, "a" * 256, id="filename-too-long"),
        pytest.param(DIGEST[:-1], WHEEL, id="digest-63-chars"),
        pytest.param(DIGEST + "0", WHEEL, id="digest-65-chars"),
        pytest.param("", WHEEL, id="empty-digest"),
        pytest.param(DIGEST.upper(), WHEEL, id="uppercase-hex"),
        pytest.param("g" + DIGEST[1:], WHEEL, id="not-hex"),
        pytest.param("../" + DIGEST[3:], WHEEL, id="traversal-in-digest"),
    ],
)
def test_file_key_rejects(digest: str, filename: str) -> None:
    with pytest.raises(ValueError, match="not a valid storage key"):
        file_key(digest, filename)


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("/" + GOOD_KEY, id="absolute"),
        pytest.param(GOOD_KEY + "/", id="trailing-slash"),
        pytest.param("../" + GOOD_KEY, id="leading-dot-dot"),
        pytest.param(GOOD_KEY.replace("/", "\\"), id="backslash-separators"),
        pytest.param(GOOD_KEY.replace("/", "//", 1), id="empty-component"),
        pytest.param(f"{DIGEST[:2]}/{DIGEST[2:4]}/{DIGEST[4:]}/..metadata", id="dot-then-suffix"),
        pytest.param(f"{DIGEST[:2]}/{DIGEST[2:4]}/{DIGEST[4:]}/.metadata", id="suffix-alone"),
        pytest.param(f"{DIGEST[:2]}/{DIGEST[2:4]}/{DIGEST[4:]}/./{WHEEL}", id="dot-component"),
        pytest.param(f"{DIGEST[:4]}/{DIGEST[4:]}/{WHEEL}", id="missing-level"),
        pytest.param("", id="empty"),
    ],
)
def test_check_key_rejects(key: str) -> None:
    with pytest.raises(ValueError, match="not a valid storage key"):
        check_key(key)


# Mostly the characters that matter to paths, so dots, separators and NULs come up often.
PATH_TEXT = st.text(alphabet=st.sampled_from("./\\\x00\n :~%aZ9-_+!é"), max_size=12) | st.text()


@given(filename=PATH_TEXT)
@example(filename=".")
@example(filename="..")
def test_any_accepted_key_stays_inside_the_local_root(filename: str) -> None:
    root = Path("/srv/bastion/files")
    try:
        key = file_key(DIGEST, filename)
    except ValueError:
        return
    path = LocalBlobStore(root)._path(key)
    assert path.parent == root / DIGEST[:2] / DIGEST[2:]  # ab/cd<rest>/<name> (see prepare)
    assert path.name == filename
    assert os.path.normpath(path) == str(path)


def test_store_for_url_picks_the_backend(tmp_path: Path) -> None:
    store = store_for_url(f"file://{tmp_path}/with%20space")
    assert isinstance(store, LocalBlobStore)
    assert store.root == tmp_path / "with space"
    assert store_for_url(f"file://localhost{tmp_path}").root == tmp_path  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="unsupported storage URL scheme"):
        store_for_url("ftp://example.invalid/files")


@pytest.mark.parametrize("url", ["file://./data/files", "file://data/files", "file://host/srv"])
def test_store_for_url_refuses_a_file_url_with_a_host(url: str) -> None:
    with pytest.raises(ValueError, match="must be file:///absolute/path"):
        store_for_url(url)


# ---------------------------------------------------------------------------------------------
# The contract, over the local and the in-memory store


class TestLocalAndMemoryContract(BlobStoreContract):
    @pytest.fixture(params=["local", "memory"])
    def store(self, request: pytest.FixtureRequest, tmp_path: Path) -> object:
        if request.param == "local":
            return LocalBlobStore(tmp_path / "files")
        return MemoryBlobStore()


# ---------------------------------------------------------------------------------------------
# The local store: where files land, and all-or-nothing writes


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "files")


@pytest.fixture
def foreign_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory on another file system than the store (the copy path: no link across)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second file system (/dev/shm) on this machine")
    directory = Path(tempfile.mkdtemp(dir=shm, prefix="bastion-test-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def on_disk(*keys: str) -> list[str]:
    """Where the keys are stored, relative to the root: ``ab/cd<rest>/<name>``."""
    return sorted(f"{k[:2]}/{k[3:5]}{k[6:66]}/{k[67:]}" for k in keys)


def leftovers(store: LocalBlobStore) -> list[str]:
    """Every regular file under the store's root, relative (temp files included)."""
    if not store.root.exists():
        return []
    return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())


def test_files_land_at_the_key_path_world_readable(store: LocalBlobStore, tmp_path: Path) -> None:
    data = unique_bytes(500)
    key = key_for(data)
    source = tmp_path / "in.whl"
    source.write_bytes(data)
    store.put(key, source)
    store.put_bytes(metadata_key(key), b"Name: demo\n")
    path = store.local_path(key)
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert leftovers(store) == on_disk(key, metadata_key(key))


def test_missing_source_leaves_no_target_and_no_temp_file(
    store: LocalBlobStore, tmp_path: Path
) -> None:
    key = key_for(b"never written")
    with pytest.raises(StorageError, match="could not store") as caught:
        store.put(key, tmp_path / "missing.whl")
    assert isinstance(caught.value.__cause__, FileNotFoundError)
    assert not store.exists(key)
    assert leftovers(store) == []


def test_unreadable_source_leaves_no_target_and_no_temp_file(
    store: LocalBlobStore, tmp_path: Path
) -> None:
    # A directory as the source: open() fails after the temp file was created.
    key = key_for(b"a directory")
    with pytest.raises(StorageError):
        store.put(key, tmp_path)
    assert leftovers(store) == []


def test_failed_rename_leaves_no_temp_file(store: LocalBlobStore) -> None:
    # A directory squatting on the target path: written and fsynced, the rename then fails.
    data = unique_bytes(100)
    key = key_for(data)
    squatter = store.local_path(key)
    squatter.mkdir(parents=True)
    with pytest.raises(StorageError):
        store.put_bytes(key, data)
    assert squatter.is_dir()
    assert leftovers(store) == []


def copy_part_then_fail(store: LocalBlobStore, exception: BaseException, seen: list[int]) -> object:
    """A stand-in for shutil.copyfileobj that writes part of the source, then raises.

    A read error in the middle of a copy (a disk going away) cannot be caused for real in a
    test, so this fault is injected. When it strikes, ``seen`` records the sizes of the
    store's temp files: proof that a partial temp file existed and had to be cleaned up.
    """

    def copy(reader: BinaryIO, writer: BinaryIO, length: int = 0) -> None:
        writer.write(reader.read(1000))
        writer.flush()
        seen.extend(path.stat().st_size for path in store.root.rglob(".tmp-*"))
        raise exception

    return copy


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        pytest.param(OSError(errno.EIO, "Input/output error"), StorageError, id="io-error"),
        pytest.param(KeyboardInterrupt(), KeyboardInterrupt, id="interrupted"),
    ],
)
def test_copy_failing_midway_leaves_no_target_and_no_temp_file(
    store: LocalBlobStore,
    foreign_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    fault: BaseException,
    expected: type[BaseException],
) -> None:
    data = unique_bytes(100_000)
    key = key_for(data)
    source = foreign_dir / "in.whl"
    source.write_bytes(data)
    seen: list[int] = []
    monkeypatch.setattr(shutil, "copyfileobj", copy_part_then_fail(store, fault, seen))
    with pytest.raises(expected):
        store.put(key, source)
    assert seen == [1000], "one partial temp file existed when the fault struck"
    assert not store.exists(key)
    assert leftovers(store) == []


def test_failed_overwrite_keeps_the_previous_blob(
    store: LocalBlobStore, foreign_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = key_for(b"keep me")
    store.put_bytes(key, b"the previous, complete blob")
    source = foreign_dir / "in.whl"
    source.write_bytes(b"a replacement that never completes")
    fault = OSError(errno.EIO, "Input/output error")
    monkeypatch.setattr(shutil, "copyfileobj", copy_part_then_fail(store, fault, []))
    with pytest.raises(StorageError):
        store.put(key, source)
    assert read_all(store, key) == b"the previous, complete blob"
    assert leftovers(store) == on_disk(key)


def test_put_on_the_same_file_system_links_instead_of_copying(
    store: LocalBlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = unique_bytes(100_000)
    key = key_for(data)
    source = tmp_path / "spooled.whl"
    source.write_bytes(data)
    source.chmod(0o600)

    def no_copy(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("copied although a link was possible")

    monkeypatch.setattr(shutil, "copyfileobj", no_copy)
    store.put(key, source)
    stored = store.local_path(key)
    assert stored.stat().st_ino == source.stat().st_ino and stored.stat().st_nlink == 2
    assert stored.stat().st_mode & 0o777 == 0o644
    source.unlink()  # the request's spool file goes away; the blob stays
    assert read_all(store, key) == data
    assert leftovers(store) == on_disk(key)


def test_put_across_file_systems_copies(store: LocalBlobStore, foreign_dir: Path) -> None:
    data = unique_bytes(100_000)
    key = key_for(data)
    source = foreign_dir / "spooled.whl"
    source.write_bytes(data)
    store.put(key, source)
    assert store.local_path(key).stat().st_nlink == 1
    assert read_all(store, key) == data
    assert leftovers(store) == on_disk(key)


def test_read_streams_in_chunks(store: LocalBlobStore) -> None:
    data = unique_bytes(3 * CHUNK_SIZE)
    key = key_for(data)
    store.put_bytes(key, data)
    chunks: Iterator[bytes] = store.read(key, start=1)
    first = next(chunks)
    assert len(first) == CHUNK_SIZE
    assert first == data[1 : 1 + CHUNK_SIZE]


def test_delete_removes_only_that_blob(store: LocalBlobStore) -> None:
    first, second = unique_bytes(10), unique_bytes(10)
    store.put_bytes(key_for(first), first)
    store.put_bytes(key_for(second), second)
    store.delete(key_for(first))
    assert leftovers(store) == on_disk(key_for(second))
    with pytest.raises(BlobNotFound):
        store.read(key_for(first))


def test_a_files_directory_goes_with_its_last_file_and_comes_back_with_a_put(
    store: LocalBlobStore, tmp_path: Path
) -> None:
    data = unique_bytes(20)
    key = key_for(data)
    store.put_bytes(key, data)
    store.put_bytes(metadata_key(key), b"Name: demo\n")
    directory = store.local_path(key).parent
    store.delete(key)
    assert directory.is_dir()  # the metadata file is still in it
    store.delete(metadata_key(key))
    assert not directory.exists()
    assert directory.parent.is_dir()  # the first level stays
    source = tmp_path / "again.whl"
    source.write_bytes(data)
    store.put(key, source)
    store.put_bytes(metadata_key(key), b"Name: demo\n")
    assert read_all(store, key) == data
    assert leftovers(store) == on_disk(key, metadata_key(key))


def test_memory_store_keeps_its_own_copy(tmp_path: Path) -> None:
    store = MemoryBlobStore()
    data = bytearray(b"mutable")
    key = key_for(bytes(data))
    store.put_bytes(key, data)  # type: ignore[arg-type]
    data[:] = b"changed"
    assert read_all(store, key) == b"mutable"


def test_entries_skip_temporary_and_foreign_files(store: LocalBlobStore) -> None:
    data = b"a blob"
    key = file_key(hashlib.blake2b(data, digest_size=32).hexdigest(), "demo-1.0.tar.gz")
    store.put_bytes(key, data)
    (store.local_path(key).parent / ".tmp-half-written").write_bytes(b"half")
    (store.root / "README").write_text("not a blob")
    assert [listed for listed, _ in store.entries()] == [key]


# ---------------------------------------------------------------------------------------------
# A key's directory made ahead of the put (uploads prepare it while they validate)


def directories(store: LocalBlobStore) -> list[str]:
    return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_dir())


def key_directory(key: str) -> str:
    return on_disk(key)[0].rsplit("/", 1)[0]


def test_a_directory_made_ahead_is_used_by_the_put_then_removable_only_while_empty(
    store: LocalBlobStore, tmp_path: Path
) -> None:
    data = unique_bytes(300)
    key = key_for(data)
    made = store.make_directory(key)  # not prepared: the first level is made too
    assert [str(p.relative_to(store.root)) for p in made] == [key[:2], key_directory(key)]
    assert store.make_directory(key) == []  # there already: nothing made, nothing to remove
    source = tmp_path / "in.whl"
    source.write_bytes(data)
    store.put(key, source)
    store.remove_directories(made)  # in use by the blob now: every directory stays
    assert store.local_path(key).read_bytes() == data


def test_a_prepared_store_makes_one_directory_per_file(store: LocalBlobStore) -> None:
    store.prepare()
    key = key_for(unique_bytes(310))
    made = store.make_directory(key)
    assert [str(p.relative_to(store.root)) for p in made] == [key_directory(key)]


def test_directories_made_for_a_refused_file_are_removed(store: LocalBlobStore) -> None:
    kept = key_for(unique_bytes(10))
    store.put_bytes(kept, b"kept")
    a, b, rest, name = kept.split("/")
    other_b = f"{(int(b, 16) + 1) % 256:02x}"  # the first level shared, the second one not
    other = f"{a}/{other_b}/{rest}/{name}"
    made = store.make_directory(other)
    assert [str(p.relative_to(store.root)) for p in made] == [key_directory(other)]
    store.remove_directories(made)
    assert directories(store) == [a, key_directory(kept)]  # the stored blob's only
    assert leftovers(store) == on_disk(kept)


@pytest.mark.parametrize("prepared", [False, True])
def test_a_file_where_the_directory_goes_is_a_storage_error_leaving_nothing(
    store: LocalBlobStore, prepared: bool
) -> None:
    if prepared:
        store.prepare()
    key = key_for(unique_bytes(30))
    store.root.joinpath(key[:2]).mkdir(parents=True, exist_ok=True)
    store.root.joinpath(key_directory(key)).write_bytes(b"in the way")
    before = directories(store)
    with pytest.raises(StorageError, match="could not store"):
        store.make_directory(key)
    assert directories(store) == before


def test_a_put_whose_directory_vanishes_before_the_link_makes_it_again(
    store: LocalBlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused upload of the same bytes removes the (still empty) directory it made ahead,
    between this put's making of the directory and its link: the put makes it again."""
    data = unique_bytes(400)
    key = key_for(data)
    source = tmp_path / "in.whl"
    source.write_bytes(data)
    made = store.make_directory(key)
    real_link = os.link
    calls: list[str] = []

    def link(src: object, dst: object) -> None:
        if not calls:  # the other upload's clean-up lands exactly in the window
            store.remove_directories(made)
        calls.append(str(dst))
        real_link(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "link", link)
    store.put(key, source, synced=True)
    assert len(calls) == 2  # the first link failed: no directory; the second one stored it
    assert store.local_path(key).read_bytes() == data
    assert leftovers(store) == on_disk(key)


# ---------------------------------------------------------------------------------------------
# prepare(): the first level made once, and files of the previous layout moved


def old_layout_path(store: LocalBlobStore, key: str) -> Path:
    """Where the layout before 2026-12 kept ``key``: ``ab/cd/<rest>/<name>``, as the key."""
    return store.root.joinpath(*key.split("/"))


def test_prepare_makes_the_first_level_and_a_marker(store: LocalBlobStore) -> None:
    store.prepare()
    assert directories(store) == [f"{i:02x}" for i in range(256)]
    assert (store.root / ".layout").read_text() == "2\n"
    assert [key for key, _ in store.entries()] == []  # the marker is no blob


def test_prepare_moves_files_stored_in_the_previous_layout(store: LocalBlobStore) -> None:
    blobs = {key_for(data): data for data in (unique_bytes(n) for n in (11, 12, 13))}
    for key, data in blobs.items():
        old = old_layout_path(store, key)
        old.parent.mkdir(parents=True, exist_ok=True)
        old.write_bytes(data)
        Path(str(old) + ".metadata").write_bytes(b"Name: demo\n")
    (store.root / "README").write_text("not bastion's")
    store.prepare()
    for key, data in blobs.items():
        assert read_all(store, key) == data
        assert read_all(store, metadata_key(key)) == b"Name: demo\n"
    listed = sorted(key for key, _ in store.entries())
    assert listed == sorted([*blobs, *(metadata_key(k) for k in blobs)])
    assert leftovers(store) == sorted([*on_disk(*listed), ".layout", "README"])
    # The previous layout's second level is gone (the first level is shared by both).
    assert all(len(name) == 2 + 1 + 62 for name in directories(store) if "/" in name)
    store.prepare()  # again: nothing to do
    assert sorted(key for key, _ in store.entries()) == listed


def test_prepare_after_an_interruption_merges_and_finishes(store: LocalBlobStore) -> None:
    """Interrupted after the new directory of a file was made (a put of the same bytes, or a
    crash between two steps): the next prepare merges the two and goes on."""
    data = unique_bytes(14)
    key = key_for(data)
    old = old_layout_path(store, key)
    old.parent.mkdir(parents=True)
    old.write_bytes(data)
    store.put_bytes(metadata_key(key), b"Name: demo\n")  # already in this layout
    store.prepare()
    assert read_all(store, key) == data
    assert read_all(store, metadata_key(key)) == b"Name: demo\n"
    assert not old.parent.parent.exists()  # ab/cd of the previous layout


def test_a_store_prepared_already_is_not_walked_again(
    store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.prepare()
    monkeypatch.setattr(Path, "iterdir", lambda self: pytest.fail("walked again"))
    store.prepare()


# ---------------------------------------------------------------------------------------------
# begin_bytes(): a write whose fsync another thread makes


def test_a_pending_write_is_in_place_only_once_finished(store: LocalBlobStore) -> None:
    key = key_for(unique_bytes(15))
    pending = store.begin_bytes(key, b"bytes")
    assert not store.exists(key)
    assert [p.name[:5] for p in store.root.rglob(".tmp-*")] == [".tmp-"]
    pending.sync()
    pending.finish()
    assert read_all(store, key) == b"bytes"
    assert stat.S_IMODE(store.local_path(key).stat().st_mode) == 0o644
    pending.abort()  # after finish: nothing
    assert leftovers(store) == on_disk(key)


def test_an_aborted_pending_write_leaves_nothing(store: LocalBlobStore) -> None:
    key = key_for(unique_bytes(16))
    pending = store.begin_bytes(key, b"bytes")
    pending.abort()
    pending.finish()  # after abort: nothing
    pending.sync()
    assert leftovers(store) == []
    assert not store.exists(key)
