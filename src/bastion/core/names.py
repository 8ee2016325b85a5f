"""Project names: validity (P2), PEP 503 normalization (P3), and the names a new project may not
take (PyPI's ``check_project_name``: standard-library names, prohibited names, look-alikes).

``NormalizedName`` is a distinct type so that a raw, user-typed name cannot reach a lookup by
accident: the only way to get one is :func:`normalize_name`.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from typing import Final, NewType

__all__ = [
    "PROHIBITED_NAMES",
    "NormalizedName",
    "confusable_key",
    "is_prohibited_name",
    "is_stdlib_name",
    "is_valid_name",
    "normalize_name",
]

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


# -- names a new project may not take ---------------------------------------------------------

#: Top-level standard-library module names of the running interpreter, normalized. PyPI uses the
#: ``stdlib-list`` package (every Python version, and every dotted prefix of every module); this
#: index uses the interpreter's own list (no extra dependency), so modules removed before the
#: running Python are not covered. A project named like a module would be shadowed by -- or
#: would shadow -- the standard library on install.
_STDLIB_NAMES: Final[frozenset[str]] = frozenset(
    normalize_name(module) for module in sys.stdlib_module_names
)

#: Names no new project may take, normalized. Deliberately short; every entry has a reason:
#:
#: * ``python``, ``python2``, ``python3``, ``cpython``, ``stdlib``: would pass for the
#:   interpreter or its standard library (``pip install python`` must not install anything);
#: * ``requirements-txt``, ``requirement-txt``, ``setup-py``, ``pyproject-toml``: what
#:   ``pip install requirements.txt`` (a forgotten ``-r``) and similar slips ask for -- classic
#:   typosquatting targets, blocked on PyPI by registering them.
#:
#: Real projects that merely sound special (``pip``, ``setuptools``, ``wheel``) are not listed:
#: they are ordinary projects that someone owns.
PROHIBITED_NAMES: Final[frozenset[str]] = frozenset(
    {
        "python",
        "python2",
        "python3",
        "cpython",
        "stdlib",
        "requirements-txt",
        "requirement-txt",
        "setup-py",
        "pyproject-toml",
    }
)


def is_stdlib_name(name: str) -> bool:
    """Whether ``name`` normalizes to a standard-library top-level module name (``Asyncio``)."""
    return normalize_name(name) in _STDLIB_NAMES


def is_prohibited_name(name: str, prohibited: frozenset[str] = PROHIBITED_NAMES) -> bool:
    """Whether ``name`` normalizes to one of ``prohibited`` (themselves normalized)."""
    return normalize_name(name) in prohibited


# -- look-alike names -------------------------------------------------------------------------

# Letters from other scripts that render like a Latin letter (a short, common subset of Unicode's
# confusables list). Valid project names are ASCII, so this only matters when the key is taken of
# a raw, unvalidated string; it is cheap insurance.
_HOMOGLYPHS: Final[dict[int, str]] = str.maketrans(
    {
        "\u0430": "a",  # CYRILLIC SMALL LETTER A
        "\u0435": "e",  # CYRILLIC SMALL LETTER IE
        "\u043e": "o",  # CYRILLIC SMALL LETTER O
        "\u0440": "p",  # CYRILLIC SMALL LETTER ER
        "\u0441": "c",  # CYRILLIC SMALL LETTER ES
        "\u0443": "y",  # CYRILLIC SMALL LETTER U
        "\u0445": "x",  # CYRILLIC SMALL LETTER HA
        "\u0456": "i",  # CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I
        "\u0458": "j",  # CYRILLIC SMALL LETTER JE
        "\u0455": "s",  # CYRILLIC SMALL LETTER DZE
        "\u0501": "d",  # CYRILLIC SMALL LETTER KOMI DE
        "\u03b1": "a",  # GREEK SMALL LETTER ALPHA
        "\u03bf": "o",  # GREEK SMALL LETTER OMICRON
        "\u03c1": "p",  # GREEK SMALL LETTER RHO
        "\u03bd": "v",  # GREEK SMALL LETTER NU
        "\u03b9": "i",  # GREEK SMALL LETTER IOTA
        "\u03ba": "k",  # GREEK SMALL LETTER KAPPA
        "\u0261": "g",  # LATIN SMALL LETTER SCRIPT G
    }
)

# Separators are dropped entirely (PyPI's ``ultranormalize_name`` removes ``.``, ``_``, ``-``).
# Then each class of look-alike characters collapses to one representative:
#
# * ``o``/``0`` and ``l``/``i``/``1`` -- exactly PyPI's ultranormalize (it maps to the digits;
#   the direction does not matter for collisions);
# * ``e``/``3`` and ``s``/``5`` -- an extension: these digits are the usual leetspeak stand-ins
#   in typosquats (``requ3sts``, ``reque5ts``) and, in most fonts, close in shape. ``4`` for ``a``
#   and ``7`` for ``t`` are left out: they are common in real names (``py4j``, ``s3`` ...) and look
#   less alike, so the false positives would outweigh the protection.
#
# Multi-character look-alikes (``rn`` for ``m``, ``vv`` for ``w``) are out of scope, as are
# transposition typos (``reqeusts``); PyPI's asynchronous typosquat check covers those.
_LOOKALIKES: Final[dict[int, str | None]] = str.maketrans(
    {"-": None, "_": None, ".": None, "0": "o", "1": "l", "i": "l", "3": "e", "5": "s"}
)


def confusable_key(name: str) -> str:
    """A key under which look-alike names collide: ``Req_uests``, ``requ3sts`` -> ``requests``.

    NFKC (full-width and other compatibility forms) and case folding first; then accents and
    other combining marks are dropped (``reqüests`` looks like ``requests``); then the homoglyph
    and look-alike tables above. Idempotent: ``confusable_key(confusable_key(n))`` is the key.
    Two distinct projects whose keys are equal are "too similar" (issue item 6).
    """
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", name).casefold())
    if not folded.isascii():
        folded = "".join(c for c in folded if not unicodedata.category(c).startswith("M"))
    return folded.translate(_HOMOGLYPHS).translate(_LOOKALIKES)
