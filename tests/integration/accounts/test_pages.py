"""The account and two-factor pages: bastion's layout, a CSP-clean page (no inline style, no inline
script but JSON data blocks), labelled inputs, errors tied to their fields, French."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct
import time
from html.parser import HTMLParser
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from bastion.accounts.services import create_user
from bastion.actors import Actor

pytestmark = pytest.mark.django_db
PASSWORD = "a long enough passphrase 42"


# --- helpers ------------------------------------------------------------------------------------


class Page(HTMLParser):
    """The parts of a page these tests look at: every start tag with its attributes, headings in
    order, the attributes of each <script>, and the text of each element by id."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.headings: list[int] = []
        self.scripts: list[dict[str, str]] = []
        self._open_ids: list[tuple[str, str]] = []
        self.text_by_id: dict[str, str] = {}
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        found = {name: value or "" for name, value in attrs}
        self.tags.append((tag, found))
        if re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))
        if tag == "script":
            self.scripts.append(found)
        if "id" in found and tag not in ("input", "img", "br", "hr", "meta", "link"):
            self._open_ids.append((tag, found["id"]))
            self.text_by_id[found["id"]] = ""

    def handle_endtag(self, tag):
        if self._open_ids and self._open_ids[-1][0] == tag:
            self._open_ids.pop()

    def handle_data(self, data):
        for _tag, element_id in self._open_ids:
            self.text_by_id[element_id] += data

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [
            found
            for name, found in self.tags
            if name == tag and all(found.get(key) == value for key, value in attrs.items())
        ]

    @property
    def ids(self) -> set[str]:
        return {found["id"] for _name, found in self.tags if "id" in found}


def assert_clean_page(response) -> Page:
    """200, the CSP header, nothing the CSP would block, one h1, headings in order, labels."""
    assert response.status_code == 200, response
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "style-src 'self'" in response["Content-Security-Policy"]
    html = response.content.decode()
    assert "<style" not in html
    assert " style=" not in html
    page = Page(html)
    for script in page.scripts:
        assert "src" in script or script.get("type") == "application/json", script
    assert page.find("link", rel="stylesheet", href="/static/bastion/site.css")
    assert page.find("a", href="#main"), "skip link"
    assert page.find("main", id="main")
    assert page.headings.count(1) == 1, page.headings
    assert page.headings[0] == 1
    for before, after in zip(page.headings, page.headings[1:], strict=False):
        assert after <= before + 1, f"heading level skipped: {page.headings}"
    assert_inputs_labelled(page)
    return page


def assert_inputs_labelled(page: Page) -> None:
    labelled = {found.get("for") for found in page.find("label")}
    for tag in ("input", "select", "textarea"):
        for found in page.find(tag):
            if found.get("type") in ("hidden", "submit", "button"):
                continue
            assert found.get("id") in labelled, f"<{tag}> without a label: {found}"


def assert_errors_tied(page: Page) -> None:
    invalid = [found for _name, found in page.tags if found.get("aria-invalid") == "true"]
    assert invalid, "no field marked aria-invalid"
    for found in invalid:
        described = found.get("aria-describedby", "").split()
        assert any(name.endswith("_error") for name in described), found
        assert set(described) <= page.ids, found


