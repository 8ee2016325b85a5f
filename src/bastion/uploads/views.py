"""``POST /legacy/``: the upload endpoint twine and uv publish to."""

from __future__ import annotations

import json
import logging
from datetime import datetime

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from bastion.actors import Actor
from bastion.audit.chain import coarse_ip
from bastion.audit.services import record_now
from bastion.clients import client_address
from bastion.core.names import normalize_name
from bastion.security.errors import TokenError
from bastion.storage import blob_store
from bastion.tokens import services as token_services
from bastion.tokens.errors import TokenRefused
from bastion.tokens.models import ApiToken
from bastion.uploads import limits, protocol
from bastion.uploads.errors import UploadError, rate_limited
from bastion.uploads.services import upload_distribution
from bastion.uploads.spool import ParsedBody, read_body

log = logging.getLogger(__name__)

# Form fields and the multipart framing on top of the largest allowed file.
_BODY_OVERHEAD = 16 * 1024 * 1024


def _wants_json(request: HttpRequest) -> bool:
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept.split(",")[0]


def _reason(message: str) -> str:
    """One line, ISO-8859-1 safe, bounded: it goes on the HTTP status line (P73)."""
    line = " ".join(message.split())
    line = line.encode("latin-1", "replace").decode("latin-1")
    return line[:400]


def error_response(request: HttpRequest, error: UploadError) -> HttpResponse:
    reason = _reason(error.message)
    if _wants_json(request):
        body = json.dumps(
            {
                "code": f"{error.status} {reason}",
                "message": error.message,
                "title": reason,
                "errors": [
                    {"code": p.code, "field": p.field, "message": p.message} for p in error.problems
                ],
            }
        )
        response = HttpResponse(body, status=error.status, content_type="application/json")
    else:
        lines = [f"{error.status} {error.message}"]
        if len(error.problems) > 1:
            lines += [f"- {p.message} [{p.code}]" for p in error.problems]
        response = HttpResponse(
            "\n".join(lines) + "\n", status=error.status, content_type="text/plain; charset=utf-8"
        )
    response.reason_phrase = reason
    response["X-Bastion-Error"] = error.code
    for name, value in error.headers.items():
        response[name] = value
    if error.status == 401:
        response["WWW-Authenticate"] = 'Basic realm="bastion upload", charset="UTF-8"'
    return response


def _record_refusal(
    request: HttpRequest, error: UploadError, token: ApiToken, body: ParsedBody | None
) -> None:
    """A refusal of a genuine token (its signature verified) leaves an audit event, nothing
    else. Requests whose credential did not verify are anonymous and never reach here."""
    fields = body.fields if body is not None else {}
    name = (fields.get("name") or [""])[-1][:200]
    filename = (body.content.filename if body is not None and body.content else "") or ""
    actor = Actor.from_request(request, user=token.user, token=token)
    kind = "token.refused" if error.code.startswith("token.") else "upload.rejected"
    try:
        record_now(
            kind,
            actor=actor,
            subject_user=token.user,
            project_name=normalize_name(name) if name else "",
            payload={
                "status": error.status,
                "code": error.code,
                "reason": error.message[:500],
                "filename": filename[:255],
                "problems": [p.code for p in error.problems][:50],
            },
        )
    except Exception:  # noqa: BLE001 - the refusal itself must still reach the client
        log.exception("could not record a refused upload")


def _limit_error(limit: limits.Limit, now: datetime, what: str) -> UploadError:
    wait = limit.reset_after(now)
    return rate_limited(
        limit.name,
        f"{what}: limit {limit.count} per {limit.seconds} s; retry in {wait} s.",
        limit.headers(now),
    )


def _count_failed_credential(limit: limits.Limit, address: str, now: datetime) -> None:
    try:
        limits.hit(limit, address, now)
    except limits.CounterStoreUnavailable:
        pass  # refusing the credential does not depend on counting it


