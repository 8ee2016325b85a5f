"""Security keys and passkeys in a real browser, with Chromium's virtual authenticator.

The authenticator is added through the DevTools protocol (``WebAuthn.addVirtualAuthenticator``);
it answers ``navigator.credentials.create()`` and ``.get()`` as a real key would, user presence
and verification included. The browser is on ``http://localhost`` (a secure context, RP id
``localhost``), which is also the server's BASTION_BASE_URL.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.browser._flows import (
    Account,
    add_security_key,
    assert_signed_in,
    reauthenticate_if_asked,
    sign_in,
)
from tests.browser._support import (
    LOGIN,
    MFA_AUTHENTICATE,
    MFA_INDEX,
    WEBAUTHN_LIST,
    Browser,
    Site,
    mail_to,
)


def test_security_key_second_step(browser: Browser, site: Site) -> None:
    key = browser.add_virtual_authenticator("usb")
    account = Account(*site.create_user("key"))
    sign_in(browser, account)
    assert browser.path == MFA_INDEX, browser.describe()

    add_security_key(browser, account, name="Virtual key")
    (credential,) = browser.credentials(key)
    assert credential["rpId"] == "localhost", credential
    assert not credential["isResidentCredential"], "a security key, not a passkey, was asked for"
    # The first factor also makes the recovery codes; the key is listed by its label.
    browser.go(MFA_INDEX)
    browser.audit("2FA index (security key)")
    browser.go(WEBAUTHN_LIST)
    reauthenticate_if_asked(browser, account)
    if browser.path != WEBAUTHN_LIST:
        browser.go(WEBAUTHN_LIST)
    browser.audit("security keys")
    assert "Virtual key" in browser.text, f"the key's label is not listed; {browser.describe()}"
    subjects = [str(m.get("Subject", "")).lower() for m in mail_to(site.outbox, account.email)]
    assert any("key" in s or "factor" in s or "security" in s for s in subjects), subjects
    browser.sign_out()

    # Password, then the key.
    sign_in(browser, account)
    assert browser.path == MFA_AUTHENTICATE, f"no second step; {browser.describe()}"
    browser.audit("second step (security key)")
    button = browser.find("#mfa_webauthn_authenticate")
    browser.navigates(button.click, timeout=20)
    assert browser.path != MFA_AUTHENTICATE, (
        f"the security key was refused: {browser.field_errors()}; {browser.describe()}; "
        f"console: {browser.console_errors()}"
    )
    assert_signed_in(browser, account)
    (used,) = browser.credentials(key)
    assert used["signCount"] > credential["signCount"], (credential, used)
    browser.assert_accessible()


def test_passkey_sign_in(open_browser: Callable[[Site], Browser], passkey_site: Site) -> None:
    browser = open_browser(passkey_site)
    platform = browser.add_virtual_authenticator("internal")
    account = Account(*passkey_site.create_user("passkey"))
    sign_in(browser, account)
    assert browser.path == MFA_INDEX, browser.describe()
    add_security_key(browser, account, name="Laptop passkey", passwordless=True)
    (credential,) = browser.credentials(platform)
    assert credential["isResidentCredential"], "a passkey (discoverable credential) was not made"
    assert credential["rpId"] == "localhost", credential
    browser.sign_out()

    # No username, no password: the passkey alone.
    browser.go(LOGIN)
    browser.audit("login (passkeys on)")
    assert browser.exists("#passkey_login"), f"no passkey sign-in button; {browser.describe()}"
    browser.navigates(browser.find("#passkey_login").click, timeout=20)
    assert browser.path not in (LOGIN, MFA_AUTHENTICATE), (
        f"passkey sign-in failed: {browser.field_errors()}; {browser.describe()}; "
        f"console: {browser.console_errors()}"
    )
    assert_signed_in(browser, account)
    browser.assert_accessible()
