"""API tokens in the web interface (``/account/tokens/``) and leaked-token reports
(``POST /_/token-leak/``).

Creating a token needs a second factor (whatever BASTION_REQUIRE_2FA says) and a recent
reauthentication (django-allauth's, ACCOUNT_REAUTHENTICATION_TIMEOUT). The token is shown once,
in the answer to the POST that made it, which no cache may keep; it is never stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any
from uuid import UUID

from allauth.account.adapter import get_adapter
from allauth.account.decorators import reauthentication_required
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers, patch_cache_control
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from bastion.accounts.middleware import SETUP_URL, needs_second_factor
from bastion.accounts.models import User
from bastion.actors import Actor
from bastion.tokens import leak_reports, queries, services
from bastion.tokens.errors import (
    InvalidTokenRequest,
    LeakReportTooLarge,
    MalformedLeakReport,
    TokenNameInUse,
    TokenServiceError,
)
from bastion.tokens.forms import TokenForm
from bastion.tokens.models import ApiToken

LIST_URL = "/account/tokens/"
View = Callable[..., HttpResponse]


def _signed_in_user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # every view here is behind login_required
    return user


def second_factor_required(view: View) -> View:
    """Token creation needs a second factor even where the site does not require one."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if needs_second_factor(request.user):
            messages.error(
                request, _("Add a second factor to your account before creating an API token.")
            )
            return HttpResponseRedirect(SETUP_URL)
        return view(request, *args, **kwargs)

    return wrapper


def _no_store(response: HttpResponse) -> HttpResponse:
    add_never_cache_headers(response)
    patch_cache_control(response, no_store=True, private=True)
    return response


@login_required
@require_GET
def token_list(request: HttpRequest) -> HttpResponse:
    user = _signed_in_user(request)
    context = {
        "tokens": list(queries.tokens_of(user)),
        "now": timezone.now(),
        "can_create": not needs_second_factor(user),
    }
    return _no_store(render(request, "tokens/list.html", context))


@login_required
@require_http_methods(["GET", "POST"])
@second_factor_required
@reauthentication_required
def token_create(request: HttpRequest) -> HttpResponse:
    user = _signed_in_user(request)
    now = timezone.now()
    form = TokenForm(
        request.POST if request.method == "POST" else None,
        project_choices=queries.scopable_projects(user),
        today=now.date(),
    )
    if request.method == "POST" and form.is_valid():
        created = _create(request, form, user=user, now=now)
        if created is not None:
            token, secret = created
            _mail_created(request, token)
            return _no_store(render(request, "tokens/created.html", _shown_once(token, secret)))
    return _no_store(render(request, "tokens/new.html", {"form": form}))


def _create(
    request: HttpRequest, form: TokenForm, *, user: User, now: datetime
) -> tuple[ApiToken, str] | None:
    """Mint the token the form describes; None (with the reason on the form) if refused."""
    expires_at = form.expires_at()
    try:
        return services.create_token(
            actor=Actor.from_request(request, user=user),
            user=user,
            name=form.cleaned_data["name"],
            project_names=form.cleaned_data["projects"],
            expires_in=expires_at - now if expires_at is not None else None,
            now=now,
        )
    except TokenNameInUse:
        form.add_error("name", _("You already have a token with this name."))
    except InvalidTokenRequest as error:
        form.add_error(None, error.message)
    return None


def _shown_once(token: ApiToken, secret: str) -> dict[str, Any]:
    base = settings.BASTION.base_url.rstrip("/")
    return {"token": token, "secret": secret, "upload_url": f"{base}/legacy/"}


def _mail_created(request: HttpRequest, token: ApiToken) -> None:
    """Tell the owner a token was made (its name, scope and expiry; never the token)."""
    get_adapter(request).send_notification_mail(
        "tokens/email/token_created",
        token.user,
        {
            "token_name": token.name,
            "projects": list(token.project_names),
            "expires": token.expires,
            "tokens_url": settings.BASTION.base_url.rstrip("/") + LIST_URL,
        },
    )


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: UUID) -> HttpResponse:
    user = _signed_in_user(request)
    token = queries.token_of(user, token_id)
    if token is None:
        raise Http404("no such token")
    services.revoke_token(
        actor=Actor.from_request(request, user=user), token=token, now=timezone.now()
    )
    messages.success(request, _("The token “%(name)s” was revoked.") % {"name": token.name})
    return HttpResponseRedirect(LIST_URL)


# --- leaked-token reports ---------------------------------------------------------------------


def _problem(status: int, error: TokenServiceError | None, message: str) -> HttpResponse:
    """An API error: the one-line reason on the status line and ``{code, message}`` as JSON."""
    code = error.code if error is not None else "token.leak-report.unauthorized"
    response = HttpResponse(
        json.dumps({"code": code, "message": message}),
        status=status,
        content_type="application/json",
    )
    response.reason_phrase = message
    return response


@csrf_exempt
def token_leak(request: HttpRequest) -> HttpResponse:
    """Revoke every genuine token of the report and tell its owner. Always 204 once authorized:
    the answer never says whether a token matched."""
    secret = settings.BASTION.leak_report_secret
    if not secret:
        raise Http404("no such page")  # not configured: as if the endpoint did not exist
    if request.method != "POST":
        return HttpResponse(status=405, headers={"Allow": "POST"})
    if not leak_reports.bearer_matches(
        request.headers.get("Authorization"), expected_secret=secret
    ):
        response = _problem(401, None, "a valid bearer secret is required")
        response["WWW-Authenticate"] = 'Bearer realm="bastion token-leak"'
        return response
    try:
        leak_reports.check_declared_length(request.META.get("CONTENT_LENGTH"))
        reports = leak_reports.parse_leak_report(request.read(leak_reports.MAX_BODY_BYTES + 1))
    except LeakReportTooLarge as error:
        return _problem(413, error, error.message)
    except MalformedLeakReport as error:
        return _problem(400, error, error.message)
    actor = Actor.from_request(request, user=None)
    now = timezone.now()
    for report in reports:
        revoked = services.revoke_leaked_token(actor=actor, report=report, now=now)
        if revoked is not None:
            _mail_leaked(request, revoked, report)
    return HttpResponse(status=204)


def _mail_leaked(request: HttpRequest, token: ApiToken, report: services.LeakReport) -> None:
    # Not "*_url": the account adapter moves every such URL onto BASTION_BASE_URL.
    get_adapter(request).send_notification_mail(
        "tokens/email/token_leaked",
        token.user,
        {
            "token_name": token.name,
            "public_location": report.url[: services.MAX_REPORTED_URL],
            "source": report.source[: services.MAX_REPORTED_LABEL],
            "tokens_url": settings.BASTION.base_url.rstrip("/") + LIST_URL,
        },
    )
