"""State changes for accounts. Every service takes the acting principal explicitly."""

from __future__ import annotations

from allauth.account.models import EmailAddress
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F

from bastion.accounts.errors import InvalidAccountData, UserExists
from bastion.accounts.models import User
from bastion.actors import Actor
from bastion.audit.services import record


def create_user(
    *,
    actor: Actor,
    username: str,
    email: str,
    password: str | None,
    superuser: bool = False,
    email_verified: bool = False,
    no_limits: bool = False,
) -> User:
    """Create an account. Without a password the account can only use API tokens."""
    try:
        User.username_validator(username)
    except ValidationError as exc:
        raise InvalidAccountData(
            f"invalid username {username!r}: {' '.join(exc.messages)}"
        ) from None
    if not username or len(username) > 150:
        raise InvalidAccountData("username must be 1 to 150 characters long")
    try:
        validate_email(email)
    except ValidationError:
        raise InvalidAccountData(f"invalid e-mail address {email!r}") from None
    email = User.objects.normalize_email(email)
    user = User(
        username=username,
        email=email,
        is_staff=superuser,
        is_superuser=superuser,
        upload_limits_exempt=no_limits,
        email_verified=email_verified,
    )
    if password is not None:
        try:
            password_validation.validate_password(password, user)
        except ValidationError as exc:
            raise InvalidAccountData("password rejected: " + " ".join(exc.messages)) from None
        user.set_password(password)
    else:
        user.set_unusable_password()
    with transaction.atomic():
        if User.objects.filter(username__iexact=username).exists():
            raise UserExists(f"a user named {username!r} already exists")
        if User.objects.filter(email__iexact=email).exists():
            raise UserExists(f"the e-mail address {email!r} is already in use")
        try:
            with transaction.atomic():
                user.save()
                EmailAddress.objects.create(
                    user=user, email=email, primary=True, verified=email_verified
                )
        except IntegrityError:
            raise UserExists(f"a user named {username!r} already exists") from None
        record(
            "account.created",
            actor=actor,
            subject_user=user,
            payload={
                "email": email,
                "superuser": superuser,
                "email_verified": email_verified,
                "no_limits": no_limits,
            },
        )
    return user


def set_user_active(*, actor: Actor, user: User, active: bool, reason: str = "") -> None:
    """Disable (or re-enable) an account. A disabled account's sessions end at their next
    request and its API tokens stop working (``tokens.services.authenticate``)."""
    with transaction.atomic():
        changed = User.objects.filter(pk=user.pk).exclude(is_active=active).update(
            is_active=active, session_epoch=F("session_epoch") + 1
        )
        if changed:
            record(
                "account.enabled" if active else "account.disabled",
                actor=actor,
                subject_user=user,
                payload={"reason": reason[:500]},
            )
    user.refresh_from_db(fields=["is_active", "session_epoch"])


def set_upload_limits_exempt(*, actor: Actor, user: User, exempt: bool) -> None:
    """Exempt a user (an operator, a trusted CI account) from the upload API's limits."""
    with transaction.atomic():
        changed = (
            User.objects.filter(pk=user.pk)
            .exclude(upload_limits_exempt=exempt)
            .update(upload_limits_exempt=exempt)
        )
        if changed:
            record(
                "account.limits.exempted" if exempt else "account.limits.restored",
                actor=actor,
                subject_user=user,
            )
    user.refresh_from_db(fields=["upload_limits_exempt"])
