"""bastion's second-factor policy on top of django-allauth's mfa app (its adapter and forms).

- TOTP secrets (and the recovery-code seed) are stored encrypted: Fernet, with a key derived
  from the server's secret key by HKDF (``encrypt``/``decrypt``).
- A TOTP time step accepted once is never accepted again for that user, whatever the flow:
  enrolment, sign-in, reauthentication. The last accepted step is kept on the user row and
  advanced by one conditional UPDATE, so two concurrent requests cannot both use one code
  (RFC 6238 section 5.2; PyPI refuses only the last code, allauth remembers used codes in a
  per-process cache and not at all at enrolment).
- A security key's signature counter must grow (WebAuthn 6.1.1: a clone is refused).
- The last second factor (TOTP app or security key) cannot be removed while
  BASTION_REQUIRE_2FA is on.
- The WebAuthn relying party and the TOTP issuer come from BASTION_BASE_URL, never from the
  request's Host header (on a loopback base, the loopback name the browser used).
"""

from __future__ import annotations

import base64
import hmac
import time
from typing import Any
from urllib.parse import urlsplit

from allauth.core import context
from allauth.mfa.adapter import DefaultMFAAdapter, get_adapter
from allauth.mfa.base.forms import AuthenticateForm as AllauthAuthenticateForm
from allauth.mfa.base.forms import ReauthenticateForm as AllauthReauthenticateForm
from allauth.mfa.base.internal.flows import check_rate_limit
from allauth.mfa.internal.flows.add import validate_can_add_authenticator
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.forms import ActivateTOTPForm as AllauthActivateTOTPForm
from allauth.mfa.webauthn.forms import AuthenticateWebAuthnForm as _AuthenticateWebAuthnForm
from allauth.mfa.webauthn.forms import LoginWebAuthnForm as _LoginWebAuthnForm
from allauth.mfa.webauthn.forms import (
    ReauthenticateWebAuthnForm as _ReauthenticateWebAuthnForm,
)
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.twofactor.hotp import HOTP
from django.conf import settings
from django.db import transaction
from django.http.request import split_domain_port

from bastion.accounts.models import User
from bastion.config import LOOPBACK_HOSTS

TOTP_PERIOD = 30
TOTP_DIGITS = 6
TOTP_TOLERANCE = 1  # steps either side of the current one
SECOND_FACTORS = (Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN)
_ENCRYPTED_PREFIX = "fernet:"


# --- secrets at rest --------------------------------------------------------------------------


