"""Recording security events: always inside the transaction of the change they describe.

``record`` appends one event to the hash chain. It locks the chain head row, so concurrent
writers (several workers, several nodes on PostgreSQL) append one after another and the chain
never forks; on SQLite every write transaction is already exclusive (IMMEDIATE). Inside
``batched()`` the events of one change are appended together when the block ends: one lock of
the head, one insert, one update, instead of three statements per event.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from bastion import rows
from bastion.actors import Actor
from bastion.audit import chain
from bastion.audit.models import ChainHead, Event


def _credential(actor: Actor) -> str:
    if actor.token is not None:
        return "token"
    if actor.via == "cli":
        return "cli"
    if actor.user is not None:
        return "session"
    return "anonymous"


def to_record(event: Event) -> dict[str, Any]:
    """The hashed content of an event (see ``chain`` and docs/audit.md)."""
    return {
        "seq": event.seq,
        "kind": event.kind,
        "created": chain.timestamp(event.created),
        "actor": {
            "user_id": event.actor_user_id,
            "username": event.actor_username,
            "credential": event.credential,
            "token_id": event.token_id,
            "token_name": event.token_name,
        },
        "context": {
            "ip": event.ip_coarse,
            "ip_commitment": event.ip_commitment,
            "user_agent": event.user_agent,
        },
        "subject": {
            "user_id": event.subject_user_id,
            "username": event.subject_username,
            "project_id": event.project_id,
            "project": event.project_name,
        },
        "payload": event.payload,
        "prev": event.prev_hash,
        "hash": event.hash,
    }


def record(
    kind: str,
    *,
    actor: Actor,
    subject_user: Any = None,
    project: Any = None,
    project_name: str | None = None,
    payload: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> Event:
    """Append an event; must run inside the transaction of the change it records."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit events are written inside the transaction of their change")
    created = now or timezone.now()
    address = actor.ip_address or ""
    salt = secrets.token_hex(16) if address else ""
    event = Event(
        kind=kind,
        created=created,
        actor_user_id=actor.user.pk if actor.user is not None else None,
        actor_username=actor.user.username if actor.user is not None else "",
        credential=_credential(actor),
        token_id=str(actor.token.pk) if actor.token is not None else "",
        token_name=actor.token.name if actor.token is not None else "",
        ip_address=address,
        ip_salt=salt,
        ip_coarse=chain.coarse_ip(address) or "",
        ip_commitment=chain.ip_commitment(address, salt) if address else "",
        user_agent=(actor.user_agent or "")[:500],
        subject_user_id=subject_user.pk if subject_user is not None else None,
        subject_username=subject_user.username if subject_user is not None else "",
        project_id=project.pk if project is not None else None,
        project_name=(project.normalized_name if project is not None else project_name or ""),
        payload=dict(payload or {}),
    )
    waiting = getattr(_batch, "events", None)
    if waiting is not None:
        waiting.append(event)  # appended when the batch ends (its seq and hash set then)
    else:
        _append([event])
    return event


_batch = threading.local()


@contextmanager
def batched() -> Iterator[None]:
    """Append the events recorded inside the block together when it ends (inside the
    transaction of the change; an exception discards them with the rolled-back change)."""
    if getattr(_batch, "events", None) is not None:  # already inside a batch
        yield
        return
    _batch.events = []
    try:
        yield
        events = _batch.events
    finally:
        _batch.events = None
    if events:
        _append(events)


def _append(events: list[Event]) -> None:
    """Chain ``events`` after the locked head: three statements for any number of events."""
    seq, previous = _locked_head()
    for event in events:
        seq += 1
        event.seq = seq
        event.prev_hash = previous
        event.hash = previous = chain.event_hash(to_record(event))
    rows.insert(*events)
    rows.execute("UPDATE audit_chain_head SET seq = %s, hash = %s WHERE id = 1", (seq, previous))


def _locked_head() -> tuple[int, str]:
    """The chain head, its row locked (PostgreSQL; SQLite's writer is alone): in SQL, as every
    change reads it (the ORM took longer to build the query than the database to answer)."""
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    row = rows.fetch_one("SELECT seq, hash FROM audit_chain_head WHERE id = 1" + lock)
    if row is None:  # created by a migration; only a flushed test database lacks it
        head, _ = ChainHead.objects.select_for_update().get_or_create(pk=1)
        return head.seq, head.hash
    return int(row[0]), str(row[1])


def record_now(kind: str, **kwargs: Any) -> Event:
    """Record an event in a transaction of its own (for refusals, whose change rolled back)."""
    with transaction.atomic():
        return record(kind, **kwargs)


def truncate_old_addresses(*, older_than: timedelta, now: datetime) -> int:
    """The retention job: forget full IP addresses (and their salts) of old events.

    The chain hashes only the coarse address and a commitment, so it stays valid.
    """
    cutoff = now - older_than
    return (
        Event.objects.filter(created__lt=cutoff)
        .exclude(ip_address="")
        .update(ip_address="", ip_salt="")
    )
