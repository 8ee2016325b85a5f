"""Account views of bastion's own (allauth provides the rest under /account/)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from bastion.actors import Actor
from bastion.audit.services import record_now


def rate_limited(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """allauth's 429 handler: refuse, and record that a rate limit was hit."""
    user = (
        request.user if getattr(request, "user", None) and request.user.is_authenticated else None
    )
    record_now(
        "account.rate-limited",
        actor=Actor.from_request(request, user=user),
        subject_user=user,
        payload={"path": request.path[:200], "method": request.method},
    )
    return HttpResponse(
        "429 Too Many Requests: too many attempts; wait a few minutes and try again.\n",
        status=429,
        content_type="text/plain; charset=utf-8",
    )
