"""The main account pages in English and French: language choice, axe-core, screenshots.

French is chosen by the browser's Accept-Language (Chromium's ``intl.accept_languages``) in one
run and by the site's language selector (a POST to /i18n/setlang/) in the other. Every page must
say it is in the language shown (``<html lang>``) and have a French heading of its own.

With BASTION_SCREENSHOTS=1 the pages are also saved as ``docs/screenshots/<lang>-<page>.png``
(linked from the README); ordinary runs write nothing there.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.browser._flows import Account, cancel_second_step, enrol_totp, sign_in
from tests.browser._support import (
    LOGIN,
    MFA_AUTHENTICATE,
    MFA_INDEX,
    Browser,
    Site,
    assert_accessible,
)

PAGES = ("login", "2fa-overview", "totp-activate", "recovery-codes", "second-step")


def _tour(browser: Browser, account: Account) -> dict[str, tuple[str, str]]:
    """Visit the main pages; page name -> (html lang, h1)."""
    seen: dict[str, tuple[str, str]] = {}

    def note(page: str) -> None:
        seen[page] = (browser.html_lang(), browser.h1())
        browser.audit(page)
        browser.screenshot(page)

    browser.go(LOGIN)
    note("login")
    sign_in(browser, account)
    assert browser.path == MFA_INDEX, browser.describe()
    note("2fa-overview")
    enrol_totp(browser, account, note=note)  # "totp-activate", "recovery-codes"
    browser.sign_out()
    sign_in(browser, account)
    assert browser.path == MFA_AUTHENTICATE, browser.describe()
    note("second-step")
    return seen


def test_main_pages_in_english_and_french(open_browser: Callable[..., Browser], site: Site) -> None:
    # English, from an English browser.
    english = open_browser(site, lang="en")
    en_pages = _tour(english, Account(*site.create_user("alice", exact=True)))

    # French, from a French browser (Accept-Language).
    french = open_browser(site, lang="fr")
    french.go(LOGIN)
    assert french.html_lang() == "fr", f"Accept-Language: fr ignored; {french.describe()}"
    fr_pages = _tour(french, Account(*site.create_user("amelie", exact=True)))

    assert set(en_pages) == set(fr_pages) == set(PAGES), (en_pages, fr_pages)
    for page in PAGES:
        (en_lang, en_h1), (fr_lang, fr_h1) = en_pages[page], fr_pages[page]
        assert (en_lang, fr_lang) == ("en", "fr"), (page, en_lang, fr_lang)
        assert en_h1 and fr_h1 and en_h1 != fr_h1, f"{page}: untranslated heading {fr_h1!r}"

    # The language selector switches an English visitor to French (and back).
    cancel_second_step(english)
    english.go(LOGIN)
    english.choose_language("fr")
    assert english.h1() == fr_pages["login"][1], english.describe()
    english.choose_language("en")
    assert english.h1() == en_pages["login"][1], english.describe()

    assert_accessible(english, french)
