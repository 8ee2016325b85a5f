"""Site-wide account policy: the second-factor requirement (BASTION_REQUIRE_2FA)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase, HttpResponseRedirect
from django.middleware.locale import LocaleMiddleware
from django.utils import translation

SETUP_URL = "/account/2fa/"
# Machine endpoints: no session, no language, one representation for every client.
API_PREFIXES = ("/simple", "/files/", "/pypi/", "/legacy", "/healthz", "/tuf/", "/_/", "/static/")

# What a signed-in user without a second factor may still reach: the second-factor set-up
# (allauth's /account/2fa/... and the reauthentication it asks for first), e-mail verification
# (needed before a factor can be added), sign-out, and the machine endpoints.
_ALLOWED_PREFIXES = (
    "/account/2fa/",
    "/account/reauthenticate/",
    "/account/email/",
    "/account/confirm-email/",
    "/account/logout/",
    "/i18n/",
    *API_PREFIXES,
)


def needs_second_factor(user: object) -> bool:
    """True for a signed-in user who has neither a TOTP app nor a security key yet."""
    from allauth.mfa.models import Authenticator

    from bastion.accounts.mfa import SECOND_FACTORS

    if not getattr(user, "is_authenticated", False):
        return False
    return not Authenticator.objects.filter(
        user_id=user.pk,  # type: ignore[attr-defined]
        type__in=SECOND_FACTORS,
    ).exists()


class PageLocaleMiddleware(LocaleMiddleware):
    """Django's LocaleMiddleware for pages only: API answers stay in one language and carry no
    ``Vary: Accept-Language`` (which would split every shared cache of the simple API)."""

    def process_request(self, request: HttpRequest) -> None:
        if request.path_info.startswith(API_PREFIXES):
            translation.activate(settings.LANGUAGE_CODE)
            request.LANGUAGE_CODE = settings.LANGUAGE_CODE  # type: ignore[attr-defined]
            return
        super().process_request(request)

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if request.path_info.startswith(API_PREFIXES):
            return response
        return super().process_response(request, response)  # type: ignore[no-any-return]


class RequireSecondFactorMiddleware:
    """BASTION_REQUIRE_2FA: every other page redirects to the second-factor set-up."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if (
            settings.BASTION.require_2fa
            and not request.path_info.startswith(_ALLOWED_PREFIXES)
            and needs_second_factor(getattr(request, "user", None))
        ):
            return HttpResponseRedirect(SETUP_URL)
        return self.get_response(request)
