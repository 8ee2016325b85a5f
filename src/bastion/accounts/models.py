"""Accounts: bastion's own user model (custom from the first migration)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A person with an account. The e-mail address is unique (case-insensitively)."""

    email = models.EmailField("email address", unique=True)
    email_verified = models.BooleanField(default=False)

    class Meta:
        db_table = "accounts_user"

    def __str__(self) -> str:
        return self.username
