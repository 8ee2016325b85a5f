"""Who is acting: passed explicitly to every service that changes state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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

    @property
    def label(self) -> str:
        if self.user is None:
            return "operator"
        return self.user.username
