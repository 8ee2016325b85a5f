"""``POST /_/token-leak/``: leaked-token reports from secret scanners.

404 while BASTION_LEAK_REPORT_SECRET is unset; 401 without the bearer secret; 400/413 with a
one-line reason for a malformed or oversized report; otherwise always an empty 204, and every
genuine token named is revoked, recorded and its owner e-mailed. A forged token naming a real
token's id revokes nothing.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.utils import timezone

from bastion.audit.models import Event
from bastion.tokens import leak_reports
from bastion.tokens.models import ApiToken
from tests.integration.uploads.test_authenticate_first import forge
from tests.integration.uploads.test_upload_endpoint import upload
from tests.unit.core.builders import make_wheel

pytestmark = pytest.mark.django_db
SECRET = "leak-report-secret-" + "s" * 20
URL = "https://github.com/alice/demo/blob/main/.pypirc"


@pytest.fixture
def configured():
    config = dataclasses.replace(settings.BASTION, leak_report_secret=SECRET)
    with override_settings(BASTION=config):
        yield


def report(client: Client, body: object, *, secret: str | None = SECRET, raw: bytes | None = None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"} if secret is not None else {}
    data = raw if raw is not None else json.dumps(body).encode()
    return client.post("/_/token-leak/", data=data, content_type="application/json", **headers)


def entry(token: str, url: str = URL) -> dict[str, str]:
    return {"token": token, "type": "bastion_api_token", "url": url, "source": "github"}


def test_without_a_configured_secret_the_endpoint_does_not_exist(client, alice, alice_token):
    assert settings.BASTION.leak_report_secret is None
    response = report(client, [entry(alice_token)], secret="anything")
    assert response.status_code == 404
    assert ApiToken.objects.filter(user=alice).exists()


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong", f"Basic {SECRET}", f"Bearer {SECRET}x", f"Token {SECRET}"],
)
def test_a_wrong_or_missing_secret_is_401(configured, client, alice, alice_token, authorization):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    response = client.post(
        "/_/token-leak/",
        data=json.dumps([entry(alice_token)]),
        content_type="application/json",
        **headers,
    )
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert ApiToken.objects.filter(user=alice).exists()


def test_only_post(configured, client):
    response = client.get("/_/token-leak/", HTTP_AUTHORIZATION=f"Bearer {SECRET}")
    assert response.status_code == 405
    assert response["Allow"] == "POST"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "the body is not valid JSON"),
        (b"\xff\xfe", "the body is not valid JSON"),
        (b'{"token": "x"}', "the body must be a JSON list of reports"),
        (b'["bastion-abc"]', "entry 0 is not an object"),
        (b'[{"url": "https://x"}]', "entry 0 has no 'token' string"),
        (b'[{"token": ""}]', "entry 0 has no 'token' string"),
        (b'[{"token": "a", "url": 5}]', "entry 0: 'url' must be a string"),
    ],
)
def test_a_malformed_report_is_400_with_a_one_line_reason(configured, client, raw, reason):
    response = report(client, None, raw=raw)
    assert response.status_code == 400
    assert response.reason_phrase == reason
    assert response.json() == {"code": "token.leak-report.malformed", "message": reason}


def test_too_many_entries_or_bytes_are_413(configured, client):
    many = [{"token": "x"}] * (leak_reports.MAX_ENTRIES + 1)
    assert report(client, many).status_code == 413
    huge = b'[{"token": "' + b"a" * leak_reports.MAX_BODY_BYTES + b'"}]'
    assert report(client, None, raw=huge).status_code == 413


def test_a_reported_token_is_revoked_recorded_and_its_owner_told(
    configured, alice, alice_token, mailoutbox, tmp_path
):
    client = Client(enforce_csrf_checks=True)  # scanners send no CSRF token
    response = report(client, [entry(alice_token)])
    assert response.status_code == 204
    assert response.content == b""

    assert not ApiToken.objects.filter(user=alice).exists()
    event = Event.objects.get(kind="token.leaked")
    assert event.subject_username == "alice"
    assert event.payload["url"] == URL
    assert event.payload["source"] == "github" and event.payload["type"] == "bastion_api_token"
    assert event.payload["name"] == "alice-all"
    assert alice_token not in json.dumps(event.payload)

    (mail,) = mailoutbox
    assert mail.to == ["alice@example.com"]
    assert URL in mail.body  # the scanner's URL as reported, not moved onto the base URL
    assert "“alice-all”" in mail.body
    assert alice_token not in mail.body

    assert upload(Client(), make_wheel(tmp_path), alice_token).status_code == 403


def test_a_forged_token_naming_a_real_id_revokes_nothing(
    configured, client, alice, alice_token, mailoutbox
):
    response = report(client, [entry(forge(alice_token))])
    assert response.status_code == 204
    assert ApiToken.objects.filter(user=alice).exists()
    assert not Event.objects.filter(kind="token.leaked").exists()
    assert mailoutbox == []


def test_unknown_and_garbage_tokens_get_the_same_empty_204(configured, client, alice, alice_token):
    response = report(
        client,
        [entry("bastion-AAAA"), entry("pypi-AgEIcHlwaS5vcmc"), entry("not a token at all")],
    )
    assert response.status_code == 204 and response.content == b""
    assert ApiToken.objects.filter(user=alice).exists()


def test_expired_tokens_count_and_a_token_named_twice_is_revoked_once(
    configured, client, alice, make_token, mailoutbox
):
    expired = make_token(
        alice, name="old", expires_in=timedelta(days=1), now=timezone.now() - timedelta(days=3)
    )
    response = report(client, [entry(expired), entry(expired, url="https://elsewhere.example/")])
    assert response.status_code == 204
    assert not ApiToken.objects.filter(user=alice).exists()
    assert Event.objects.filter(kind="token.leaked").count() == 1
    assert len(mailoutbox) == 1


def test_only_the_reported_tokens_go(configured, client, alice, bob, make_token):
    leaked = make_token(alice, name="leaked")
    make_token(alice, name="kept")
    bobs = make_token(bob, name="bobs")
    assert report(client, [entry(leaked)]).status_code == 204
    assert set(ApiToken.objects.values_list("name", flat=True)) == {"kept", "bobs"}
    assert bobs


def test_a_padded_token_as_scanners_may_match_it_still_counts(
    configured, client, alice, make_token
):
    secret = make_token(alice, name="padded")
    padded = secret + "=" * (-len(secret.split("-", 1)[1]) % 4)
    assert report(client, [entry(padded)]).status_code == 204
    assert not ApiToken.objects.filter(name="padded").exists()


def test_the_path_without_the_trailing_slash_works_too(configured, client, alice, alice_token):
    response = client.post(
        "/_/token-leak",
        data=json.dumps([entry(alice_token)]),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {SECRET}",
    )
    assert response.status_code == 204
    assert not ApiToken.objects.filter(user=alice).exists()
