"""The publishers' web interface (issue 10) in Chromium, with real clients around it.

One server for the module (BASTION_LEAK_REPORT_SECRET set, reauthentication lasting
``REAUTH_TIMEOUT`` seconds so a deletion really asks for the password again) and two users, each
signed in once in a Chromium of their own with a TOTP app enrolled: ``ada`` owns the projects
the ``published`` fixture uploads with a CLI token; ``bruno`` is invited to one.

* invite -> accept -> ``bruno`` makes a token scoped to that project in the page and uploads
  with twine (and is refused on any other project);
* yank in the page -> ``pip install`` skips the release, ``==`` still installs it; un-yank;
* delete a file in the page (after the password again) -> re-uploading its name is refused;
* a token made in the page uploads with twine until it is revoked in the page;
* a leak report at ``/_/token-leak/`` kills a token and mails its owner the reported URL;
* every page of the interface in English and in French (``<html lang>`` and a translated
  heading), axe-core on each (no serious or critical violation), and with BASTION_SCREENSHOTS=1
  the main ones saved as ``docs/screenshots/<lang>-<page>.png`` (the token hidden first).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium.webdriver.support.ui import Select

from tests.browser._flows import (
    Account,
    assert_signed_in,
    create_token_in_ui,
    enrol_totp,
    reauthenticate_if_asked,
    sign_in,
)
from tests.browser._support import (
    INVITATIONS,
    MANAGE_PROJECTS,
    MFA_INDEX,
    REAUTHENTICATE,
    TOKEN_LEAK,
    TOKENS,
    Browser,
    Site,
    assert_accessible,
    hide_text,
    message_text,
    messages_text,
    start_browser,
    wait_for_link,
)
from tests.browser.conftest import _site
from tests.e2e._support import PYTHON, client_environ, describe, output_of, run
from tests.unit.core.builders import make_sdist, make_wheel, metadata_bytes

LEAK_SECRET = "leak-" + secrets.token_urlsafe(24)
REAUTH_TIMEOUT = 15  # seconds; BASTION_REAUTHENTICATION_TIMEOUT of this module's server

COLLAB = "aurora-utils"  # ada's; bruno is invited to it
YANK = "yank-demo"
DELETE = "delete-demo"
README = """\
# aurora-utils

Small helpers for **aurora** dashboards: colour ramps, time windows and unit formatting.

```python
from aurora_utils import ramp
ramp("green", steps=5)
```

- works offline
- no dependencies
"""


# ---------------------------------------------------------------------------------------------
# Fixtures: one server, two signed-in publishers, the projects


@dataclass
class Publisher:
    browser: Browser
    account: Account
    token: str = ""  # a user-wide token made with the CLI
    authenticated_at: float = 0.0  # time.monotonic() of the latest (re)authentication, or later

    def touched(self) -> None:
        self.authenticated_at = time.monotonic()

    def let_reauthentication_lapse(self) -> float:
        """Wait until the last reauthentication no longer counts; the seconds waited."""
        delay = self.authenticated_at + REAUTH_TIMEOUT + 1.0 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return max(delay, 0.0)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """This module's server (it overrides the session's ``site``)."""
    extra = {
        "BASTION_LEAK_REPORT_SECRET": LEAK_SECRET,
        "BASTION_REAUTHENTICATION_TIMEOUT": str(REAUTH_TIMEOUT),
    }
    with _site(tmp_path_factory, "publishing", extra) as live_site:
        yield live_site


def _publisher(site: Site, username: str) -> Iterator[Publisher]:
    browser = start_browser(site.base_url)
    try:
        account = Account(*site.create_user(username, exact=True))
        sign_in(browser, account)
        assert browser.path == MFA_INDEX, f"no 2FA set-up after sign-in; {browser.describe()}"
        enrol_totp(browser, account, note=lambda _page: None)
        assert_signed_in(browser, account)
        publisher = Publisher(browser=browser, account=account)
        publisher.touched()
        yield publisher
    finally:
        browser.quit()


@pytest.fixture(scope="module")
def owner(site: Site) -> Iterator[Publisher]:
    """``ada``, signed in with TOTP, with a user-wide CLI token."""
    for publisher in _publisher(site, "ada"):
        publisher.token = site.live.cli_ok("token", "create", "ada", "--name", "ada-cli")
        yield publisher


@pytest.fixture(scope="module")
def collaborator(site: Site) -> Iterator[Publisher]:
    """``bruno``, signed in with TOTP, no project of his own."""
    yield from _publisher(site, "bruno")


@pytest.fixture
def browser(owner: Publisher) -> Browser:
    """The owner's browser (what a failing test's report shows), with this test's findings."""
    owner.browser.findings.clear()
    owner.browser.audited.clear()
    return owner.browser


