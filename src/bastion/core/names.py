"""Project names: validity (P2) and PEP 503 normalization (P3).

``NormalizedName`` is a distinct type so that a raw, user-typed name cannot reach a lookup by
accident: the only way to get one is :func:`normalize_name`.
"""

from __future__ import annotations

import re
from typing import NewType

__all__ = ["NormalizedName", "is_valid_name", "normalize_name"]

NormalizedName = NewType("NormalizedName", str)

# Name-normalization spec: ``^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$`` with re.IGNORECASE.
# ``\Z`` (not ``$``) so that a trailing newline is invalid. ``re.ASCII`` as well: without it,
# IGNORECASE lets "ſ" (U+017F) match ``s`` and the Kelvin sign (U+212A) match ``k``, so a name
# could pass validation yet not normalize to the ``[a-z0-9-]`` form every lookup relies on.
_VALID_NAME = re.compile(r"([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])\Z", re.IGNORECASE | re.ASCII)

# PEP 503: runs of ``-``, ``_`` and ``.`` collapse to a single ``-``.
_SEPARATOR_RUNS = re.compile(r"[-_.]+")


def is_valid_name(name: str) -> bool:
    """Whether ``name`` is a valid project name under the core metadata spec (P2)."""
    return _VALID_NAME.match(name) is not None


def normalize_name(name: str) -> NormalizedName:
    """PEP 503 normalization (P3): ``re.sub(r"[-_.]+", "-", name).lower()``.

    Does not validate; call :func:`is_valid_name` first where the name comes from a user.
    """
    return NormalizedName(_SEPARATOR_RUNS.sub("-", name).lower())
