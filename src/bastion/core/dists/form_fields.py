"""The upload form's other core-metadata fields must agree with the file (issue item 5).

twine and uv send the file's core metadata as form fields (P64-P66): lower-cased with ``-`` ->
``_``, multiple-use fields repeated under a plural name (``classifiers``, ``requires_dist``,
``project_urls`` ...), ``keywords`` as one comma-joined string, the description as
``description``. PyPI *stores* these form values; this index stores the file's metadata, so a
form that says something else is a client bug or an attempt to show one thing and ship another
-- either way the upload is refused, naming the field.

Only fields present in the form are compared; ``""`` and ``UNKNOWN`` count as absent (P66).
Values are compared after light normalization: surrounding whitespace; order of multiple-use
fields; requirement, specifier and extra spelling; whitespace runs inside the description and
license text (line endings, trailing spaces, the old 8-space continuation indent); case and
spacing in Description-Content-Type. ``name``, ``version``, ``filetype`` and ``pyversion`` are
checked by ``declared``; ``metadata_version`` is not compared (the file's is authoritative).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Final

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from bastion.core.dists.errors import DistProblem, shown
from bastion.core.dists.model import ReleaseMetadata

__all__ = ["check_form_fields"]

Normalizer = Callable[[str], str]


def _strip(value: str) -> str:
    return value.strip()


def _collapse(value: str) -> str:
    return " ".join(value.split())


def _content_type(value: str) -> str:
    return "".join(value.split()).lower()


def _requirement(value: str) -> str:
    try:
        return str(Requirement(value))
    except InvalidRequirement:
        return value.strip()


def _specifiers(value: str) -> str:
    try:
        return ",".join(sorted(str(spec) for spec in SpecifierSet(value)))
    except InvalidSpecifier:
        return value.strip()


def _extra(value: str) -> str:
    return canonicalize_name(value.strip())


def _lower(value: str) -> str:
    return value.strip().lower()


def _project_url(value: str) -> str:
    label, _, url = value.partition(",")
    return f"{label.strip()}, {url.strip()}"


# form field -> (ReleaseMetadata attribute, normalizer, multiple-use?)
_FIELDS: Final[Mapping[str, tuple[str, Normalizer, bool]]] = {
    "summary": ("summary", _strip, False),
    "description": ("description", _collapse, False),
    "description_content_type": ("description_content_type", _content_type, False),
    "home_page": ("home_page", _strip, False),
    "download_url": ("download_url", _strip, False),
    "author": ("author", _strip, False),
    "author_email": ("author_email", _strip, False),
    "maintainer": ("maintainer", _strip, False),
    "maintainer_email": ("maintainer_email", _strip, False),
    "license": ("license", _collapse, False),
    "license_expression": ("license_expression", _strip, False),
    "requires_python": ("requires_python", _specifiers, False),
    "classifiers": ("classifiers", _strip, True),
    "requires_dist": ("requires_dist", _requirement, True),
    "provides_dist": ("provides_dist", _requirement, True),
    "obsoletes_dist": ("obsoletes_dist", _requirement, True),
    "requires_external": ("requires_external", _strip, True),
    "provides_extra": ("provides_extra", _extra, True),
    "dynamic": ("dynamic", _lower, True),
    "project_urls": ("project_urls", _project_url, True),
    "platform": ("platforms", _strip, True),
    "supported_platform": ("supported_platforms", _strip, True),
    "license_file": ("license_files", _strip, True),
    # PyPI reads the singular; uv 0.12 sends the plural (P65). Both are accepted.
    "import_name": ("import_names", _strip, True),
    "import_names": ("import_names", _strip, True),
    "import_namespace": ("import_namespaces", _strip, True),
    "import_namespaces": ("import_namespaces", _strip, True),
}
_ABSENT: Final = frozenset({"", "UNKNOWN"})


def check_form_fields(
    fields: Mapping[str, Sequence[str]],
    metadata: ReleaseMetadata,
    *,
    label: str,
    problems: list[DistProblem],
) -> None:
    """Report each form field that disagrees with the file's metadata."""
    for form_field in sorted(fields):
        known = _FIELDS.get(form_field)
        if known is None and form_field != "keywords":
            continue
        sent = [value for value in fields[form_field] if value.strip() not in _ABSENT]
        if not sent:
            continue
        if form_field == "keywords":
            form_values = _keywords(sent)
            file_values = _keywords([metadata.keywords])
        else:
            attribute, normalize, multiple = known  # type: ignore[misc]
            file_values = _file_values(metadata, attribute, multiple, normalize)
            form_values = sorted(normalize(value) for value in sent)
            if not multiple:
                form_values = sorted(set(form_values))
        if form_values != file_values:
            problems.append(
                DistProblem(
                    "dist.form.field-mismatch",
                    f"Field {shown(form_field)} in the upload form ({_summary(form_values)}) "
                    f"does not match {label} ({_summary(file_values)}).",
                    field=form_field,
                )
            )


def _file_values(
    metadata: ReleaseMetadata, attribute: str, multiple: bool, normalize: Normalizer
) -> list[str]:
    value = getattr(metadata, attribute)
    if attribute == "project_urls":
        items = [f"{label}, {url}" for label, url in value]
    elif multiple:
        items = list(value)
    else:
        items = [value]
    return sorted(normalize(item) for item in items if item.strip() not in _ABSENT)


def _keywords(values: Sequence[str]) -> list[str]:
    """Keywords as a set: PyPI splits the comma-joined string; some tools use spaces."""
    words = {word.strip() for value in values for word in value.replace(",", " ").split()}
    return sorted(word for word in words if word)


def _summary(values: list[str]) -> str:
    if not values:
        return "absent"
    return shown("; ".join(values), limit=60)