def wheel(where: Path, name: str, version: str, *, summary: str = "") -> Path:
    """A small valid wheel; ``aurora-utils`` gets a rich description and metadata."""
    overrides: dict[str, str | list[str] | None] = {
        "Summary": summary or f"{name}, a demonstration distribution",
        "Requires-Python": ">=3.9",
        "License-Expression": "MIT",
    }
    body = None
    if name == COLLAB:
        overrides["Summary"] = "Colour ramps, time windows and units for aurora dashboards"
        overrides["Description-Content-Type"] = "text/markdown"
        overrides["Project-URL"] = [
            "Homepage, https://example.com/aurora-utils",
            "Source, https://example.com/aurora-utils/src",
        ]
        body = README
    where.mkdir(parents=True, exist_ok=True)
    return make_wheel(
        where, name, version, metadata=metadata_bytes(name, version, overrides, body=body)
    )


@pytest.fixture(scope="module")
def published(
    site: Site, owner: Publisher, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """ada's projects, uploaded with her CLI token in one twine run."""
    where = tmp_path_factory.mktemp("published")
    files = {
        "collab-1.0": wheel(where, COLLAB, "1.0"),
        "collab-1.0-sdist": make_sdist(where, COLLAB, "1.0"),
        "collab-1.1": wheel(where, COLLAB, "1.1"),
        "yank-1.0": wheel(where, YANK, "1.0"),
        "yank-2.0": wheel(where, YANK, "2.0"),
        "delete-1.0": wheel(where, DELETE, "1.0"),
        "delete-1.0-sdist": make_sdist(where, DELETE, "1.0"),
    }
    site.live.twine_ok(*files.values(), token=owner.token)
    return files


# ---------------------------------------------------------------------------------------------
# Helpers


def click(browser: Browser, css: str) -> None:
    """Click the (first visible) element ``css`` in <main> and wait for the next document."""
    found = [e for e in browser.find_all(f"main {css}") if e.is_displayed()]
    assert found, f"nothing to click at {css!r}; {browser.describe()}"
    browser.navigates(found[0].click)


def twine_refused(site: Site, path: Path, token: str, status: str) -> str:
    result = site.live.twine(path, token=token)
    output = output_of(result)
    assert result.returncode != 0 and status in output, (
        f"twine was not refused with {status}:\n{describe(result)}"
    )
    return output


def pip_installs(site: Site, where: Path, requirement: str) -> str:
    """``pip install --no-deps --target`` from this index only; the version it installed."""
    target = where / f"target-{secrets.token_hex(4)}"
    result = run(
        [
            PYTHON,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-compile",
            "--target",
            str(target),
            "--index-url",
            site.live.simple_url,
            requirement,
        ],
        env=client_environ(),
    )
    assert result.returncode == 0, describe(result)
    infos = sorted(p.name for p in target.glob("*.dist-info"))
    assert len(infos) == 1, (infos, describe(result))
    return infos[0].removesuffix(".dist-info").split("-")[1]


def simple_yanked(site: Site, project: str) -> dict[str, object]:
    page = site.live.simple_json(project)
    assert page is not None, f"{project} is not in the simple API"
    return {f["filename"]: f.get("yanked", False) for f in page["files"]}


def row_names(browser: Browser) -> list[str]:
    """The first cell of each row of the page's table (token names on /account/tokens/)."""
    return [e.text.strip() for e in browser.find_all("main tbody th[scope='row']")]


def leak_report(site: Site, body: object, secret: str) -> tuple[int, bytes]:
    response = site.live.http.post(
        site.live.url(TOKEN_LEAK),
        data=json.dumps(body),
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        timeout=30,
    )
    return response.status_code, response.content


# ---------------------------------------------------------------------------------------------
# 1. Invitation -> acceptance -> the collaborator uploads with a token scoped to the project


def test_an_invited_maintainer_accepts_and_uploads_with_a_project_token(
    site: Site,
    owner: Publisher,
    collaborator: Publisher,
    browser: Browser,
    published: dict[str, Path],
    tmp_path: Path,
) -> None:
    bruno = collaborator.browser
    bruno.findings.clear()
    manage = f"/manage/project/{COLLAB}/"
    people = manage + "collaborators/"

    # ada: her projects -> the project -> its collaborators.
    browser.go(MANAGE_PROJECTS)
    browser.audit("manage projects")
    click(browser, f"a[href='{manage}']")
    assert browser.path == manage, browser.describe()
    assert "You are an Owner" in browser.text, browser.describe()
    browser.audit("manage project")
    click(browser, f"a[href='{people}']")
    assert browser.path == people, browser.describe()
    browser.audit("collaborators")

    # Someone who does not exist: the form says so.
    browser.fill(username="nobody-by-that-name")
    browser.submit("username")
    assert browser.path == people and browser.field_errors(), (
        f"inviting an unknown user was not refused on the form; {browser.describe()}"
    )
    browser.audit("collaborators (error)")

    browser.fill(username=collaborator.account.username)
    Select(browser.find("#id_role")).select_by_value("Maintainer")
    browser.submit("username")
    assert browser.path == people, browser.describe()
    assert collaborator.account.username in messages_text(browser), browser.describe()
    pending = browser.find("main ul:not(.messages)").text
    assert collaborator.account.username in pending, browser.describe()
    browser.audit("collaborators (invited)")

    # bruno is told by e-mail, and sees the invitation.
    wait_for_link(site.outbox, collaborator.account.email, re.escape(site.base_url + INVITATIONS))
    bruno.go(MANAGE_PROJECTS)
    assert bruno.exists(f"main .message a[href='{INVITATIONS}']"), (
        f"no pending invitation announced; {bruno.describe()}"
    )
    bruno.audit("manage projects (invited)")
    click(bruno, f".message a[href='{INVITATIONS}']")
    assert COLLAB in bruno.text, bruno.describe()
    bruno.audit("invitations")
    click(bruno, "form[action$='/accept/'] button")
    assert bruno.path == manage, f"accepting did not lead to the project; {bruno.describe()}"
    assert COLLAB in messages_text(bruno) and "You are a Maintainer" in bruno.text, bruno.describe()
    assert not bruno.exists(f"a[href='{manage}delete/']"), "a Maintainer is offered deletion"
    bruno.audit("manage project (maintainer)")

    # bruno's own token, for that project only.
    secret = create_token_in_ui(bruno, collaborator.account, "aurora CI", projects=(COLLAB,))
    collaborator.touched()
    assert COLLAB in bruno.find("#token-summary").text, bruno.describe()
    site.live.twine_ok(wheel(tmp_path, COLLAB, "2.0"), token=secret)
    twine_refused(site, wheel(tmp_path, "bruno-elsewhere", "1.0"), secret, "403")

    # The public page names him, as a Maintainer and as the uploader of 2.0 with that token.
    browser.go(f"/project/{COLLAB}/")
    assert "2.0" in browser.h1(), browser.describe()
    maintainers = browser.find("section[aria-labelledby='maintainers-heading']").text
    assert "bruno" in maintainers and "Maintainer" in maintainers, maintainers
    files = browser.find("table.files").text
    assert "bruno" in files and "aurora CI" in files, files
    browser.audit("project")
    browser.go("/user/bruno/")
    assert COLLAB in browser.text and "Maintainer" in browser.text, browser.describe()
    browser.audit("user")
    browser.go(people)
    assert "No pending invitations." in browser.text, browser.describe()
    assert_accessible(browser, bruno)


# ---------------------------------------------------------------------------------------------
# 2. Yank in the page -> pip skips the release, == still installs it


def test_a_release_yanked_in_the_page_is_skipped_by_pip_unless_pinned(
    site: Site, owner: Publisher, browser: Browser, published: dict[str, Path], tmp_path: Path
) -> None:
    release = f"/manage/project/{YANK}/release/2.0/"
    reason = "Breaks on Python 3.13; use 1.0"
    assert pip_installs(site, tmp_path, YANK) == "2.0"

    browser.go(f"/manage/project/{YANK}/")
    click(browser, f"a[href='{release}']")
    assert browser.path == release, browser.describe()
    browser.audit("manage release")
    browser.fill(reason=reason)
    browser.submit("reason")
    assert browser.path == release, browser.describe()
    assert "2.0" in messages_text(browser) and "This release is yanked." in browser.text, (
        browser.describe()
    )
    browser.audit("manage release (yanked)")

    yanked = simple_yanked(site, YANK)
    assert yanked == {
        "yank_demo-1.0-py3-none-any.whl": False,
        "yank_demo-2.0-py3-none-any.whl": reason,
    }, yanked
    assert pip_installs(site, tmp_path, YANK) == "1.0"
    assert pip_installs(site, tmp_path, f"{YANK}==2.0") == "2.0"

    browser.go(f"/project/{YANK}/2.0/")
    assert reason in browser.text, f"the yank reason is not shown; {browser.describe()}"
    browser.audit("release (yanked)")

    # Un-yanked: installers take it again.
    browser.go(release)
    click(browser, "form[action$='/unyank/'] button")
    assert browser.path == release and "2.0" in messages_text(browser), browser.describe()
    assert "This release is yanked." not in browser.text, browser.describe()
    assert simple_yanked(site, YANK)["yank_demo-2.0-py3-none-any.whl"] is False
    assert pip_installs(site, tmp_path, YANK) == "2.0"
    assert_accessible(browser)


# ---------------------------------------------------------------------------------------------
# 3. Delete a file (after the password again) -> its name can never be uploaded again


def test_a_file_deleted_in_the_page_cannot_be_uploaded_again(
    site: Site, owner: Publisher, browser: Browser, published: dict[str, Path]
) -> None:
    sdist = published["delete-1.0-sdist"]
    release = f"/manage/project/{DELETE}/release/1.0/"
    delete = f"/manage/project/{DELETE}/file/{sdist.name}/delete/"
    assert sdist.name in site.live.simple_files(DELETE)

    owner.let_reauthentication_lapse()
    browser.go(release)
    browser.audit("manage release (owner)")
    click(browser, f"a[href='{delete}']")
    assert browser.path.startswith(REAUTHENTICATE), (
        f"deleting did not ask for the password again; {browser.describe()}"
    )
    browser.audit("reauthenticate")
    reauthenticate_if_asked(browser, owner.account)
    owner.touched()
    assert browser.path == delete, f"not back at the deletion; {browser.describe()}"
    assert "Confirm the deletion" in browser.h1(), browser.describe()
    browser.audit("confirm delete")

    # A wrong name deletes nothing.
    browser.fill(confirm=sdist.name.removesuffix(".tar.gz"))
    browser.submit("confirm")
    assert browser.path == delete and browser.field_errors(), browser.describe()
    assert sdist.name in site.live.simple_files(DELETE)
    browser.audit("confirm delete (error)")

    browser.fill(confirm=sdist.name)
    browser.submit("confirm")
    assert browser.path == release, f"the deletion did not go through; {browser.describe()}"
    assert sdist.name in messages_text(browser), browser.describe()
    listed = [e.text for e in browser.find_all("main table code")]
    assert sdist.name not in listed and published["delete-1.0"].name in listed, listed
    assert sdist.name not in site.live.simple_files(DELETE)

    output = twine_refused(site, sdist, owner.token, "400")
    assert "has already been used" in output, output
    assert_accessible(browser)


# ---------------------------------------------------------------------------------------------
# 4. A token made in the page uploads with twine; revoked in the page, it is refused


def test_a_token_made_in_the_page_uploads_until_revoked_there(
    site: Site, owner: Publisher, browser: Browser, published: dict[str, Path], tmp_path: Path
) -> None:
    browser.go(TOKENS)
    browser.audit("tokens")
    click(browser, "a[href='/account/tokens/new/']")
    secret = create_token_in_ui(browser, owner.account, "laptop")
    owner.touched()
    assert secret.startswith("bastion-"), "not a bastion token"
    upload_url = site.live.upload_url
    assert upload_url in browser.find("#pypirc").text and secret in browser.find("#pypirc").text
    assert secret in browser.find("#uv-publish").text
    # copy.js (a static file, under the CSP) shows the copy buttons and announces the copy.
    button = browser.find("button.copy-button[data-copy='token-value']")
    assert button.is_displayed(), "the copy buttons stayed hidden: copy.js did not run"
    button.click()
    browser.wait(
        lambda _d: browser.find("#copy-status").get_attribute("textContent").strip(),
        message="the copy was not announced",
    )

    site.live.twine_ok(wheel(tmp_path, "token-demo", "1.0"), token=secret)
    browser.go(TOKENS)
    rows = [
        r.text
        for r in browser.find_all("main tbody tr")
        if [th.text for th in r.find_elements("css selector", "th")] == ["laptop"]
    ]
    assert len(rows) == 1, f"no row for the token; {browser.describe()}"
    assert "127.0.0.0/24" in rows[0], f"where it was last used is not shown: {rows[0]!r}"
    browser.audit("tokens (used)")
    # (ASCII only: outbox_messages() turns non-ASCII 8bit text into "\\u201c" escapes.)
    _name, notice = wait_for_link(site.outbox, owner.account.email, r"named \S*laptop")
    assert secret not in message_text(notice), "the creation notice holds the token"

    click(browser, "form[action$='/revoke/'] button[aria-label*='laptop']")
    assert browser.path == TOKENS and "laptop" in messages_text(browser), browser.describe()
    assert "laptop" not in row_names(browser), browser.describe()
    twine_refused(site, wheel(tmp_path, "token-demo", "1.1"), secret, "403")
    assert_accessible(browser)


# ---------------------------------------------------------------------------------------------
# 5. A leak report kills the token and mails its owner the URL it was found at


def test_a_leak_report_kills_the_token_and_mails_the_owner(
    site: Site, owner: Publisher, browser: Browser, published: dict[str, Path], tmp_path: Path
) -> None:
    secret = create_token_in_ui(browser, owner.account, "ci-leaky")
    owner.touched()
    site.live.twine_ok(wheel(tmp_path, "leak-demo", "1.0"), token=secret)
    found_at = f"https://github.com/ada/leak-demo/blob/{secrets.token_hex(4)}/.github/ci.yml"
    report = [{"token": secret, "type": "bastion_api_token", "url": found_at, "source": "github"}]

    assert leak_report(site, report, "not-the-secret")[0] == 401
    site.live.twine_ok(wheel(tmp_path, "leak-demo", "1.1"), token=secret)  # still alive
    assert leak_report(site, [{"token": "bastion-not-a-token"}], LEAK_SECRET) == (204, b"")
    assert leak_report(site, report, LEAK_SECRET) == (204, b"")

    twine_refused(site, wheel(tmp_path, "leak-demo", "1.2"), secret, "403")
    _found, message = wait_for_link(site.outbox, owner.account.email, re.escape(found_at))
    text = message_text(message)
    assert "ci-leaky" in text and secret not in text, text
    browser.go(TOKENS)
    assert "ci-leaky" not in row_names(browser), f"the leaked token is listed; {browser.describe()}"
    browser.audit("tokens (after a leak)")
    assert_accessible(browser)


# ---------------------------------------------------------------------------------------------
# 6, 7. Every page in English and French, axe-core on each, screenshots


SCREENSHOTS = ("home", "search", "project", "manage-project", "collaborators", "tokens")
TOKEN_PLACEHOLDER = "bastion-" + "x" * 40


def _tour(
    browser: Browser, publisher: Publisher, files: dict[str, Path]
) -> dict[str, tuple[str, str]]:
    """Visit every page of the interface: page -> (``<html lang>``, a heading of its own)."""
    seen: dict[str, tuple[str, str]] = {}
    lang = browser.lang

    def note(page: str, css: str = "main h1") -> None:
        found = browser.find_all(css)
        seen[page] = (browser.html_lang(), found[0].text.strip() if found else "")
        browser.audit(page)
        if page in SCREENSHOTS:
            browser.screenshot(page)

    def visit(page: str, path: str, css: str = "main h1") -> None:
        browser.go(path)
        assert browser.path == path.split("?")[0], f"{page}: {browser.describe()}"
        note(page, css)

    visit("home", "/")
    visit("search", f"/search/?q={COLLAB.split('-')[0]}")
    assert browser.exists(f"main ol.results a[href='/project/{COLLAB}/']"), browser.describe()
    visit("project", f"/project/{COLLAB}/", "#install-heading")
    visit("release", f"/project/{COLLAB}/1.0/", "#install-heading")
    visit("user", f"/user/{publisher.account.username}/", "main h2")
    visit("manage-projects", MANAGE_PROJECTS)
    visit("manage-project", f"/manage/project/{COLLAB}/")
    visit("manage-release", f"/manage/project/{COLLAB}/release/1.0/")
    visit("collaborators", f"/manage/project/{COLLAB}/collaborators/")
    visit("invitations", INVITATIONS, "main p")  # "Invitations" is French too

    secret = create_token_in_ui(browser, publisher.account, f"tour-{lang}", note=note)
    publisher.touched()
    assert hide_text(browser, secret, TOKEN_PLACEHOLDER) >= 3  # the field and both snippets
    browser.screenshot("token-created")
    visit("tokens", TOKENS)

    delete = f"/manage/project/{COLLAB}/file/{files['collab-1.0-sdist'].name}/delete/"
    browser.go(delete)
    reauthenticate_if_asked(browser, publisher.account)
    publisher.touched()
    visit("confirm-delete", delete)
    return seen


def test_every_page_in_english_and_french(
    site: Site, owner: Publisher, browser: Browser, published: dict[str, Path]
) -> None:
    browser.go("/")
    assert browser.html_lang() == "en", browser.describe()
    english = _tour(browser, owner, published)

    browser.go("/")
    browser.choose_language("fr")  # the site's selector
    try:
        french = _tour(browser, owner, published)
    finally:
        browser.go("/")
        browser.choose_language("en")

    assert set(english) == set(french), (sorted(english), sorted(french))
    wrong_lang = {page: french[page][0] for page in french if french[page][0] != "fr"}
    assert not wrong_lang, f"pages not marked <html lang=fr>: {wrong_lang}"
    assert all(lang == "en" for lang, _heading in english.values()), english
    untranslated = {
        page: heading
        for page, (_lang, heading) in french.items()
        if not heading or heading == english[page][1]
    }
    assert not untranslated, f"pages whose heading is not translated: {untranslated}"
    assert_accessible(browser)
