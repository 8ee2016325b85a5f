"""Every quirk of the legacy upload wire protocol (PyPI's ``POST /legacy/``), in one place.

References are to the protocol checklist (P59-P77): twine and uv send the core metadata of the
distribution as form fields (lower-cased, ``-`` to ``_``, multiple-use fields repeated under a
plural name), the file as the ``content`` part, and one or more hex digests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bastion.core.dists import DeclaredFields
from bastion.uploads.errors import UploadError, bad_request
from bastion.uploads.spool import ParsedBody, SpooledFile

ACTION_UPLOAD = "file_upload"
GONE_ACTIONS = frozenset({"submit", "submit_pkg_info", "doc_upload"})  # P61
FILETYPES = frozenset({"sdist", "bdist_wheel"})  # P68 (PEP 527/715: no eggs)
_HEX64 = re.compile(r"\A[0-9a-fA-F]{64}\Z")
_HEX32 = re.compile(r"\A[0-9a-fA-F]{32}\Z")
_BAD_FILENAME_CHARS = re.compile(r"[/\\\x00-\x1f\x7f]")
HELP = "See the core metadata specification for more information."


@dataclass(frozen=True)
class Digests:
    md5: str | None
    sha256: str | None
    blake2_256: str | None


@dataclass(frozen=True)
class UploadRequest:
    name: str
    version: str
    filetype: str
    pyversion: str | None
    metadata_version: str | None
    digests: Digests
    content: SpooledFile
    comment: str
    fields: dict[str, list[str]]

    @property
    def declared(self) -> DeclaredFields:
        return DeclaredFields(
            name=self.name,
            version=self.version,
            filetype=self.filetype,
            pyversion=self.pyversion,
            metadata_version=self.metadata_version,
            fields=self.fields,
        )


def action_of(query: dict[str, list[str]], fields: dict[str, list[str]]) -> str | None:
    """``:action`` may come from the query string or the body (P59)."""
    for source in (fields, query):
        values = source.get(":action")
        if values:
            return values[-1]
    return None


def check_action(action: str | None) -> None:
    if action in GONE_ACTIONS:
        raise UploadError(
            410, "upload.action-gone", f"The ':action' {action!r} is no longer supported."
        )
    if action != ACTION_UPLOAD:
        raise bad_request(
            "upload.unknown-action",
            "Unknown or missing ':action'; this endpoint accepts ':action=file_upload'.",
            field=":action",
        )


def _single(fields: dict[str, list[str]], name: str) -> str | None:
    """One value of a field; "" and the distutils filler "UNKNOWN" count as absent (P66)."""
    values = [v for v in fields.get(name, []) if v.strip() not in ("", "UNKNOWN")]
    if not values:
        return None
    if len(values) > 1:
        raise bad_request(
            "upload.field-repeated", f"{name}: Send this field only once.", field=name
        )
    return values[0].replace("\x00", "\ufffd")


def _digests(fields: dict[str, list[str]]) -> Digests:
    md5 = _single(fields, "md5_digest")
    sha256 = _single(fields, "sha256_digest")
    blake2 = _single(fields, "blake2_256_digest")
    if md5 is None and sha256 is None and blake2 is None:
        raise bad_request("upload.digest-missing", "Include at least one message digest.")
    for field_name, value, pattern in (
        ("md5_digest", md5, _HEX32),
        ("sha256_digest", sha256, _HEX64),
        ("blake2_256_digest", blake2, _HEX64),
    ):
        if value is not None and not pattern.match(value):
            raise bad_request(
                "upload.digest-invalid",
                f"{field_name}: Use a valid, hex-encoded digest.",
                field=field_name,
            )
    return Digests(
        md5=md5.lower() if md5 else None,
        sha256=sha256.lower() if sha256 else None,
        blake2_256=blake2.lower() if blake2 else None,
    )


def parse_upload(body: ParsedBody) -> UploadRequest:
    """Turn a parsed multipart body into a typed upload request (P59-P70)."""
    fields = body.fields
    if body.file_fields:
        name = body.file_fields[0]
        raise bad_request("upload.field-is-file", f"{name}: Should not be a tuple.", field=name)
    protocol_version = _single(fields, "protocol_version") or "1"
    if protocol_version != "1":
        raise bad_request(
            "upload.protocol-version", "Unknown protocol version.", field="protocol_version"
        )
    if _single(fields, "attestations") is not None:
        raise bad_request(
            "upload.attestations-unsupported",
            "This index does not accept PEP 740 attestations yet; upload without them "
            "(uv publish --no-attestations).",
            field="attestations",
        )
    missing = [f for f in ("name", "version", "filetype") if _single(fields, f) is None]
    if missing:
        raise bad_request(
            "upload.field-missing", f"{missing[0]}: This field is required.", field=missing[0]
        )
    name = _single(fields, "name") or ""
    version = _single(fields, "version") or ""
    filetype = _single(fields, "filetype") or ""
    if filetype not in FILETYPES:
        raise bad_request("upload.filetype", "Use a known file type.", field="filetype")
    pyversion = _single(fields, "pyversion")
    if filetype == "sdist":
        if pyversion not in (None, "source"):
            raise bad_request(
                "upload.pyversion",
                "Use 'source' as Python version for an sdist.",
                field="pyversion",
            )
        pyversion = "source"
    elif pyversion is None:
        raise bad_request(
            "upload.field-missing",
            "pyversion: This field is required for wheels.",
            field="pyversion",
        )
    digests = _digests(fields)
    content = body.content
    if content is None:
        raise bad_request("upload.no-file", "Upload payload does not have a file.", field="content")
    if content.content_type is not None and content.content_type.lower().startswith("image/"):
        raise bad_request("upload.invalid-file", "Invalid distribution file.", field="content")
    if _BAD_FILENAME_CHARS.search(content.filename):
        raise bad_request(
            "upload.filename-invalid",
            "Invalid filename: a distribution file name may not contain '/', '\\' or "
            "control characters.",
            field="content",
        )
    return UploadRequest(
        name=name,
        version=version,
        filetype=filetype,
        pyversion=pyversion,
        metadata_version=_single(fields, "metadata_version"),
        digests=digests,
        content=content,
        comment=(_single(fields, "comment") or "")[:1000],
        fields=fields,
    )


def check_digests(request: UploadRequest) -> None:
    """Every supplied digest must match the received bytes (P67)."""
    actual = request.content.hashes
    for supplied, computed in (
        (request.digests.md5, actual.md5),
        (request.digests.sha256, actual.sha256),
        (request.digests.blake2_256, actual.blake2b_256),
    ):
        if supplied is not None and supplied != computed:
            raise bad_request(
                "upload.digest-mismatch",
                "The digest supplied does not match a digest calculated from the uploaded file.",
            )


AUTH_MISSING = (
    "Invalid or non-existent authentication information. Authenticate with an API token: "
    "username '__token__', the token as the password."
)
PASSWORD_REFUSED = (
    "Username/Password authentication is not supported for uploads. Use an API token: "
    "username '__token__', the token (bastion-...) as the password."
)


def token_from_authorization(header: str | None) -> str:
    """The API token from ``Authorization`` (Basic ``__token__``, ``Bearer`` or ``Token``, P62)."""
    import base64
    import binascii

    if not header or not header.strip():
        raise UploadError(401, "auth.missing", AUTH_MISSING)
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme in ("bearer", "token"):
        if not value:
            raise UploadError(403, "auth.invalid", AUTH_MISSING)
        return value
    if scheme != "basic":
        raise UploadError(403, "auth.invalid", AUTH_MISSING)
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise UploadError(403, "auth.invalid", AUTH_MISSING) from None
    username, separator, password = decoded.partition(":")
    if not separator:
        raise UploadError(403, "auth.invalid", AUTH_MISSING)
    if username != "__token__":
        raise UploadError(403, "auth.password-refused", PASSWORD_REFUSED)
    password = password.strip()
    if not password:
        raise UploadError(403, "auth.invalid", AUTH_MISSING)
    return password
