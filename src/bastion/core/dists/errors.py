"""Problems found in an uploaded distribution, and the group that rejects it.

Every problem is a :class:`DistProblem` with a stable dotted ``code``, the metadata or form
``field`` it concerns (when there is one) and a one-line ``message`` a person can act on.
Validation collects problems and raises them together as :class:`DistributionRejected`.

Codes (the complete list is :data:`KNOWN_CODES`). Framing codes are ``dist.archive.*`` when
they apply to both containers, ``dist.zip.*`` / ``dist.tar.*`` when they are specific to one.

========================================= ====================================================
``dist.filename.unsupported-type``        not ``.whl`` / ``.tar.gz``
``dist.filename.too-long``                longer than ``Limits.max_filename_length``
``dist.filename.invalid``                 unsafe characters, or not a valid wheel/sdist name
``dist.filename.not-normalized``          name or version part not in normalized form (P86, P93)
``dist.version.local``                    local version ``+label`` (P106; ``Policy``)
``dist.wheel.platform-tag``               platform tag not on the allow-list (P108; ``Policy``)
``dist.name.stdlib``                      new project named like a standard-library module
``dist.name.prohibited``                  new project name on the prohibited list
``dist.name.confusable``                  new project name looks like an existing project's
``dist.archive.unreadable``               empty, truncated or corrupt archive (bad CRC too)
``dist.archive.wrong-type``               content does not match the extension (or is both)
``dist.archive.too-many-members``         more than ``Limits.max_members`` entries
``dist.archive.too-large``                uncompressed size above ``Limits.max_uncompressed_bytes``
``dist.archive.too-compressed``           compression ratio above ``Limits.max_compression_ratio``
``dist.archive.duplicate-member``         the same path twice (ambiguous content)
``dist.archive.unsafe-path``              absolute, ``..``/``.``/empty component, backslash, drive
``dist.archive.invalid-name``             control character (0x00-0x1F, 0x7F) or undecodable name
``dist.archive.special-member``           device, FIFO or other non-file, non-directory member
``dist.archive.unsafe-link``              sdist link pointing outside its top directory
``dist.zip.unsupported-compression``      member not stored or deflated (P109)
``dist.zip.encrypted``                    encrypted member
``dist.zip.symlink``                      symbolic link member (wheels may not contain links)
``dist.zip.non-utf8-name``                member name neither ASCII nor flagged/decodable UTF-8
``dist.zip.header-mismatch``              local header disagrees with the central directory
``dist.zip.data-descriptor``              streamed member (sizes after the data, P109)
``dist.zip.prepended-data``               bytes before the first local header
``dist.zip.trailing-data``                bytes after the end of central directory record
``dist.zip.comment``                      archive or member comment
``dist.zip.overlapping-members``          two members share bytes
``dist.zip.hidden-data``                  bytes no member accounts for (gaps, stream slack)
``dist.zip.size-mismatch``                member decompresses to other than its declared size
``dist.tar.sparse``                       GNU or pax sparse member (P109)
``dist.tar.trailing-data``                non-zero data after the end-of-archive marker
``dist.wheel.missing-file``               no ``.dist-info/METADATA``, ``WHEEL`` or ``RECORD`` (P87)
``dist.wheel.multiple-dist-info``         more than one top-level ``.dist-info`` directory
``dist.wheel.invalid-wheel-file``         ``WHEEL`` unparseable or missing a required field (P88)
``dist.wheel.unsupported-version``        ``Wheel-Version`` not 1.x (P88)
``dist.wheel.tag-mismatch``               ``WHEEL`` tags or build differ from the filename's (P88)
``dist.wheel.entry-points``               ``entry_points.txt`` unparseable or unsafe name (P91)
``dist.wheel.license-file-missing``       License-File not in ``.dist-info/licenses/`` (P90)
``dist.record.invalid``                   RECORD not CSV/UTF-8, bad row, directory or signature
``dist.record.duplicate-entry``           a path listed twice in RECORD
``dist.record.weak-hash``                 md5/sha1/unknown hash algorithm in RECORD (P92)
``dist.record.missing-entry``             an archive member RECORD does not list
``dist.record.absent-file``               RECORD lists a path the archive does not contain
``dist.record.hash-mismatch``             a member's content does not match its RECORD hash
``dist.record.size-mismatch``             a member's size does not match its RECORD size
``dist.sdist.bad-layout``                 not exactly one top-level ``{name}-{version}/`` (P94)
``dist.sdist.missing-pkg-info``           no ``{name}-{version}/PKG-INFO`` (P94)
``dist.sdist.license-file-missing``       License-File not at ``{top}/<path>`` (P94)
``dist.metadata.too-large``               metadata file above ``Limits.max_metadata_bytes``
``dist.metadata.encoding``                metadata file is not UTF-8
``dist.metadata.missing-field``           no ``Metadata-Version``, ``Name`` or ``Version`` (P97)
``dist.metadata.invalid-field``           a field repeated or otherwise invalid (packaging)
``dist.metadata.unsupported-version``     unknown ``Metadata-Version`` (P97)
``dist.metadata.field-too-new``           a field newer than the ``Metadata-Version`` (P98)
``dist.metadata.invalid-name``            ``Name`` is not a valid project name (P2)
``dist.metadata.invalid-version``         ``Version`` is not PEP 440 (P105)
``dist.metadata.requires-python``         ``Requires-Python`` is not a specifier set (P100)
``dist.metadata.requirement``             ``Requires-Dist``/``Provides-Dist``/... not PEP 508
``dist.metadata.direct-reference``        a requirement with ``@ url`` (P104)
``dist.metadata.provides-extra``          invalid, unnormalized (2.3+) or duplicate extra (P103)
``dist.metadata.license-expression``      ``License-Expression`` not valid SPDX (P102)
``dist.metadata.license-conflict``        both ``License`` and ``License-Expression`` (P102)
``dist.metadata.license-file``            ``License-File`` path not relative/resolved (P102)
``dist.metadata.dynamic``                 ``Dynamic`` names a forbidden or unknown field (P101)
``dist.metadata.summary``                 ``Summary`` longer than 512 characters or multi-line
``dist.metadata.content-type``            bad ``Description-Content-Type`` (P100)
``dist.metadata.import-name``             bad ``Import-Name``/``Import-Namespace`` (P100)
``dist.metadata.url``                     bad ``Home-page``/``Download-URL``/``Project-URL``
``dist.metadata.classifier``              classifier unknown to ``trove-classifiers`` (P104)
``dist.metadata.deprecated-classifier``   deprecated classifier (P104)
``dist.metadata.email``                   bad ``Author-email``/``Maintainer-email`` (P104)
``dist.metadata.description-render``      description does not render for its content type
``dist.metadata.name-mismatch``           ``Name`` differs from the filename's (P89)
``dist.metadata.version-mismatch``        ``Version`` differs from the filename's (P89)
``dist.form.invalid-name``                the form's name is not a valid project name
``dist.form.invalid-version``             the form's version is not PEP 440
``dist.form.name-mismatch``               the form's name differs from the file's
``dist.form.version-mismatch``            the form's version differs from the file's
``dist.form.filetype``                    the form's filetype is not ``sdist``/``bdist_wheel``
``dist.form.filetype-mismatch``           the form's filetype differs from the file's
``dist.form.pyversion``                   the form's pyversion does not fit the file type
``dist.form.field-mismatch``              another form field disagrees with the file (P64-P66)
========================================= ====================================================
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
        "dist.wheel.platform-tag",
        "dist.name.stdlib",
        "dist.name.prohibited",
        "dist.name.confusable",
        "dist.archive.unreadable",
        "dist.archive.wrong-type",
        "dist.archive.too-many-members",
        "dist.archive.too-large",
        "dist.archive.too-compressed",
        "dist.archive.duplicate-member",
        "dist.archive.unsafe-path",
        "dist.archive.invalid-name",
        "dist.archive.special-member",
        "dist.archive.unsafe-link",
        "dist.zip.unsupported-compression",
        "dist.zip.encrypted",
        "dist.zip.symlink",
        "dist.zip.non-utf8-name",
        "dist.zip.header-mismatch",
        "dist.zip.data-descriptor",
        "dist.zip.prepended-data",
        "dist.zip.trailing-data",
        "dist.zip.comment",
        "dist.zip.overlapping-members",
        "dist.zip.hidden-data",
        "dist.zip.size-mismatch",
        "dist.tar.sparse",
        "dist.tar.trailing-data",
        "dist.wheel.missing-file",
        "dist.wheel.multiple-dist-info",
        "dist.wheel.invalid-wheel-file",
        "dist.wheel.unsupported-version",
        "dist.wheel.tag-mismatch",
        "dist.wheel.entry-points",
        "dist.wheel.license-file-missing",
        "dist.record.invalid",
        "dist.record.duplicate-entry",
        "dist.record.weak-hash",
        "dist.record.missing-entry",
        "dist.record.absent-file",
        "dist.record.hash-mismatch",
        "dist.record.size-mismatch",
        "dist.sdist.bad-layout",
        "dist.sdist.missing-pkg-info",
        "dist.sdist.license-file-missing",
        "dist.metadata.too-large",
        "dist.metadata.encoding",
        "dist.metadata.missing-field",
        "dist.metadata.invalid-field",
        "dist.metadata.unsupported-version",
        "dist.metadata.field-too-new",
        "dist.metadata.invalid-name",
        "dist.metadata.invalid-version",
        "dist.metadata.requires-python",
        "dist.metadata.requirement",
        "dist.metadata.direct-reference",
        "dist.metadata.provides-extra",
        "dist.metadata.license-expression",
        "dist.metadata.license-conflict",
        "dist.metadata.license-file",
        "dist.metadata.dynamic",
        "dist.metadata.summary",
        "dist.metadata.content-type",
        "dist.metadata.import-name",
        "dist.metadata.url",
        "dist.metadata.classifier",
        "dist.metadata.deprecated-classifier",
        "dist.metadata.email",
        "dist.metadata.description-render",
        "dist.metadata.name-mismatch",
        "dist.metadata.version-mismatch",
        "dist.form.invalid-name",
        "dist.form.invalid-version",
        "dist.form.name-mismatch",
        "dist.form.version-mismatch",
        "dist.form.filetype",
        "dist.form.filetype-mismatch",
        "dist.form.pyversion",
        "dist.form.field-mismatch",
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
