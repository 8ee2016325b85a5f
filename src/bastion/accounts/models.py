"""Accounts: bastion's own user model (custom from the first migration)."""

from __future__ import annotations

from collections.abc import Iterator

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.crypto import salted_hmac


class User(AbstractUser):
    """A person with an account. The e-mail address is unique (case-insensitively)."""

    email = models.EmailField("email address", unique=True)
    email_verified = models.BooleanField(default=False)
    # The last TOTP time step accepted for this user: a step is never accepted twice.
    totp_last_step = models.BigIntegerField(default=0)
    # Part of the session hash: bumped when a second factor is removed or reset, which ends
    # every other session of the user (a password change does the same through the password).
    session_epoch = models.PositiveIntegerField(default=0)
    # Operators and trusted CI users: the upload API's limits (new projects, uploads) skip them.
    upload_limits_exempt = models.BooleanField(default=False)

    class Meta:
        db_table = "accounts_user"

    def __str__(self) -> str:
        return self.username

    def get_session_auth_hash(self) -> str:
        return self._session_hash(secret=None)

    def get_session_auth_fallback_hash(self) -> Iterator[str]:
        for fallback in settings.SECRET_KEY_FALLBACKS:
            yield self._session_hash(secret=fallback)

    def _session_hash(self, *, secret: str | None) -> str:
        # Django's hash covers the password only; the epoch ends sessions on 2FA changes too.
        return salted_hmac(
            "bastion.accounts.User.get_session_auth_hash",
            f"{self.password}:{self.session_epoch}",
            secret=secret,
            algorithm="sha256",
        ).hexdigest()
