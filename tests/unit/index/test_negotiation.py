"""PEP 691 content negotiation with the Accept headers real clients send (P10-P17)."""

import pytest

from bastion.index.negotiation import JSON, TEXT_HTML, V1_HTML, choose, from_format_parameter

PIP = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
UV = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (PIP, JSON),
        (UV, JSON),
        ("text/html", TEXT_HTML),
        ("*/*", TEXT_HTML),
        (None, TEXT_HTML),
        ("", TEXT_HTML),
        ("application/vnd.pypi.simple.v1+json;q=0, text/html", TEXT_HTML),
        ("application/vnd.pypi.simple.v1+html", V1_HTML),
        ("application/vnd.pypi.simple.latest+json", JSON),
        ("application/vnd.pypi.simple.latest+html", V1_HTML),
        # equal q between explicit types: the most expressive format (documented tie rule)
        ("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html", JSON),
        ("text/html, application/vnd.pypi.simple.v1+json", JSON),
        # explicit type beats a wildcard at the same q
        ("*/*, application/vnd.pypi.simple.v1+json", JSON),
        # a lower-q explicit JSON loses against a wildcard at q=1 (HTML for wildcards)
        ("*/*, application/vnd.pypi.simple.v1+json;q=0.5", TEXT_HTML),
        ("application/*", V1_HTML),
        ("text/*;q=0.5, application/vnd.pypi.simple.v1+json;q=0.4", TEXT_HTML),
        ("TEXT/HTML", TEXT_HTML),
        ("application/vnd.pypi.simple.v1+json;q=1.000", JSON),
        # q=0 on the only range makes everything unacceptable
        ("*/*;q=0", None),
        ("image/png", None),
        ("application/json", None),
        # malformed entries are ignored, the rest still counts
        ("garbage, text/html;q=0.3", TEXT_HTML),
        ("application/vnd.pypi.simple.v1+json;q=2", None),
        ("application/vnd.pypi.simple.v1+json;q=abc, text/html;q=0.1", TEXT_HTML),
        ("*/json", None),
    ],
)
def test_choose(accept, expected):
    assert choose(accept) == expected


def test_most_specific_range_decides_the_q():
    # text/html is explicitly refused even though */* would accept it
    assert choose("text/html;q=0, */*") == V1_HTML


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("application/vnd.pypi.simple.v1+json", JSON),
        ("application/vnd.pypi.simple.latest+json", JSON),
        ("text/html", TEXT_HTML),
        ("application/vnd.pypi.simple.v1+html", V1_HTML),
        ("*/*", None),
        ("application/vnd.pypi.simple.v1+json, text/html", None),
        ("application/json", None),
    ],
)
def test_format_parameter(value, expected):
    assert from_format_parameter(value) == expected