def _fernet() -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"bastion mfa secrets v1"
    ).derive(settings.SECRET_KEY.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_secret(text: str) -> str:
    return _ENCRYPTED_PREFIX + _fernet().encrypt(text.encode()).decode()


def decrypt_secret(stored: str) -> str:
    if not stored.startswith(_ENCRYPTED_PREFIX):
        raise ValueError("a second-factor secret is stored unencrypted")
    try:
        return _fernet().decrypt(stored[len(_ENCRYPTED_PREFIX) :].encode()).decode()
    except InvalidToken:
        raise ValueError(
            "a second-factor secret cannot be decrypted: was BASTION_SECRET_KEY changed?"
        ) from None


# --- TOTP time steps --------------------------------------------------------------------------


def current_step(now: float) -> int:
    return int(now) // TOTP_PERIOD


def matching_step(secret: str, code: str, *, now: float) -> int | None:
    """The time step within the tolerance whose code is ``code`` (constant-time compare)."""
    candidate = "".join(code.split())
    if len(candidate) != TOTP_DIGITS or not candidate.isdigit():
        return None
    hotp = HOTP(base64.b32decode(secret.encode(), casefold=True), TOTP_DIGITS, hashes.SHA1())
    found = None
    step = current_step(now)
    for offset in range(-TOTP_TOLERANCE, TOTP_TOLERANCE + 1):
        if hmac.compare_digest(hotp.generate(step + offset), candidate.encode()):
            found = step + offset
    return found


def burn_step(user: User, step: int) -> bool:
    """Record ``step`` as used for ``user``; False if it (or a later one) was used already.

    One conditional UPDATE: of two concurrent requests with the same code, one wins.
    """
    return User.objects.filter(pk=user.pk, totp_last_step__lt=step).update(
        totp_last_step=step
    ) == 1


# --- allauth's adapter ------------------------------------------------------------------------


class MFAAdapter(DefaultMFAAdapter):  # type: ignore[misc]
    def encrypt(self, text: str) -> str:
        return encrypt_secret(text)

    def decrypt(self, encrypted_text: str) -> str:
        return decrypt_secret(encrypted_text)

    def _get_site_name(self) -> str:
        return str(urlsplit(settings.BASTION.base_url).netloc)

    def get_totp_issuer(self) -> str:
        return f"bastion ({self._get_site_name()})"

    def get_public_key_credential_rp_entity(self) -> dict[str, str]:
        return {"id": relying_party_id(), "name": f"bastion ({self._get_site_name()})"}

    def can_delete_authenticator(self, authenticator: Authenticator) -> bool:
        if not settings.BASTION.require_2fa or authenticator.type not in SECOND_FACTORS:
            return True
        others = Authenticator.objects.filter(
            user_id=authenticator.user_id, type__in=SECOND_FACTORS
        ).exclude(pk=authenticator.pk)
        return bool(others.exists())


def relying_party_id() -> str:
    """The WebAuthn RP ID: the base URL's host. On a loopback base, the loopback name the
    browser used (already checked against ALLOWED_HOSTS), so development works on localhost."""
    base_host = (urlsplit(settings.BASTION.base_url).hostname or "").lower()
    request = context.request
    if base_host in _LOOPBACK and request is not None:
        host, _port = split_domain_port(request.get_host())
        if host.strip("[]") in _LOOPBACK:
            return host.strip("[]")
    return base_host


_LOOPBACK = frozenset(name.strip("[]") for name in LOOPBACK_HOSTS)


# --- forms: every accepted TOTP step is burnt -------------------------------------------------


class _BurnsTimeSteps:
    """``clean_code`` for the second step and reauthentication.

    A TOTP code is checked here (never by allauth's cache-based check) and its step burnt;
    anything else is tried as a recovery code, each usable once (under a row lock).
    """

    user: User
    cleaned_data: dict[str, Any]
    authenticator: Authenticator

    def clean_code(self) -> str:
        code = self.cleaned_data["code"]
        clear_rate_limit = check_rate_limit(self.user)
        totp = Authenticator.objects.filter(
            user_id=self.user.pk, type=Authenticator.Type.TOTP
        ).first()
        if totp is not None:
            step = matching_step(decrypt_secret(totp.data["secret"]), code, now=time.time())
            if step is not None:
                if not burn_step(self.user, step):
                    self._emit_authentication_failed(totp)  # type: ignore[attr-defined]
                    raise get_adapter().validation_error("incorrect_code")
                totp.user = self.user
                self.authenticator = totp
                clear_rate_limit()
                return str(code)
        recovery = _use_recovery_code(self.user, code)
        if recovery is not None:
            self.authenticator = recovery
            clear_rate_limit()
            return str(code)
        main = totp or Authenticator.objects.filter(user_id=self.user.pk).first()
        if main is not None:
            self._emit_authentication_failed(main)  # type: ignore[attr-defined]
        raise get_adapter().validation_error("incorrect_code")


def _use_recovery_code(user: User, code: str) -> Authenticator | None:
    with transaction.atomic():
        found = (
            Authenticator.objects.select_for_update()
            .filter(user_id=user.pk, type=Authenticator.Type.RECOVERY_CODES)
            .first()
        )
        if found is None or not found.wrap().validate_code(code):
            return None
    found.user = user
    return found


class AuthenticateForm(_BurnsTimeSteps, AllauthAuthenticateForm):  # type: ignore[misc]
    pass


class ReauthenticateForm(_BurnsTimeSteps, AllauthReauthenticateForm):  # type: ignore[misc]
    pass


class ActivateTOTPForm(AllauthActivateTOTPForm):  # type: ignore[misc]
    """Enrolment completes only with a valid code for the secret shown, and burns its step."""

    def clean_code(self) -> str:
        validate_can_add_authenticator(self.user)
        clear_rate_limit = check_rate_limit(self.user, error_key="rate_limited")
        code = self.cleaned_data["code"]
        step = matching_step(self.secret, code, now=time.time())
        if step is None or not burn_step(self.user, step):
            raise get_adapter().validation_error("incorrect_code")
        clear_rate_limit()
        return str(code)


# --- WebAuthn: the signature counter ---------------------------------------------------------


def check_sign_count(authenticator: Authenticator, credential: dict[str, Any]) -> None:
    """WebAuthn section 6.1.1: a counter that does not grow means a cloned authenticator.

    The last counter is kept in the authenticator's data and advanced under a row lock.
    Authenticators that never count (always 0, as passkeys synced between devices do) pass.
    """
    from allauth.mfa.webauthn.internal import auth as webauthn_auth

    response = webauthn_auth.parse_authentication_response(credential)
    new = int(response.response.authenticator_data.counter)
    with transaction.atomic():
        row = Authenticator.objects.select_for_update().get(pk=authenticator.pk)
        stored = int(row.data.get("sign_count", 0))
        if (new or stored) and new <= stored:
            raise get_adapter().validation_error("incorrect_code")
        if new != stored:
            row.data["sign_count"] = new
            row.save(update_fields=["data"])
    authenticator.data["sign_count"] = new


class _ChecksSignCount:
    cleaned_data: dict[str, Any]

    def clean_credential(self) -> Authenticator:
        credential = self.cleaned_data["credential"]
        authenticator: Authenticator = super().clean_credential()  # type: ignore[misc]
        check_sign_count(authenticator, credential)
        return authenticator


class AuthenticateWebAuthnForm(_ChecksSignCount, _AuthenticateWebAuthnForm):  # type: ignore[misc]
    pass


class LoginWebAuthnForm(_ChecksSignCount, _LoginWebAuthnForm):  # type: ignore[misc]
    pass


class ReauthenticateWebAuthnForm(  # type: ignore[misc]
    _ChecksSignCount, _ReauthenticateWebAuthnForm
):
    pass
