"""Audit events for what django-allauth and django.contrib.auth do (their signals are the hook).

Sign-in, sign-out, sign-up, password and e-mail changes happen inside those libraries; each
handler writes its event in a transaction of its own, right after the library's change.
"""

from __future__ import annotations

from typing import Any

from allauth.account import signals as allauth_signals
from allauth.account.adapter import get_adapter as get_account_adapter
from allauth.mfa import signals as mfa_signals
from allauth.mfa.models import Authenticator
from django.contrib.auth import signals as auth_signals
from django.contrib.auth import update_session_auth_hash
from django.db.models import F
from django.http import HttpRequest

from bastion.accounts.models import User
from bastion.actors import Actor
from bastion.audit.services import record_now


def _signed_in(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    record_now(
        "account.signin.succeeded",
        actor=Actor.from_request(request, user=user),
        subject_user=user,
        payload={"method": _sign_in_method(request), "methods": _methods(request)},
    )


def _methods(request: HttpRequest) -> list[str]:
    """How this session authenticated, in order: password, totp, webauthn, passkey,
    recovery_codes (allauth's authentication records)."""
    records = request.session.get("account_authentication_methods") or []
    methods: list[str] = []
    for entry in records:
        method = str(entry.get("method", ""))
        if method == "mfa":
            method = "passkey" if entry.get("passwordless") else str(entry.get("type", "mfa"))
        if method and method not in methods:
            methods.append(method)
    return methods


def _sign_in_method(request: HttpRequest) -> str:
    methods = _methods(request)
    return methods[-1] if methods else "password"


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


def _factor_payload(authenticator: Authenticator) -> dict[str, Any]:
    payload: dict[str, Any] = {"type": _TYPE_NAMES.get(authenticator.type, authenticator.type)}
    if authenticator.type == Authenticator.Type.WEBAUTHN:
        payload["name"] = str(authenticator.wrap().name)[:100]
        payload["passwordless"] = bool(authenticator.wrap().is_passwordless)
    return payload


_TYPE_NAMES = {
    Authenticator.Type.TOTP: "totp",
    Authenticator.Type.WEBAUTHN: "webauthn",
    Authenticator.Type.RECOVERY_CODES: "recovery_codes",
}


def _record_factor_event(
    kind: str, request: HttpRequest, user: User, payload: dict[str, Any]
) -> None:
    actor = Actor.from_request(request, user=user)
    record_now(kind, actor=actor, subject_user=user, payload=payload)


def _factor_added(
    sender: Any, request: HttpRequest, user: User, authenticator: Authenticator, **kwargs: Any
) -> None:
    _record_factor_event("account.2fa.added", request, user, _factor_payload(authenticator))


def _factor_removed(
    sender: Any, request: HttpRequest, user: User, authenticator: Authenticator, **kwargs: Any
) -> None:
    _record_factor_event("account.2fa.removed", request, user, _factor_payload(authenticator))
    end_other_sessions(request, user)


def _factor_reset(
    sender: Any, request: HttpRequest, user: User, authenticator: Authenticator, **kwargs: Any
) -> None:
    _record_factor_event(
        "account.2fa.recovery-codes.regenerated", request, user, _factor_payload(authenticator)
    )
    end_other_sessions(request, user)


def _factor_used(
    sender: Any,
    request: HttpRequest,
    user: User,
    authenticator: Authenticator,
    reauthenticated: bool = False,
    passwordless: bool = False,
    **kwargs: Any,
) -> None:
    payload = _factor_payload(authenticator)
    payload["reauthentication"] = bool(reauthenticated)
    if authenticator.type == Authenticator.Type.RECOVERY_CODES:
        current = Authenticator.objects.filter(pk=authenticator.pk).first() or authenticator
        remaining = len(current.wrap().get_unused_codes())
        payload["remaining"] = remaining
        _record_factor_event("account.2fa.recovery-code.used", request, user, payload)
        get_account_adapter(request).send_notification_mail(
            "mfa/email/recovery_code_used", user, {"remaining": remaining}
        )
        return
    if reauthenticated:
        _record_factor_event(
            "account.reauthenticated", request, user, {"method": payload["type"]}
        )


def _factor_failed(
    sender: Any,
    request: HttpRequest,
    user: User,
    authenticator: Authenticator,
    reauthentication: bool = False,
    **kwargs: Any,
) -> None:
    payload = _factor_payload(authenticator)
    payload["reauthentication"] = bool(reauthentication)
    _record_factor_event("account.2fa.failed", request, user, payload)


def end_other_sessions(request: HttpRequest, user: User) -> None:
    """Every other session of ``user`` ends; this one (if it is the user's) stays signed in."""
    User.objects.filter(pk=user.pk).update(session_epoch=F("session_epoch") + 1)
    user.refresh_from_db(fields=["session_epoch"])
    if getattr(request, "user", None) is not None and request.user.pk == user.pk:
        update_session_auth_hash(request, user)


def connect() -> None:
    mfa_signals.authenticator_added.connect(_factor_added, dispatch_uid="bastion-2fa-added")
    mfa_signals.authenticator_removed.connect(_factor_removed, dispatch_uid="bastion-2fa-removed")
    mfa_signals.authenticator_reset.connect(_factor_reset, dispatch_uid="bastion-2fa-reset")
    mfa_signals.authenticator_used.connect(_factor_used, dispatch_uid="bastion-2fa-used")
    mfa_signals.authentication_failed.connect(_factor_failed, dispatch_uid="bastion-2fa-failed")
    allauth_signals.user_logged_in.connect(_signed_in, dispatch_uid="bastion-signin")
    auth_signals.user_login_failed.connect(_sign_in_failed, dispatch_uid="bastion-signin-failed")
    auth_signals.user_logged_out.connect(_signed_out, dispatch_uid="bastion-signout")
    allauth_signals.user_signed_up.connect(_signed_up, dispatch_uid="bastion-signup")
    allauth_signals.password_changed.connect(_password_changed, dispatch_uid="bastion-pw-changed")
    allauth_signals.password_reset.connect(_password_reset, dispatch_uid="bastion-pw-reset")
    allauth_signals.email_confirmed.connect(_email_confirmed, dispatch_uid="bastion-email-ok")
    allauth_signals.email_changed.connect(_email_changed, dispatch_uid="bastion-email-changed")
