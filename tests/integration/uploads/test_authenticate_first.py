"""``POST /legacy/`` authenticates from the Authorization header before it reads the body.

A token whose signature does not verify (right identifier, wrong signature) proves nothing:
whatever the body holds, the answer is 403, the body is never read or spooled, nothing is
created, and no event names the token or its owner.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django.utils import timezone

from bastion.audit.models import Event
from bastion.projects.models import Project
from bastion.security.errors import TokenSignatureInvalid
from bastion.tokens import services as token_services
from bastion.tokens.errors import TokenRefused
from bastion.tokens.models import ApiToken
from tests.integration.conftest import basic, spooled_files, stored_blobs
from tests.integration.uploads.test_upload_endpoint import form_for
from tests.unit.core.builders import make_wheel

pytestmark = pytest.mark.django_db

_BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def forge(token: str) -> str:
    """The same token with one character of its signature changed (high bits, so the decoded
    bytes really differ): the identifier still names the real row."""
    position = len(token) - 5
    value = _BASE64.index(token[position])
    replacement = _BASE64[(value + 32) % 64]
    return token[:position] + replacement + token[position + 1 :]


def _post(client, token: str, body: bytes, content_type: str = MULTIPART_CONTENT):
    return client.generic(
        "POST",
        "/legacy/",
        data=body,
        content_type=content_type,
        HTTP_AUTHORIZATION=basic(token),
    )


def _multipart(form: dict[str, object]) -> bytes:
    return encode_multipart(BOUNDARY, form)


def _bodies(tmp_path) -> dict[str, bytes]:
    wheel = make_wheel(tmp_path, name="forged-project", version="1.0")
    complete = form_for(wheel)
    bad = form_for(wheel, name=None)  # "name: This field is required." if it were read
    return {
        "no-form": b"",
        "bad-form": _multipart(bad),
        "complete-valid-form": _multipart(complete),
        "large-body": _large_multipart(20 << 20),
    }


def _large_multipart(size: int) -> bytes:
    """A well-formed multipart body whose file part is ``size`` bytes of zeros."""
    head = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name=":action"\r\n\r\nfile_upload\r\n'
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="content"; filename="forged_project-1.0.tar.gz"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + b"\0" * size + f"\r\n--{BOUNDARY}--\r\n".encode()


@pytest.mark.parametrize("which", ["no-form", "bad-form", "complete-valid-form", "large-body"])
def test_forged_token_is_anonymous_and_the_body_is_never_read(
    client, alice, alice_token, tmp_path, which
):
    body = _bodies(tmp_path)[which]
    forged = forge(alice_token)
    assert forged != alice_token
    events_before = Event.objects.count()

    response = _post(client, forged, body)

    assert response.status_code == 403
    assert response["X-Bastion-Error"] == "token.signature"
    assert response.reason_phrase == "Invalid API Token: signatures do not match"
    assert response.wsgi_request.environ["wsgi.input"].read_started is False
    assert spooled_files() == [] and stored_blobs() == []
    assert not Project.objects.exists()
    # Nothing recorded, and above all nothing attributed to alice or her token.
    assert Event.objects.count() == events_before
    token_id = str(ApiToken.objects.get().pk)
    assert not Event.objects.filter(token_id=token_id).exists()
    assert not Event.objects.filter(actor_user_id=alice.pk, created__gte=timezone.now()).exists()
    assert ApiToken.objects.get().last_used is None


def test_forged_token_with_a_body_claiming_to_be_huge_is_403_not_413(client, alice, alice_token):
    response = client.generic(
        "POST",
        "/legacy/",
        data=b"",
        content_type=MULTIPART_CONTENT,
        HTTP_AUTHORIZATION=basic(forge(alice_token)),
        CONTENT_LENGTH=str(10 << 30),
    )
    assert response.status_code == 403
    assert response["X-Bastion-Error"] == "token.signature"


def test_unknown_token_is_anonymous(client, alice, alice_token, tmp_path):
    ApiToken.objects.all().delete()
    events_before = Event.objects.count()
    response = _post(client, alice_token, _bodies(tmp_path)["complete-valid-form"])
    assert response.status_code == 403
    assert "revoked or does not exist" in response.reason_phrase
    assert response.wsgi_request.environ["wsgi.input"].read_started is False
    assert Event.objects.count() == events_before


def test_expired_token_is_refused_before_the_body_is_read(client, alice, make_token, tmp_path):
    # A genuine token (its signature verifies) that has expired: refused from the header
    # alone, and the refusal is the token's own (its holder proved possession).
    token = make_token(
        alice, expires_in=timedelta(hours=1), now=timezone.now() - timedelta(hours=2), name="old"
    )
    response = _post(client, token, _bodies(tmp_path)["large-body"])
    assert response.status_code == 403
    assert response["X-Bastion-Error"] == "token.refused"
    assert "token is expired" in response.reason_phrase
    assert response.wsgi_request.environ["wsgi.input"].read_started is False
    assert spooled_files() == []
    refused = Event.objects.get(kind="token.refused")
    assert refused.token_name == "old"
    assert refused.payload["code"] == "token.refused"


def test_disabled_user_token_is_refused_before_the_body_is_read(
    client, alice, alice_token, tmp_path
):
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    response = _post(client, alice_token, _bodies(tmp_path)["complete-valid-form"])
    assert response.status_code == 403
    assert "disabled" in response.reason_phrase
    assert response.wsgi_request.environ["wsgi.input"].read_started is False
    assert not Project.objects.exists()


def test_authenticate_is_one_step_returning_a_verified_principal(alice, alice_token):
    now = timezone.now()
    principal = token_services.authenticate(alice_token, permission="upload", now=now)
    assert principal.user == alice
    assert principal.token.pk == ApiToken.objects.get().pk
    with pytest.raises(TokenSignatureInvalid):
        token_services.authenticate(forge(alice_token), permission="upload", now=now)
    with pytest.raises(TokenRefused) as refused:
        token_services.authenticate(alice_token, permission="manage", now=now)
    assert refused.value.token.pk == principal.token.pk
    # The module offers no way to get a token row without verifying it.
    assert not hasattr(token_services, "find_token")


def test_project_scope_is_checked_once_the_form_names_the_project(
    client, alice, make_token, tmp_path
):
    token = make_token(alice, projects=["other"], name="other-only")
    response = _post(client, token, _bodies(tmp_path)["complete-valid-form"])
    assert response.status_code == 403
    assert "not valid for project: 'forged-project'" in response.reason_phrase
    # a genuine token: its refusal is recorded against it, with the project it named
    refused = Event.objects.get(kind="token.refused")
    assert refused.token_name == "other-only"
    assert refused.project_name == "forged-project"
