"""Sign-up, e-mail verification and the enforced second-factor set-up, in a real browser."""

from __future__ import annotations

from tests.browser._flows import sign_in, sign_up
from tests.browser._support import LOGIN, MFA_INDEX, SIGNUP, Browser, Site, mail_to


def test_sign_up_verify_and_second_factor_required(browser: Browser, site: Site) -> None:
    browser.go(LOGIN)
    browser.audit("login")
    # Passkey sign-in is an operator option, off by default.
    assert not browser.exists("#passkey_login"), f"passkey button shown; {browser.describe()}"

    account = sign_up(browser, site.outbox)  # the link is on BASTION_BASE_URL's origin
    assert len(mail_to(site.outbox, account.email)) == 1

    # Whether or not confirming signed us in, a password sign-in ends at the 2FA set-up.
    browser.go("/")
    if browser.path != MFA_INDEX:
        sign_in(browser, account)
    assert browser.path == MFA_INDEX, (
        f"BASTION_REQUIRE_2FA: a user without a second factor must land on {MFA_INDEX}; "
        f"{browser.describe()}"
    )
    browser.audit("2FA index")
    # Every other page sends them back there.
    for path in ("/", "/account/tokens/", "/manage/projects/"):
        browser.go(path)
        assert browser.path == MFA_INDEX, f"{path} reachable without 2FA; {browser.describe()}"
    # The set-up page offers both kinds of factor.
    links = {a.get_attribute("href") for a in browser.find_all("main a")}
    assert any(h and h.endswith("/account/2fa/totp/activate/") for h in links), links
    assert any(h and "/account/2fa/webauthn/" in h for h in links), links

    # A second sign-up with the same address does not create a second account, and says nothing
    # that tells the visitor the address is taken (no enumeration).
    browser.sign_out()
    browser.go(SIGNUP)
    browser.fill(
        email=account.email,
        username=account.username + "x",
        password1=account.password,
        password2=account.password,
    )
    browser.submit("password1")
    assert "already" not in browser.text.lower(), f"sign-up enumerates; {browser.describe()}"

    # The unverified sign-in path is closed: the new username cannot sign in.
    browser.sign_in_password(account.username + "x", account.password)
    assert browser.path != MFA_INDEX, f"second account signed in; {browser.describe()}"
    browser.assert_accessible()
