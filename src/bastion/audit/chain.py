"""The audit trail's hash chain: canonical serialization and verification (pure).

Each event is serialized canonically and hashed with SHA-256; the serialization includes the
hash of the previous event (``prev``), so editing, inserting or removing any event breaks every
hash after it. The format is documented in ``docs/audit.md`` so that an outside tool can verify
an export (``bastion audit export``) without bastion:

    canonical = json.dumps(record_without_hash, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False).encode("utf-8")
    hash = sha256(canonical).hexdigest()

IP addresses enter the chain only as their coarse form and a salted commitment, so the
retention job can later drop the full address (and its salt) without breaking the chain.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64


def timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_bytes(record: Mapping[str, Any]) -> bytes:
    body = {key: value for key, value in record.items() if key != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(record)).hexdigest()


@functools.lru_cache(maxsize=4096)
def coarse_ip(address: str | None) -> str | None:
    """What collaborators may see: the /24 of an IPv4 address, the /48 of an IPv6 address.

    Remembered per address: an upload asks it for each of its events and for its token's
    last use, and ``ipaddress`` takes ~20 us to answer each time."""
    if not address:
        return None
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return None
    prefix = 24 if parsed.version == 4 else 48
    return str(ipaddress.ip_network(f"{parsed}/{prefix}", strict=False))


def ip_commitment(address: str, salt: str) -> str:
    return hashlib.sha256(f"{salt}:{address}".encode()).hexdigest()


@dataclass(frozen=True)
class ChainFault:
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"event {self.seq}: {self.reason}"


def verify_records(
    records: Iterable[Mapping[str, Any]], *, first_prev: str | None = GENESIS, first_seq: int = 1
) -> tuple[int, str, ChainFault | None]:
    """Walk the records in order; return (count, last hash, first fault or None).

    ``first_prev=None`` trusts whatever the first record names as its predecessor (used for an
    export that starts in the middle, ``--since``).
    """
    expected_prev = first_prev
    expected_seq = first_seq
    count = 0
    last = first_prev or GENESIS
    for record in records:
        seq = record.get("seq")
        if not isinstance(seq, int):
            return count, last, ChainFault(expected_seq, "record has no integer 'seq'")
        if seq != expected_seq:
            if seq > expected_seq:
                reason = f"events {expected_seq}..{seq - 1} are missing (removed)"
            else:
                reason = f"sequence number {seq} repeats or goes backwards (inserted)"
            return count, last, ChainFault(expected_seq if seq > expected_seq else seq, reason)
        if expected_prev is not None and record.get("prev") != expected_prev:
            return (
                count,
                last,
                ChainFault(
                    seq,
                    "its 'prev' does not match the previous event's hash (inserted or reordered)",
                ),
            )
        computed = event_hash(record)
        if computed != record.get("hash"):
            return count, last, ChainFault(seq, "its content does not match its hash (edited)")
        expected_prev = computed
        expected_seq = seq + 1
        last = computed
        count += 1
    return count, last, None
