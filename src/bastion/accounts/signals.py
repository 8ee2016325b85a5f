"""Audit events for what django-allauth and django.contrib.auth do (their signals are the hook).

Sign-in, sign-out, sign-up, password and e-mail changes happen inside those libraries; each
handler writes its event in a transaction of its own, right after the library's change.
"""

from __future__ import annotations

from typing import Any

from allauth.account import signals as allauth_signals
from django.contrib.auth import signals as auth_signals
from django.http import HttpRequest

from bastion.accounts.models import User
from bastion.actors import Actor
from bastion.audit.services import record_now


def _signed_in(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    record_now(
        "account.signin.succeeded",
        actor=Actor.from_request(request, user=user),
        subject_user=user,
        payload={"method": "password"},
    )


def _sign_in_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:  # noqa: E501
    login = str(credentials.get("username") or credentials.get("email") or "")[:150]
    target = (
        User.objects.filter(username__iexact=login).first()
        or User.objects.filter(email__iexact=login).first()
        if login
        else None
    )
    record_now(
        "account.signin.failed",
        actor=Actor.from_request(request, user=None),
        subject_user=target,
        payload={"method": "password", "login": login if target is not None else ""},
    )


def _signed_out(sender: Any, request: HttpRequest, user: User | None, **kwargs: Any) -> None:
    if user is not None:
        record_now(
            "account.signout", actor=Actor.from_request(request, user=user), subject_user=user
        )


def _signed_up(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    record_now(
        "account.created",
        actor=Actor.from_request(request, user=user),
        subject_user=user,
        payload={"email": user.email, "via": "signup"},
    )


def _password_changed(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    record_now(
        "account.password.changed", actor=Actor.from_request(request, user=user), subject_user=user
    )


def _password_reset(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    record_now(
        "account.password.reset", actor=Actor.from_request(request, user=None), subject_user=user
    )


def _email_confirmed(sender: Any, request: HttpRequest, email_address: Any, **kwargs: Any) -> None:
    user = email_address.user
    User.objects.filter(pk=user.pk, email__iexact=email_address.email).update(email_verified=True)
    record_now(
        "account.email.verified",
        actor=Actor.from_request(request, user=user),
        subject_user=user,
        payload={"email": email_address.email},
    )


def _email_changed(
    sender: Any,
    request: HttpRequest,
    user: User,
    from_email_address: Any,
    to_email_address: Any,
    **kwargs: Any,
) -> None:  # noqa: E501
    record_now(
        "account.email.changed",
        actor=Actor.from_request(request, user=user),
        subject_user=user,
        payload={
            "from": getattr(from_email_address, "email", None),
            "to": getattr(to_email_address, "email", None),
        },
    )


def connect() -> None:
    allauth_signals.user_logged_in.connect(_signed_in, dispatch_uid="bastion-signin")
    auth_signals.user_login_failed.connect(_sign_in_failed, dispatch_uid="bastion-signin-failed")
    auth_signals.user_logged_out.connect(_signed_out, dispatch_uid="bastion-signout")
    allauth_signals.user_signed_up.connect(_signed_up, dispatch_uid="bastion-signup")
    allauth_signals.password_changed.connect(_password_changed, dispatch_uid="bastion-pw-changed")
    allauth_signals.password_reset.connect(_password_reset, dispatch_uid="bastion-pw-reset")
    allauth_signals.email_confirmed.connect(_email_confirmed, dispatch_uid="bastion-email-ok")
    allauth_signals.email_changed.connect(_email_changed, dispatch_uid="bastion-email-changed")
