"""Who is acting: passed explicitly to every service that changes state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bastion.clients import client_address

if TYPE_CHECKING:
    from django.http import HttpRequest

    from bastion.accounts.models import User
    from bastion.tokens.models import ApiToken


@dataclass(frozen=True)
class Actor:
    """The principal behind a change: a user (optionally via an API token), or the operator.

    ``ip_address`` and ``user_agent`` describe the request; the operator's command-line actions
    carry neither.
    """

    user: User | None
    token: ApiToken | None = None
    ip_address: str | None = None
    user_agent: str = ""
    via: str = "web"  # "web", "token", "cli"

    @classmethod
    def operator(cls) -> Actor:
        return cls(user=None, via="cli")

    @classmethod
    def from_request(
        cls, request: HttpRequest | None, *, user: User | None, token: ApiToken | None = None
    ) -> Actor:
        """The principal of a web request: the client's address and user agent, and whether
        it authenticated with an API token (``via="token"``) or a session (``"web"``)."""
        via = "token" if token is not None else "web"
        if request is None:
            return cls(user=user, token=token, via=via)
        return cls(
            user=user,
            token=token,
            ip_address=client_address(request.META),
            user_agent=request.headers.get("User-Agent", "")[:500],
            via=via,
        )

    @property
    def label(self) -> str:
        if self.user is None:
            return "operator"
        return self.user.username
