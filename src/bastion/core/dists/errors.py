"""Problems found in an uploaded distribution, and the group that rejects it.

Every problem is a :class:`DistProblem` with a stable dotted ``code``, the metadata or form
``field`` it concerns (when there is one) and a one-line ``message`` a person can act on.
Validation collects problems and raises them together as :class:`DistributionRejected`.

Codes (the complete list is :data:`KNOWN_CODES`):

================================== =======================================================
``dist.filename.unsupported-type`` not ``.whl`` / ``.tar.gz``
``dist.filename.too-long``         longer than ``Limits.max_filename_length``
``dist.filename.invalid``          unsafe characters, or not a valid wheel/sdist name
``dist.filename.not-normalized``   name or version part not in normalized form (P86, P93)
``dist.version.local``             local version ``+label`` (P106)
``dist.archive.unreadable``        empty, truncated or corrupt archive
``dist.archive.wrong-type``        content does not match the extension (or is both)
``dist.archive.too-many-members``  more than ``Limits.max_members`` entries
``dist.archive.too-large``         uncompressed size above ``Limits.max_uncompressed_bytes``
``dist.archive.too-compressed``    compression ratio above ``Limits.max_compression_ratio``
``dist.archive.duplicate-member``  the same path twice (ambiguous content)
``dist.archive.unsafe-path``       absolute path or ``..`` component
``dist.wheel.missing-file``        no ``.dist-info/METADATA``, ``WHEEL`` or ``RECORD`` (P87)
``dist.sdist.bad-layout``          not exactly one top-level ``{name}-{version}/`` (P94)
``dist.sdist.missing-pkg-info``    no ``{name}-{version}/PKG-INFO`` (P94)
``dist.metadata.too-large``        metadata file above ``Limits.max_metadata_bytes``
``dist.metadata.encoding``         metadata file is not UTF-8
``dist.metadata.missing-field``    no ``Metadata-Version``, ``Name`` or ``Version`` (P97)
``dist.metadata.invalid-field``    a required field given more than once
``dist.metadata.unsupported-version`` unknown ``Metadata-Version`` (P97)
``dist.metadata.invalid-name``     ``Name`` is not a valid project name (P2)
``dist.metadata.invalid-version``  ``Version`` is not PEP 440 (P105)
``dist.metadata.requires-python``  ``Requires-Python`` is not a specifier set (P100)
``dist.metadata.name-mismatch``    ``Name`` differs from the filename's (P89)
``dist.metadata.version-mismatch`` ``Version`` differs from the filename's (P89)
``dist.form.invalid-name``         the form's name is not a valid project name
``dist.form.invalid-version``      the form's version is not PEP 440
``dist.form.name-mismatch``        the form's name differs from the file's
``dist.form.version-mismatch``     the form's version differs from the file's
``dist.form.filetype``             the form's filetype is not ``sdist``/``bdist_wheel``
``dist.form.filetype-mismatch``    the form's filetype differs from the file's
``dist.form.pyversion``            the form's pyversion does not fit the file type
================================== =======================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Self

__all__ = ["KNOWN_CODES", "DistProblem", "DistributionRejected", "shown"]

KNOWN_CODES: Final[frozenset[str]] = frozenset(
    {
        "dist.filename.unsupported-type",
        "dist.filename.too-long",
        "dist.filename.invalid",
        "dist.filename.not-normalized",
        "dist.version.local",
        "dist.archive.unreadable",
        "dist.archive.wrong-type",
        "dist.archive.too-many-members",
        "dist.archive.too-large",
        "dist.archive.too-compressed",
        "dist.archive.duplicate-member",
        "dist.archive.unsafe-path",
        "dist.wheel.missing-file",
        "dist.sdist.bad-layout",
        "dist.sdist.missing-pkg-info",
        "dist.metadata.too-large",
        "dist.metadata.encoding",
        "dist.metadata.missing-field",
        "dist.metadata.invalid-field",
        "dist.metadata.unsupported-version",
        "dist.metadata.invalid-name",
        "dist.metadata.invalid-version",
        "dist.metadata.requires-python",
        "dist.metadata.name-mismatch",
        "dist.metadata.version-mismatch",
        "dist.form.invalid-name",
        "dist.form.invalid-version",
        "dist.form.name-mismatch",
        "dist.form.version-mismatch",
        "dist.form.filetype",
        "dist.form.filetype-mismatch",
        "dist.form.pyversion",
    }
)


def shown(value: str, *, limit: int = 120) -> str:
    """``value`` quoted for a message, cut short.

    ``ascii()`` rather than ``repr()``: control characters and look-alikes (a Kelvin sign for
    ``K``) are shown as escapes, so the message says what is really there.
    """
    if len(value) > limit:
        return ascii(value[:limit]) + "..."
    return ascii(value)


class DistProblem(Exception):
    """One thing wrong with a distribution. ``str(problem)`` is the message."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"DistProblem({self.code!r}, {self.message!r}, field={self.field!r})"

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only ``field`` would be lost by the default ``Exception`` pickling.
        return (_rebuild_problem, (self.code, self.message, self.field))


def _rebuild_problem(code: str, message: str, field: str | None) -> DistProblem:
    return DistProblem(code, message, field=field)


class DistributionRejected(ExceptionGroup[DistProblem]):
    """A distribution failed validation; carries every problem found, in the order found."""

    def __new__(cls, message: str, problems: Sequence[DistProblem]) -> Self:
        return super().__new__(cls, message, problems)

    @property
    def problems(self) -> tuple[DistProblem, ...]:
        """The problems, flattened, in the order they were found."""
        found: list[DistProblem] = []
        for exception in self.exceptions:
            if isinstance(exception, DistProblem):
                found.append(exception)
            elif isinstance(exception, DistributionRejected):
                found.extend(exception.problems)
        return tuple(found)

    @property
    def codes(self) -> tuple[str, ...]:
        """The problems' codes, in order (convenient for tests and logs)."""
        return tuple(problem.code for problem in self.problems)

    def summary(self) -> str:
        """Every problem's message, joined with ``"; "``."""
        return "; ".join(problem.message for problem in self.problems)
