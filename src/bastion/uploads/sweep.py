"""``bastion storage sweep``: remove blobs no file row refers to (orphans).

An upload stores its blob before the transaction that records the file (so readers never see a
row without its bytes); a process killed between the two (``kill -9``, a crash, the machine
lost), or a database lost in between, leaves the blob without a row. So does a kill between a
file's deletion and the removal of its blob after commit. Such a blob is invisible (every read
starts from a row) and harmless, but takes space: the sweep removes blobs, and PEP 658 metadata
beside them, that are older than ``older_than`` and that no file row names. The age keeps
uploads in flight safe: their blob is only seconds old when their row commits. Each removal
happens under the index lock, after one more look for a row, so no upload commits a row for
that key in between.

One race is left, and it needs an orphan older than ``older_than``: an upload of exactly the
same bytes whose store lands between the sweep's listing and its removal of that key would
commit a row for a blob just removed. Sweep when uploads are few, with the default hour.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction

from bastion.actors import Actor
from bastion.audit.services import record
from bastion.projects.models import File
from bastion.projects.services import lock_index
from bastion.storage import BlobStore

log = logging.getLogger(__name__)

METADATA_SUFFIX = ".metadata"
_BATCH = 500


@dataclass(frozen=True)
class SweepReport:
    examined: int  # blobs listed
    removed: tuple[str, ...]  # keys removed


def _file_key(key: str) -> str:
    """The key of the file a blob belongs to (itself, or the wheel its metadata describes)."""
    return key[: -len(METADATA_SUFFIX)] if key.endswith(METADATA_SUFFIX) else key


def _referenced(file_keys: set[str]) -> set[str]:
    return set(File.objects.filter(storage_key__in=file_keys).values_list("storage_key", flat=True))


def sweep_unreferenced_blobs(
    *, actor: Actor, store: BlobStore, older_than: timedelta, now: datetime
) -> SweepReport:
    """Each removal is an audit event (``storage.blob.removed``, naming the key), written in the
    transaction that holds the index lock for it: a removal that fails leaves no event."""
    cutoff = now - older_than
    examined = 0
    candidates: list[str] = []
    for key, modified in store.entries():
        examined += 1
        if modified <= cutoff:
            candidates.append(key)
    removed: list[str] = []
    for start in range(0, len(candidates), _BATCH):
        batch = candidates[start : start + _BATCH]
        referenced = _referenced({_file_key(key) for key in batch})
        for key in batch:
            if _file_key(key) in referenced:
                continue
            with transaction.atomic():
                lock_index()  # no upload records a row meanwhile
                if File.objects.filter(storage_key=_file_key(key)).exists():
                    continue
                record("storage.blob.removed", actor=actor, payload={"key": key}, now=now)
                store.delete(key)
            log.info("removed unreferenced blob %s", key)
            removed.append(key)
    return SweepReport(examined=examined, removed=tuple(removed))
