"""PEP 691 content negotiation for the simple API (pure; see P10-P17).

Rule: the highest q wins. Ties go to the more specific match (an exact media type beats
``type/*``, which beats ``*/*``). Remaining ties between exact matches go to the most expressive
format (JSON, then v1+html, then text/html), as PEP 691 recommends; ties between wildcard matches
go to ``text/html``, so ``*/*`` and a missing header get HTML as legacy clients expect. ``q=0``
means "not acceptable". Nothing acceptable -> ``None`` (the view answers 406).
"""

from __future__ import annotations

from dataclasses import dataclass

JSON = "application/vnd.pypi.simple.v1+json"
V1_HTML = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
OFFERS = (JSON, V1_HTML, TEXT_HTML)
_ALIASES = {
    "application/vnd.pypi.simple.latest+json": JSON,
    "application/vnd.pypi.simple.latest+html": V1_HTML,
}
_EXACT_PREFERENCE = {JSON: 3, V1_HTML: 2, TEXT_HTML: 1}
_WILDCARD_PREFERENCE = {TEXT_HTML: 3, V1_HTML: 2, JSON: 1}


@dataclass(frozen=True)
class MediaRange:
    type: str
    subtype: str
    q: float

    def specificity(self, offer: str) -> int:
        """2 exact, 1 ``type/*``, 0 ``*/*``, -1 no match."""
        offer_type, offer_subtype = offer.split("/", 1)
        if self.type == "*" and self.subtype == "*":
            return 0
        if self.type != offer_type:
            return -1
        if self.subtype == "*":
            return 1
        return 2 if self.subtype == offer_subtype else -1


def _parse_q(text: str) -> float | None:
    text = text.strip()
    if not text or len(text) > 5:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    if not 0.0 <= value <= 1.0:
        return None
    return value


def parse_accept(header: str | None) -> list[MediaRange]:
    """Parse an Accept header; malformed entries are ignored. No header means ``*/*``."""
    if header is None or not header.strip():
        return [MediaRange("*", "*", 1.0)]
    ranges: list[MediaRange] = []
    for entry in header.split(","):
        media, *params = entry.split(";")
        media = media.strip().lower()
        media = _ALIASES.get(media, media)
        if media.count("/") != 1:
            continue
        type_, subtype = media.split("/")
        if not type_ or not subtype or (type_ == "*" and subtype != "*"):
            continue
        q: float | None = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                q = _parse_q(value)
        if q is None:
            continue
        ranges.append(MediaRange(type_, subtype, q))
    return ranges


def choose(header: str | None) -> str | None:
    """The content type to answer with, or None if nothing offered is acceptable."""
    ranges = parse_accept(header)
    best: tuple[float, int, int] | None = None
    chosen: str | None = None
    for offer in OFFERS:
        matches = [(r.specificity(offer), r.q) for r in ranges if r.specificity(offer) >= 0]
        if not matches:
            continue
        specificity, q = max(matches)  # the most specific range decides the offer's q
        if q <= 0:
            continue
        preference = (_EXACT_PREFERENCE if specificity == 2 else _WILDCARD_PREFERENCE)[offer]
        key = (q, specificity, preference)
        if best is None or key > best:
            best, chosen = key, offer
    return chosen


def from_format_parameter(value: str) -> str | None:
    """P17 ``?format=``: exactly one concrete (or ``latest``) content type, else None."""
    value = _ALIASES.get(value.strip().lower(), value.strip().lower())
    return value if value in OFFERS else None
