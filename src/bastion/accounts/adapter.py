"""django-allauth adapter: bastion's policy where it is stricter than allauth's defaults."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings
from django.http import HttpRequest


def canonical_url(url: str) -> str:
    """``url`` moved onto BASTION_BASE_URL's origin.

    Links in e-mails (password reset, address confirmation) are built from the configured
    public origin, never from the request's Host header, which a client controls: otherwise a
    reset requested with ``Host: attacker.example`` would mail the victim a link to the attacker.
    """
    base = urlsplit(settings.BASTION.base_url)
    parts = urlsplit(url)
    path = base.path.rstrip("/") + parts.path
    return urlunsplit((base.scheme, base.netloc, path, parts.query, parts.fragment))


class _Site:
    """What allauth's mail templates read from ``get_current_site`` (else the request's Host)."""

    def __init__(self, domain: str) -> None:
        self.domain = self.name = domain


def _base_site() -> _Site:
    return _Site(urlsplit(settings.BASTION.base_url).netloc)


class AccountAdapter(DefaultAccountAdapter):  # type: ignore[misc]
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # BASTION_ALLOW_SIGNUP=false: accounts come only from `bastion user create`.
        return bool(settings.BASTION.allow_signup)

    def validation_error(self, code: str, *args: Any) -> Any:
        # allauth reports a full per-account limit (wrong passwords, wrong second-factor codes)
        # as a form error on a 200 page; bastion answers every limit with 429 and Retry-After.
        if code in ("too_many_login_attempts", "rate_limited"):
            from allauth.core import context

            from bastion.accounts.views import refuse_too_many_attempts

            request = getattr(self, "request", None) or context.request
            if request is not None:
                refuse_too_many_attempts(request)
        return super().validation_error(code, *args)

    def _get_login_attempts_cache_key(self, request: HttpRequest, **credentials: Any) -> str:
        # allauth keys the per-account counter with the request's "host:port"; any port passes
        # ALLOWED_HOSTS, so a client could multiply an account's allowance by changing it.
        login = str(credentials.get("email", credentials.get("username", ""))).lower()
        return f"{_base_site().domain}:{login}"

    def get_client_ip(self, request: HttpRequest) -> str:
        # X-Forwarded-For only from BASTION_TRUSTED_PROXIES (bastion.clients).
        from bastion.clients import client_address

        return client_address(request.META) or ""

    def get_reset_password_from_key_url(self, key: str) -> str:
        return canonical_url(str(super().get_reset_password_from_key_url(key)))

    def get_email_confirmation_url(self, request: HttpRequest, emailconfirmation: Any) -> str:
        return canonical_url(str(super().get_email_confirmation_url(request, emailconfirmation)))

    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        # Some links allauth builds itself from the request (``signup_url`` and
        # ``password_reset_url`` in the unknown-account and account-exists mails), and the site
        # name comes from the Host header: all moved onto BASTION_BASE_URL too.
        context = {
            key: canonical_url(value)
            if key.endswith("_url") and isinstance(value, str) and "://" in value
            else value
            for key, value in context.items()
        }
        context["current_site"] = _base_site()
        super().send_mail(template_prefix, email, context)

    def format_email_subject(self, subject: str) -> str:
        if getattr(settings, "ACCOUNT_EMAIL_SUBJECT_PREFIX", None) is None:
            return f"[{_base_site().name}] {subject}"
        return str(super().format_email_subject(subject))
