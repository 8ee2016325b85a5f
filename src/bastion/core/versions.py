"""PEP 440 versions: parsing with a readable error (P105) and release identity (P107)."""

from __future__ import annotations

from packaging.utils import canonicalize_version
from packaging.version import InvalidVersion, Version

__all__ = ["InvalidVersionText", "Version", "canonical_version", "parse_version"]


class InvalidVersionText(InvalidVersion):
    """``text`` is not a PEP 440 version. A ``ValueError``; ``str(error)`` is the message."""

    def __init__(self, text: str) -> None:
        self.text = text
        shown = text if len(text) <= 100 else text[:100] + "..."
        super().__init__(f"{shown!r} is not a valid PEP 440 version.")


def parse_version(text: str) -> Version:
    """Parse ``text`` as a PEP 440 version; ``str()`` of the result is its normalized form.

    Raises :class:`InvalidVersionText` (a ``ValueError``) when ``text`` is not a version.
    """
    try:
        return Version(text)
    except InvalidVersion:
        raise InvalidVersionText(text) from None


def canonical_version(version: Version) -> str:
    """The release identity of ``version`` (P107): normalized, trailing ``.0`` stripped.

    ``1.0`` and ``1.0.0`` are the same release, ``"1"``.
    """
    return canonicalize_version(version, strip_trailing_zero=True)
