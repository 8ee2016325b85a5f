"""Step 4b: PyPI's metadata rules on top of ``packaging``'s (P100-P104; warehouse
``forklift/metadata.py``), applied to the file's own metadata.

Summary length, requirements without direct URL references (also in Provides-/Obsoletes-Dist),
normalized and unique extras (PEP 685), License vs License-Expression (PEP 639), http(s) URLs
with a host, Project-URL labels, known and current trove classifiers, syntactically valid
e-mail addresses, and a long description that renders with ``readme-renderer``.
"""

from __future__ import annotations

import email.message
import email.utils
import functools
import hashlib
import io
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final
from urllib.parse import urlsplit

import trove_classifiers
from packaging.metadata import RawMetadata
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidName, canonicalize_name

from bastion.core.dists.errors import DistProblem, shown
from bastion.core.dists.policy import Policy

__all__ = ["check_metadata_rules", "display_field"]

MAX_SUMMARY_LENGTH: Final = 512
MAX_PROJECT_URL_LABEL_LENGTH: Final = 32

_SPELLINGS: Final = {
    "metadata-version": "Metadata-Version",
    "home-page": "Home-page",
    "download-url": "Download-URL",
    "author-email": "Author-email",
    "maintainer-email": "Maintainer-email",
    "project-url": "Project-URL",
    "license-file": "License-File",
    "description-content-type": "Description-Content-Type",
}

# Dot-atom local part (RFC 5322) or a quoted string; UTF-8 allowed (RFC 6531, as
# email-validator allows by default). Domain: dot-separated labels, a non-numeric last label.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\U0010ffff-]+"
_LETTER = r"A-Za-z0-9\u0080-\U0010ffff"
_LABEL = rf"[{_LETTER}](?:[{_LETTER}-]*[{_LETTER}])?"
_ADDRESS: Final = re.compile(
    rf'(?:{_ATOM}(?:\.{_ATOM})*|"[^"\\\r\n]+")@((?:{_LABEL}\.)+{_LABEL})\Z'
)
_URL_FORBIDDEN: Final = re.compile(r"[\x00-\x20\x7f\\]")


def display_field(key: str) -> str:
    """``"requires-dist"`` or ``"requires_dist"`` -> ``"Requires-Dist"`` (the spec's spelling)."""
    key = key.replace("_", "-").lower()
    return _SPELLINGS.get(key, "-".join(part.capitalize() for part in key.split("-")))


def check_metadata_rules(
    raw: RawMetadata, *, label: str, policy: Policy, problems: list[DistProblem]
) -> None:
    """Append every rule violation in ``raw`` (``UNKNOWN`` fillers already removed)."""
    summary = raw.get("summary", "")
    if len(summary) > MAX_SUMMARY_LENGTH:
        problems.append(
            DistProblem(
                "dist.metadata.summary",
                f"Summary in {label} is {len(summary)} characters long; at most "
                f"{MAX_SUMMARY_LENGTH} are allowed.",
                field="Summary",
            )
        )
    _check_requirements(raw.get("requires_dist", []), "Requires-Dist", label, problems)
    _check_requirements(raw.get("provides_dist", []), "Provides-Dist", label, problems)
    _check_requirements(raw.get("obsoletes_dist", []), "Obsoletes-Dist", label, problems)
    _check_extras(raw, label, problems)
    if raw.get("license", "").strip() and raw.get("license_expression", "").strip():
        problems.append(
            DistProblem(
                "dist.metadata.license-conflict",
                f"{label} has both License and License-Expression; License is deprecated when "
                "License-Expression is present (PEP 639): drop License.",
                field="License",
            )
        )
    _check_urls(raw, label, problems)
    if policy.check_classifiers:
        _check_classifiers(raw.get("classifiers", []), label, policy, problems)
    for key in ("author_email", "maintainer_email"):
        value = raw.get(key, "")
        if isinstance(value, str) and value.strip():
            _check_addresses(value, display_field(key), label, problems)
    if policy.render_description:
        _check_description(raw, label, problems)


def _check_requirements(
    values: Iterable[str], field: str, label: str, problems: list[DistProblem]
) -> None:
    """PEP 508, and no ``name @ url`` (P104: the index cannot vouch for what a URL serves)."""
    for value in values:
        try:
            requirement = Requirement(value)
        except InvalidRequirement as error:
            detail = str(error).splitlines()[0]
            problems.append(
                DistProblem(
                    "dist.metadata.requirement",
                    f"{field} {shown(value)} in {label} is not a valid requirement: {detail}",
                    field=field,
                )
            )
            continue
        if requirement.url is not None:
            problems.append(
                DistProblem(
                    "dist.metadata.direct-reference",
                    f"{field} {shown(value)} in {label} is a direct URL reference; an index "
                    "release may only depend on names and versions.",
                    field=field,
                )
            )