def totp_code(secret: str, *, at: float) -> str:
    """RFC 6238 with SHA-1, 6 digits, 30 s: what an authenticator app computes."""
    counter = int(at) // 30
    digest = hmac.new(base64.b32decode(secret), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


@pytest.fixture
def alice(db):
    return create_user(
        actor=Actor.operator(),
        username="alice",
        email="alice@example.com",
        password=PASSWORD,
        email_verified=True,
    )


@pytest.fixture
def signed_in(client, alice):
    """alice signed in with her password, recently reauthenticated, no second factor yet."""
    response = client.post("/account/login/", {"login": "alice", "password": PASSWORD})
    assert response.status_code == 302
    response = client.post("/account/reauthenticate/", {"password": PASSWORD})
    assert response.status_code == 302
    return client


@pytest.fixture
def enrolled(signed_in):
    """alice with an authenticator app (and so recovery codes); returns the client and secret."""
    page = Page(signed_in.get("/account/2fa/totp/activate/").content.decode())
    secret = page.find("code", id="totp-secret")[0]["data-secret"]
    response = signed_in.post(
        "/account/2fa/totp/activate/", {"code": totp_code(secret, at=time.time())}
    )
    assert response.status_code == 302
    assert response["Location"] == "/account/2fa/recovery-codes/"
    return signed_in, secret


# --- pages signed out ---------------------------------------------------------------------------


ENTRANCE_PAGES = ["/account/login/", "/account/signup/", "/account/password/reset/"]


@pytest.mark.parametrize("path", ENTRANCE_PAGES)
def test_entrance_pages_are_in_the_site_layout_and_csp_clean(client, path):
    page = assert_clean_page(client.get(path))
    assert page.find("html", lang="en")
    assert page.find("form", action="/i18n/setlang/", method="post")
    assert page.find("select", name="language", id="site-language")
    assert page.find("a", href="/account/login/")


def test_every_input_of_sign_in_and_sign_up_has_a_label(client):
    for path, names in (
        ("/account/login/", {"login", "password"}),
        ("/account/signup/", {"username", "email", "password1", "password2"}),
    ):
        page = Page(client.get(path).content.decode())
        labels = {found["for"] for found in page.find("label")}
        form_inputs = [found for found in page.find("input") if found.get("name") in names]
        assert {found["name"] for found in form_inputs} == names
        for found in form_inputs:
            assert found["id"] in labels


def test_a_failed_sign_in_is_announced_in_an_alert(client, alice):
    response = client.post("/account/login/", {"login": "alice", "password": "wrong"})
    page = assert_clean_page(response)
    assert page.find("div", role="alert")
    alert = re.search(r'role="alert">(.*?)</div>', response.content.decode(), re.S)
    assert alert and "password" in alert.group(1).lower()


def test_field_errors_are_tied_to_their_inputs(client):
    response = client.post(
        "/account/signup/",
        {"username": "bob", "email": "not an address", "password1": "x", "password2": "y"},
    )
    page = assert_clean_page(response)
    assert_errors_tied(page)
    assert page.find("input", name="email", **{"aria-invalid": "true"})


# --- French ---------------------------------------------------------------------------------------


def test_accept_language_fr_renders_the_sign_in_page_in_french(client):
    response = client.get("/account/login/", HTTP_ACCEPT_LANGUAGE="fr")
    page = assert_clean_page(response)
    html = response.content.decode()
    assert page.find("html", lang="fr")
    assert "Aller au contenu principal" in html  # ours
    assert "Se connecter" in html  # ours (the header)
    assert "Connexion" in html  # allauth's own French for its heading
    assert "Skip to main content" not in html


def test_the_language_selector_switches_to_french_and_back(client):
    response = client.post("/i18n/setlang/", {"language": "fr", "next": "/account/login/"})
    assert response.status_code == 302
    assert response["Location"] == "/account/login/"
    page = Page(client.get("/account/login/").content.decode())
    assert page.find("html", lang="fr")
    assert page.find("option", value="fr", selected="")
    client.post("/i18n/setlang/", {"language": "en", "next": "/account/login/"})
    assert Page(client.get("/account/login/").content.decode()).find("html", lang="en")


def test_two_factor_pages_render_in_french(signed_in):
    response = signed_in.get("/account/2fa/totp/activate/", HTTP_ACCEPT_LANGUAGE="fr")
    html = assert_clean_page(response) and response.content.decode()
    assert "Configurer une application d'authentification" in html.replace("&#x27;", "'")


# --- second factors -----------------------------------------------------------------------------


def test_a_user_without_a_second_factor_gets_the_set_up_pages(signed_in):
    for path in (
        "/account/2fa/",
        "/account/2fa/totp/activate/",
        "/account/2fa/webauthn/add/",
        "/account/reauthenticate/",
        "/account/email/",
    ):
        page = assert_clean_page(signed_in.get(path))
        assert page.find("a", href="/account/2fa/")
        assert page.find("a", href="/account/history/")
        assert page.find("form", action="/account/logout/")


def test_the_totp_page_shows_the_secret_as_text_matching_the_qr_code(signed_in):
    response = signed_in.get("/account/2fa/totp/activate/")
    page = assert_clean_page(response)
    secret = parse_qs(urlsplit(response.context["totp_url"]).query)["secret"][0]
    shown = page.find("code", id="totp-secret")[0]
    assert shown["data-secret"] == secret
    assert page.text_by_id["totp-secret"].replace(" ", "") == secret
    html = response.content.decode()
    assert "<svg" in html and "<?xml" not in html  # the QR code, inline
    code = page.find("input", name="code")[0]
    assert code["autocomplete"] == "one-time-code"
    assert page.find("label", **{"for": code["id"]})


def test_a_wrong_totp_code_is_tied_to_the_code_field(signed_in):
    response = signed_in.post("/account/2fa/totp/activate/", {"code": "000000"})
    page = assert_clean_page(response)
    assert_errors_tied(page)
    assert page.find("div", role="alert")


def test_the_security_key_page_keeps_what_allauths_scripts_need(signed_in):
    response = signed_in.get("/account/2fa/webauthn/add/")
    page = assert_clean_page(response)
    assert page.find("button", id="mfa_webauthn_add", type="button")
    assert page.find("input", type="hidden", name="credential", id="id_credential")
    assert page.find("script", id="js_data", type="application/json")
    sources = {script.get("src") for script in page.scripts}
    assert {
        "/static/mfa/js/webauthn-json.js",
        "/static/mfa/js/webauthn.js",
        "/static/account/js/onload.js",
    } <= sources
    onload = page.find("script", **{"data-allauth-onload": "allauth.webauthn.forms.addForm"})
    assert onload and onload[0]["type"] == "application/json"


def test_recovery_codes_are_shown_once_after_enrolment_with_a_download(enrolled):
    client, _secret = enrolled
    response = client.get("/account/2fa/recovery-codes/")
    page = assert_clean_page(response)
    html = response.content.decode()
    codes = re.findall(r"<li><code>(\w+)</code></li>", html)
    assert len(codes) == 10
    assert "Save these codes now" in html
    links = [a for a in page.find("a") if a.get("download") == "bastion-recovery-codes.txt"]
    assert len(links) == 1
    assert unquote(links[0]["href"].split(",", 1)[1]).split() == codes
    # shown once (MFA_RECOVERY_CODES_SHOW_ONCE): a second visit no longer shows them
    again = client.get("/account/2fa/recovery-codes/").content.decode()
    assert not any(code in again for code in codes)
    assert client.get("/account/2fa/recovery-codes/download/").status_code != 200


def test_pages_after_enrolment_render(enrolled):
    client, _secret = enrolled
    for path in (
        "/account/2fa/",
        "/account/2fa/recovery-codes/generate/",
        "/account/2fa/webauthn/",
        "/account/2fa/totp/deactivate/",
        "/account/password/change/",
        "/account/email/",
    ):
        assert_clean_page(client.get(path))


def test_the_second_step_of_sign_in_renders(enrolled, client):
    client.post("/account/logout/")
    response = client.post("/account/login/", {"login": "alice", "password": PASSWORD})
    assert response["Location"] == "/account/2fa/authenticate/"
    page = assert_clean_page(client.get("/account/2fa/authenticate/"))
    code = page.find("input", name="code")[0]
    assert page.find("label", **{"for": code["id"]})
    page = assert_clean_page(client.post("/account/2fa/authenticate/", {"code": "123456"}))
    assert_errors_tied(page)
