"""The client's address: REMOTE_ADDR, or X-Forwarded-For only behind a trusted proxy.

``BASTION_TRUSTED_PROXIES`` lists the proxies (addresses or networks) whose X-Forwarded-For is
believed; the client is the right-most address in it that is not itself a trusted proxy. A
header from anyone else is ignored: a client cannot choose the address it is limited and
recorded under.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=16)
def _networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in trusted)


def _is_trusted(address: str, trusted: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _networks(trusted))


def client_address(meta: Mapping[str, Any]) -> str | None:
    """The address of the client behind a WSGI request's META (or environ)."""
    remote = str(meta.get("REMOTE_ADDR") or "") or None
    trusted = settings.BASTION.trusted_proxies
    if remote is None or not trusted or not _is_trusted(remote, trusted):
        return remote
    hops = [hop.strip() for hop in str(meta.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return remote  # a malformed header: believe only the connection
        if not _is_trusted(hop, trusted):
            return hop
    return remote
