"""Recovery codes in a real browser: each signs in once, then never again."""

from __future__ import annotations

from tests.browser._flows import (
    Account,
    assert_refused_at_second_step,
    assert_signed_in,
    enrol_totp,
    reauthenticate_if_asked,
    second_step_code,
    sign_in,
)
from tests.browser._support import MFA_AUTHENTICATE, RECOVERY_CODES, Browser, Site, mail_to


def test_recovery_code_signs_in_once(browser: Browser, site: Site) -> None:
    account = Account(*site.create_user("recovery"))
    sign_in(browser, account)
    enrol_totp(browser, account)
    first, second = account.recovery_codes[0], account.recovery_codes[1]
    browser.sign_out()

    sign_in(browser, account)
    second_step_code(browser, first)
    assert browser.path != MFA_AUTHENTICATE, (
        f"a recovery code was refused: {browser.field_errors()}; {browser.describe()}"
    )
    assert_signed_in(browser, account)
    # The overview now counts one code fewer, and the used one is no longer listed.
    browser.go(RECOVERY_CODES)
    reauthenticate_if_asked(browser, account)  # viewing them needs the password again
    if browser.path != RECOVERY_CODES:
        browser.go(RECOVERY_CODES)
    browser.audit("recovery codes (one used)")
    total = len(account.recovery_codes)
    assert f"{total - 1} of {total}" in browser.text, browser.describe()
    assert first not in browser.text, f"the used code is still shown; {browser.describe()}"
    # Its owner is told by mail (issue 9, notifications).
    subjects = [str(m.get("Subject", "")) for m in mail_to(site.outbox, account.email)]
    assert any("recovery code" in s.lower() for s in subjects), subjects
    browser.sign_out()

    # Used once: refused the second time.
    sign_in(browser, account)
    second_step_code(browser, first)
    assert_refused_at_second_step(browser, "a recovery code used once already")

    # Another unused code still works.
    sign_in(browser, account)
    second_step_code(browser, second)
    assert browser.path != MFA_AUTHENTICATE, (
        f"an unused recovery code was refused: {browser.field_errors()}; {browser.describe()}"
    )
    assert_signed_in(browser, account)
    browser.assert_accessible()
