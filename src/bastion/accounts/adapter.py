"""django-allauth adapter: bastion's policy where it is stricter than allauth's defaults."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest


class AccountAdapter(DefaultAccountAdapter):  # type: ignore[misc]
    def get_client_ip(self, request: HttpRequest) -> str:
        # Behind a proxy, configure the proxy to set REMOTE_ADDR (e.g. gunicorn's
        # forwarded_allow_ips); bastion never trusts X-Forwarded-For on its own.
        return str(request.META.get("REMOTE_ADDR") or "")