def _check_extras(raw: RawMetadata, label: str, problems: list[DistProblem]) -> None:
    """P103 / PEP 685: valid names, normalized from Metadata-Version 2.3 on, no duplicates."""
    normalized_required = raw.get("metadata_version", "") not in ("1.0", "1.1", "1.2", "2.1",
                                                                   "2.2")  # fmt: skip
    seen: dict[str, str] = {}
    for extra in raw.get("provides_extra", []):
        try:
            normalized = canonicalize_name(extra, validate=True)
        except InvalidName:
            problems.append(
                DistProblem(
                    "dist.metadata.provides-extra",
                    f"Provides-Extra {shown(extra)} in {label} is not a valid extra name.",
                    field="Provides-Extra",
                )
            )
            continue
        if normalized_required and extra != normalized:
            problems.append(
                DistProblem(
                    "dist.metadata.provides-extra",
                    f"Provides-Extra {shown(extra)} in {label} must be written normalized "
                    f"({shown(normalized)}) from Metadata-Version 2.3 on.",
                    field="Provides-Extra",
                )
            )
        if normalized in seen:
            problems.append(
                DistProblem(
                    "dist.metadata.provides-extra",
                    f"Provides-Extra {shown(extra)} in {label} duplicates "
                    f"{shown(seen[normalized])} (PEP 685 normalization).",
                    field="Provides-Extra",
                )
            )
        else:
            seen[normalized] = extra


def url_problem(url: str) -> str | None:
    """Why ``url`` is not an acceptable http(s) URL with a host, or ``None``."""
    if _URL_FORBIDDEN.search(url):
        return "contains whitespace, a control character or a backslash"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for an invalid port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme.lower() not in ("http", "https"):
        return "must be an http or https URL"
    if not parts.hostname:
        return "has no host"
    return None


def _check_urls(raw: RawMetadata, label: str, problems: list[DistProblem]) -> None:
    for key in ("home_page", "download_url"):
        url = raw.get(key, "").strip()  # type: ignore[attr-defined]
        if url and (why := url_problem(url)) is not None:
            field = display_field(key)
            problems.append(
                DistProblem(
                    "dist.metadata.url", f"{field} {shown(url)} in {label} {why}.", field=field
                )
            )
    for name, url in raw.get("project_urls", {}).items():
        why = None
        if not name.strip():
            why = "has an empty label"
        elif len(name) > MAX_PROJECT_URL_LABEL_LENGTH:
            why = f"has a label longer than {MAX_PROJECT_URL_LABEL_LENGTH} characters"
        elif not url.strip():
            why = "has no URL"
        else:
            why = url_problem(url.strip())
        if why is not None:
            problems.append(
                DistProblem(
                    "dist.metadata.url",
                    f"Project-URL {shown(f'{name}, {url}')} in {label} {why}.",
                    field="Project-URL",
                )
            )


def _check_classifiers(
    classifiers: Iterable[str], label: str, policy: Policy, problems: list[DistProblem]
) -> None:
    for classifier in classifiers:
        if classifier in trove_classifiers.deprecated_classifiers:
            replacements = trove_classifiers.deprecated_classifiers[classifier]
            instead = f"; use {', '.join(map(shown, replacements))} instead" if replacements else ""
            problems.append(
                DistProblem(
                    "dist.metadata.deprecated-classifier",
                    f"The classifier {shown(classifier)} in {label} is deprecated{instead}.",
                    field="Classifier",
                )
            )
        elif classifier not in trove_classifiers.classifiers and not (
            policy.allow_private_classifiers and classifier.startswith("Private ::")
        ):
            problems.append(
                DistProblem(
                    "dist.metadata.classifier",
                    f"{shown(classifier)} in {label} is not a valid trove classifier.",
                    field="Classifier",
                )
            )


def address_problem(value: str) -> str | None:
    """The first invalid address in an RFC 5322 address list, or ``None`` if all are valid."""
    return _address_problem(value) if len(value) <= 200 else _find_address_problem(value)


