"""Reading the audit trail: verification, export, and who may see what."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from bastion.audit import chain
from bastion.audit.models import ChainHead, Event
from bastion.audit.services import to_record

BATCH = 2000


def iter_events(since: datetime | None = None) -> Iterator[Event]:
    queryset = Event.objects.order_by("seq")
    if since is not None:
        queryset = queryset.filter(created__gte=since)
    last = 0
    while True:
        batch = list(queryset.filter(seq__gt=last)[:BATCH])
        if not batch:
            return
        yield from batch
        last = batch[-1].seq


def export_records(since: datetime | None = None) -> Iterator[dict[str, Any]]:
    for event in iter_events(since):
        yield to_record(event)


def verify_chain() -> tuple[int, chain.ChainFault | None]:
    """Re-compute the whole chain from the database; (events checked, first fault or None)."""
    events = iter_events()
    records = (_checked_record(e) for e in events)
    count, last, fault = chain.verify_records(records)
    if fault is not None:
        return count, fault
    head = ChainHead.objects.filter(pk=1).first()
    head_seq, head_hash = (head.seq, head.hash) if head else (0, chain.GENESIS)
    if head_seq != count or head_hash != last:
        if head_seq > count:
            return count, chain.ChainFault(
                count + 1, f"events {count + 1}..{head_seq} are missing (removed from the end)"
            )
        return count, chain.ChainFault(
            head_seq or 1, "the chain head does not match the last event"
        )
    return count, None


def _checked_record(event: Event) -> dict[str, Any]:
    """The event's record, with the commitment recomputed from the full address while it is
    kept: an edited address then fails the hash check like any other edit of the event."""
    record = to_record(event)
    if event.ip_address and event.ip_salt:
        context = dict(record["context"])
        context["ip_commitment"] = chain.ip_commitment(event.ip_address, event.ip_salt)
        record["context"] = context
    return record


def visible_ip(event: Event, *, viewer_id: int | None, is_admin: bool) -> str:
    """The user sees their own full address (until retention drops it); others the coarse one."""
    if is_admin or (viewer_id is not None and event.actor_user_id == viewer_id):
        return event.ip_address or event.ip_coarse
    return event.ip_coarse