def _record_rate_limit(
    request: HttpRequest, error: UploadError, address: str, now: datetime, *, token: ApiToken | None
) -> None:
    """One ``ratelimit.hit`` event per address and limit per window: a flood cannot fill the
    trail. Anonymous when no token was verified."""
    limit = limits.limits().get(error.limit)
    if limit is None or not limits.first_in_window(limit, (coarse_ip(address) or address), now):
        return
    user = token.user if token is not None else None
    try:
        record_now(
            "ratelimit.hit",
            actor=Actor.from_request(request, user=user, token=token),
            subject_user=user,
            payload={"limit": error.limit, "address": (coarse_ip(address) or address)},
        )
    except Exception:  # noqa: BLE001 - the 429 itself must still reach the client
        log.exception("could not record a rate-limit hit")


@csrf_exempt
def legacy_upload(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return HttpResponse(
            "This is the upload endpoint: POST distributions here with twine or uv publish.\n",
            status=405,
            content_type="text/plain",
            headers={"Allow": "POST"},
        )
    now = timezone.now()
    address = client_address(request.META) or "unknown"
    named = limits.limits()
    failed_auth = named["failed-auth"]
    # An address past its failed-credential limit is refused before anything else is done.
    if limits.peek(failed_auth, address, now) >= failed_auth.count:
        error = _limit_error(failed_auth, now, "Too many failed authentication attempts")
        _record_rate_limit(request, error, address, now, token=None)
        return error_response(request, error)
    # Authenticate first, from the Authorization header alone, before a byte of the body is
    # read. A credential that does not verify is anonymous: nothing is recorded or attributed.
    try:
        raw_token = protocol.token_from_authorization(request.headers.get("Authorization"))
        principal = token_services.authenticate(raw_token, permission="upload", now=now)
    except TokenRefused as refused:  # genuine, but expired, another user's, or disabled
        error = UploadError(403, refused.code, str(refused))
        _record_refusal(request, error, refused.token, None)
        return error_response(request, error)
    except (TokenError, UploadError) as exc:
        _count_failed_credential(failed_auth, address, now)
        error = exc if isinstance(exc, UploadError) else UploadError(403, exc.code, str(exc))
        return error_response(request, error)
    token = principal.token
    if not token.user.upload_limits_exempt:
        uploads = named["upload"]
        try:
            used = limits.hit(uploads, str(token.pk), now)
        except limits.CounterStoreUnavailable:
            used = 0  # ordinary uploads continue without the counters
        if used > uploads.count:
            error = _limit_error(uploads, now, "Too many uploads with this token")
            _record_rate_limit(request, error, address, now, token=token)
            return error_response(request, error)
    config = settings.BASTION
    body = None
    try:
        declared_length = request.META.get("CONTENT_LENGTH") or "0"
        if (
            declared_length.isdigit()
            and int(declared_length) > config.max_file_size + _BODY_OVERHEAD
        ):
            raise UploadError(
                413,
                "upload.file-too-large",
                f"File too large. Limit for this index is {config.max_file_size // 1024**2} MiB.",
            )
        query = {key: request.GET.getlist(key) for key in request.GET}
        body = read_body(request, spool_dir=config.spool_dir, max_size=config.max_file_size)
        protocol.check_action(protocol.action_of(query, body.fields))
        upload = protocol.parse_upload(body)
        outcome = upload_distribution(
            actor=Actor.from_request(request, user=token.user, token=token),
            request=upload,
            principal=principal,
            store=blob_store(),
            now=now,
        )
    except UploadError as error:
        if error.status >= 500:
            log.error("upload failed: %s", error.message)
        if error.status == 429:
            _record_rate_limit(request, error, address, now, token=token)
        else:
            _record_refusal(request, error, token, body)
        return error_response(request, error)
    finally:
        if body is not None:
            body.discard()
    return _Stored(
        "upload %s by %s (token %s): %s",
        outcome.file.filename,
        token.user.username,
        token.pk,
        "stored" if outcome.created else "identical file already present",
    )


class _Stored(HttpResponse):
    """The answer to an upload that was stored (or was there already). Its log line is written
    once the answer is out: the WSGI server closes a response after its last byte, so the
    client (twine uploads one file after another) does not wait for the logging."""

    def __init__(self, message: str, *args: object) -> None:
        super().__init__("", status=200, content_type="text/plain")
        self._log_line: tuple[str, tuple[object, ...]] | None = (message, args)

    def close(self) -> None:
        line, self._log_line = self._log_line, None  # once, however often it is closed
        try:
            if line is not None:
                log.info(line[0], *line[1])
        finally:
            super().close()
