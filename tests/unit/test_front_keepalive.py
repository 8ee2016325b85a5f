"""The nginx front keeps connections to the nodes open for less time than a node keeps an idle
connection: nginx never sends a request on a connection the node is closing (it does not retry a
POST there, so an upload would get a 502)."""

from __future__ import annotations

import re
from pathlib import Path

from bastion import server

SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "bastion.conf"


def _seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m)?", value).groups()  # type: ignore[union-attr]
    return int(number) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[unit]


def test_the_fronts_upstream_connections_close_before_the_nodes_do() -> None:
    upstream = re.search(r"^upstream bastion_nodes \{$(.*?)^\}$", SAMPLE.read_text(), re.S | re.M)
    assert upstream is not None
    timeout = re.search(r"^\s*keepalive_timeout\s+(\S+);", upstream.group(1), re.M)
    assert timeout is not None, "the upstream block must set keepalive_timeout (nginx: 60 s)"
    assert _seconds(timeout.group(1)) < server.KEEPALIVE
