"""Account views of bastion's own (allauth provides the rest under /account/)."""

from __future__ import annotations

import hashlib
import math
from typing import NoReturn

from allauth.core.exceptions import ImmediateHttpResponse
from allauth.core.internal.ratelimit import get_rates
from allauth.core.ratelimit import respond_429
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.template.exceptions import TemplateDoesNotExist
from django.template.loader import render_to_string
from django.utils.translation import ngettext

from bastion.actors import Actor
from bastion.audit.services import record_now

# Retry-After when the view's limits are unknown: the longest window bastion configures by default.
DEFAULT_RETRY_AFTER = 300

# Which allauth rate limits (app, action) guard each view, by URL name: the longest of their
# windows is the Retry-After. allauth tells the 429 handler only the request, not the limit hit,
# so the answer is conservative: after that long, every limit of the view has room again.
_VIEW_LIMITS: dict[str, tuple[tuple[str, str], ...]] = {
    "account_login": (("allauth.account", "login"), ("allauth.account", "login_failed")),
    "mfa_authenticate": (("allauth.account", "login_failed"),),  # wrong codes, per user and IP
    "mfa_reauthenticate": (("allauth.account", "login_failed"),),
    "mfa_login_webauthn": (("allauth.mfa", "webauthn_login"),),
    "account_signup": (("allauth.account", "signup"),),
    "account_reset_password": (("allauth.account", "reset_password"),),
    "account_reset_password_from_key": (("allauth.account", "reset_password_from_key"),),
    "account_reauthenticate": (
        ("allauth.account", "reauthenticate"),
        ("allauth.account", "login_failed"),
    ),
    "account_change_password": (("allauth.account", "change_password"),),
    "account_set_password": (("allauth.account", "change_password"),),
    "account_email": (("allauth.account", "manage_email"),),
    "account_email_verification_sent": (("allauth.account", "confirm_email"),),
}


def retry_after(request: HttpRequest) -> int:
    """Seconds until every rate limit guarding ``request``'s view has room again."""
    match = getattr(request, "resolver_match", None)
    limits = _VIEW_LIMITS.get(match.url_name or "", ()) if match is not None else ()
    windows = [
        rate.duration for app, action in limits for rate in get_rates(app=app, action=action)
    ]
    return math.ceil(max(windows)) if windows else DEFAULT_RETRY_AFTER


def _path_without_secrets(request: HttpRequest) -> str:
    """``request.path`` with a reset or confirmation key in it replaced by ``<key>``: the
    audit trail never holds a secret."""
    path = request.path
    match = getattr(request, "resolver_match", None)
    key = match.kwargs.get("key") if match is not None else None
    if key:
        path = path.replace(key, "<key>")
    return path[:200]


def _first_refusal_in_window(request: HttpRequest, window: int) -> bool:
    """True once per client address and path per ``window``: a flood of refused requests
    leaves one audit event, not one each. Kept in the shared cache, like the limits."""
    source = f"{request.META.get('REMOTE_ADDR') or ''}\n{_path_without_secrets(request)}"
    key = "bastion:rate-limited:" + hashlib.sha256(source.encode()).hexdigest()
    return bool(cache.add(key, True, timeout=window))


def rate_limited(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """allauth's 429 handler (``handler429``): refuse with ``Retry-After``, and record that a
    rate limit was hit (``account.rate-limited``), at most once per address, path and window."""
    seconds = retry_after(request)
    if _first_refusal_in_window(request, seconds):
        user = getattr(request, "user", None)
        user = user if user is not None and user.is_authenticated else None
        record_now(
            "account.rate-limited",
            actor=Actor.from_request(request, user=user),
            subject_user=user,
            payload={"path": _path_without_secrets(request), "method": request.method},
        )
    try:
        response = HttpResponse(
            render_to_string("429.html", {"retry_after": seconds}, request=request),
            status=429,
        )
    except TemplateDoesNotExist:
        minutes = max(1, math.ceil(seconds / 60))
        message = ngettext(
            "429 Too Many Requests: too many attempts; try again in %(minutes)d minute.",
            "429 Too Many Requests: too many attempts; try again in %(minutes)d minutes.",
            minutes,
        )
        response = HttpResponse(
            message % {"minutes": minutes} + "\n",
            status=429,
            content_type="text/plain; charset=utf-8",
        )
    response["Retry-After"] = str(seconds)
    return response


def refuse_too_many_attempts(request: HttpRequest) -> NoReturn:
    """Answer ``request`` with the 429 above from inside a form's validation.

    allauth reports a full per-account limit (wrong passwords, wrong second-factor codes) as a
    form error ("too_many_login_attempts") on a 200 page; bastion's account adapter calls this
    instead, so every limit answers 429 with ``Retry-After``. allauth's AccountMiddleware turns
    the exception into the response.
    """
    raise ImmediateHttpResponse(respond_429(request))


def admin_login(request: HttpRequest, extra_context: object = None) -> HttpResponse:
    """The Django admin's sign-in, replaced: everyone signs in through /account/login/ and its
    second step. (Django's own admin form would sign a superuser in with a password alone.)"""
    from django.contrib.auth.views import redirect_to_login
    from django.http import HttpResponseForbidden

    if request.user.is_authenticated:
        return HttpResponseForbidden(
            "403 Forbidden: the admin is for operators (superusers) only.\n",
            content_type="text/plain; charset=utf-8",
        )
    return redirect_to_login(request.GET.get("next") or "/admin/", "/account/login/")
