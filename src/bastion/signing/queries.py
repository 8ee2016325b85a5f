"""Reads of the signed repository: metadata bytes and signed simple pages."""

from __future__ import annotations

from django.db import connection
from django.db.models import Q

from bastion.signing.models import CurrentRole, SignedMetadata, SignedPage


def metadata_body(role: str, version: int) -> bytes | None:
    row = SignedMetadata.objects.filter(role=role, version=version).values_list("body").first()
    return None if row is None else bytes(row[0])


def current_body(role: str) -> bytes | None:
    """The current version of ``role`` (``timestamp.json``; ``root.json`` for convenience)."""
    version = CurrentRole.objects.filter(role=role).values_list("version", flat=True).first()
    return None if version is None else metadata_body(role, version)


def signed_page(path: str, digest: str | None) -> bytes | None:
    """A signed simple page by its hash (blake2b-256 or sha256), or the current one."""
    pages = SignedPage.objects.filter(path=path)
    if digest:
        pages = pages.filter(Q(blake2b_256=digest) | Q(sha256=digest))
    else:
        pages = pages.filter(superseded=None)
    row = pages.values_list("body").first()
    return None if row is None else bytes(row[0])


def unsigned_changes() -> bool:
    """Whether the index changed since its last signing (one statement: one consistent view).

    True too when the state row is missing (a flushed database): the next round signs all.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.serial, s.serial FROM projects_index_state i "
            "LEFT JOIN signing_state s ON s.id = 1 WHERE i.id = 1"
        )
        row = cursor.fetchone()
    return row is not None and (row[1] is None or row[0] > row[1])
