"""TOTP in a real browser: enrolment from the secret shown, sign-in, and burnt time steps.

Every TOTP time step the server accepts is burnt for the user (issue 9): the enrolment code is
not accepted again at sign-in, nor is a sign-in code accepted a second time. The test waits once
for the next 30-second step (an authenticator app shows no new code before then).
"""

from __future__ import annotations

from tests.browser._flows import (
    Account,
    assert_refused_at_second_step,
    assert_signed_in,
    enrol_totp,
    second_step_code,
    sign_in,
)
from tests.browser._support import (
    MFA_AUTHENTICATE,
    MFA_INDEX,
    Browser,
    Site,
    totp_code,
    wait_for_step_after,
)


def test_totp_enrolment_sign_in_and_replays(browser: Browser, site: Site) -> None:
    account = Account(*site.create_user("totp"))
    sign_in(browser, account)
    assert browser.path == MFA_INDEX, f"no 2FA set-up after sign-in; {browser.describe()}"
    browser.audit("2FA index")

    enrol_totp(browser, account)
    assert len(account.recovery_codes) >= 8, account.recovery_codes
    assert len(set(account.recovery_codes)) == len(account.recovery_codes)
    # With a factor, the rest of the site opens.
    assert_signed_in(browser, account)
    browser.go(MFA_INDEX)
    browser.audit("2FA index (enrolled)")
    browser.sign_out()

    # The code that confirmed enrolment is burnt: refused at sign-in, though within the window.
    enrolment_code = totp_code(account.totp_secret, account.last_step)
    sign_in(browser, account)
    assert browser.path == MFA_AUTHENTICATE, f"no second step; {browser.describe()}"
    browser.audit("second step")
    second_step_code(browser, enrolment_code)
    assert_refused_at_second_step(browser, "the enrolment code, replayed at sign-in")

    # The next time step's code signs in.
    step = wait_for_step_after(account.last_step)
    code = totp_code(account.totp_secret, step)
    sign_in(browser, account)
    second_step_code(browser, code)
    assert browser.path != MFA_AUTHENTICATE, (
        f"a fresh TOTP code was refused: {browser.field_errors()}; {browser.describe()}"
    )
    assert_signed_in(browser, account)
    account.last_step = step
    browser.sign_out()

    # The same code again (a replay, possibly on the other worker process): refused.
    sign_in(browser, account)
    second_step_code(browser, code)
    assert_refused_at_second_step(browser, "a TOTP code used once already")
    browser.assert_accessible()