def _find_address_problem(value: str) -> str | None:
    pairs = email.utils.getaddresses([value])
    if not pairs or any(not address for _, address in pairs):
        return value  # something the address parser could not make sense of
    for _, address in pairs:
        match = _ADDRESS.match(address)
        if match is None or match[1].rsplit(".", 1)[-1].isdigit():
            return address
    return None


# The address parser took a tenth of checking a file's metadata rules; a project's files (and
# often its neighbours') carry the same few author and maintainer lists.
_address_problem = functools.lru_cache(maxsize=256)(_find_address_problem)


def _check_addresses(value: str, field: str, label: str, problems: list[DistProblem]) -> None:
    bad = address_problem(value)
    if bad is not None:
        problems.append(
            DistProblem(
                "dist.metadata.email",
                f"{field} {shown(value)} in {label} has an invalid e-mail address {shown(bad)}.",
                field=field,
            )
        )


def _check_description(raw: RawMetadata, label: str, problems: list[DistProblem]) -> None:
    """The description renders for its content type, with no fallback (PyPI's rule).

    Without Description-Content-Type the description is reStructuredText (the spec default).
    An invalid content type was reported by packaging; it is not rendered.
    """
    description = raw.get("description", "")
    if not description.strip():
        return
    declared = raw.get("description_content_type", "").strip()
    parsed = _content_type(declared or "text/x-rst")
    if parsed is None:
        return
    content_type, parameters = parsed
    variant = parameters.get("variant", "GFM") if content_type == "text/markdown" else ""
    if content_type == "text/markdown":
        if variant not in ("GFM", "CommonMark"):
            return
    elif content_type != "text/x-rst":
        return  # text/plain always renders; other types were reported by packaging
    failure = _render_failure(content_type, variant, description)
    if failure is None:
        return
    where = "" if declared else " (the default, reStructuredText)"
    problems.append(
        DistProblem(
            "dist.metadata.description-render",
            f"The description in {label} failed to render for {shown(content_type)}{where}"
            + (f": {failure.strip()}" if failure else "."),
            field="Description",
        )
    )


@functools.lru_cache(maxsize=256)
def _content_type(value: str) -> tuple[str, Mapping[str, str]] | None:
    """A Description-Content-Type's type and parameters (None if it does not parse); the few
    values in use are remembered (the e-mail header parser takes ~50 us each time)."""
    message = email.message.EmailMessage()
    try:
        message["content-type"] = value
        return message.get_content_type(), MappingProxyType(dict(message["content-type"].params))
    except (ValueError, IndexError):
        return None


# The verdicts of the last renders: the files of one release (an sdist and its wheels) carry
# the same description, and reStructuredText takes milliseconds to render. Keyed by a digest
# of the content type, the variant and the text; a verdict depends on nothing else.
_RENDER_VERDICTS: Final[OrderedDict[bytes, str | None]] = OrderedDict()
_MAX_RENDER_VERDICTS: Final = 256
_RENDER_VERDICTS_LOCK: Final = threading.Lock()


def _render_failure(content_type: str, variant: str, description: str) -> str | None:
    """None if the description renders, else the renderer's first warning line ("" if none)."""
    key = hashlib.sha256(f"{content_type}\0{variant}\0{description}".encode()).digest()
    with _RENDER_VERDICTS_LOCK:
        if key in _RENDER_VERDICTS:
            _RENDER_VERDICTS.move_to_end(key)
            return _RENDER_VERDICTS[key]
    failure = _render(content_type, variant, description)
    with _RENDER_VERDICTS_LOCK:
        _RENDER_VERDICTS[key] = failure
        while len(_RENDER_VERDICTS) > _MAX_RENDER_VERDICTS:
            _RENDER_VERDICTS.popitem(last=False)
    return failure


def _render(content_type: str, variant: str, description: str) -> str | None:
    if content_type == "text/markdown":
        from readme_renderer import markdown

        # readme-renderer's Markdown render fails only when the converter gives nothing (or is
        # missing); the highlighting and cleaning after it always return text. Asking the
        # converter alone spares ~0.7 ms of syntax-highlighter set-up per upload.
        convert = getattr(markdown, "variants", {}).get(variant)
        if convert is not None:
            return None if convert(description) else ""
        return None if markdown.render(description, variant=variant) is not None else ""
    from readme_renderer import rst

    warnings = io.StringIO()
    if rst.render(description, stream=warnings) is not None:
        return None
    return next((line for line in warnings.getvalue().splitlines() if line.strip()), "")
