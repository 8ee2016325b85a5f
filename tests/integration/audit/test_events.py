"""Each action through the real endpoint or service leaves the exact event, actor and context."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from bastion.accounts.models import User
from bastion.actors import Actor
from bastion.audit.models import Event
from bastion.audit.queries import export_records, verify_chain
from bastion.audit.services import truncate_old_addresses
from bastion.projects.models import Project
from bastion.tokens.models import ApiToken
from bastion.tokens.services import revoke_token
from tests.integration.conftest import basic
from tests.integration.uploads.test_upload_endpoint import form_for
from tests.unit.core.builders import make_wheel

pytestmark = pytest.mark.django_db
UA = "twine/7.0.0 CPython/3.11.7"


def post(client, path, token, **fields):
    return client.post(
        "/legacy/",
        data=form_for(path, **fields),
        HTTP_AUTHORIZATION=basic(token),
        HTTP_USER_AGENT=UA,
        REMOTE_ADDR="203.0.113.57",
    )


def kinds() -> list[str]:
    return list(Event.objects.order_by("seq").values_list("kind", flat=True))


def test_account_and_token_creation_events(alice, make_token):
    token = make_token(alice, projects=["demo"], name="ci")
    row = ApiToken.objects.get(name="ci")
    assert kinds() == ["account.created", "token.created", "project.token.created"]
    created = Event.objects.get(kind="token.created")
    assert created.subject_username == "alice"
    assert created.credential == "cli"
    assert created.payload["token_id"] == str(row.pk)
    assert created.payload["scope"] == ["demo"]
    assert token not in json.dumps(created.payload)  # the secret never enters the trail
    assert Event.objects.get(kind="project.token.created").project_name == "demo"


def test_upload_events_record_the_token_and_context(client, alice, make_token, tmp_path):
    token = make_token(alice, projects=["demo"], name="release-ci")
    row = ApiToken.objects.get(name="release-ci")
    start = Event.objects.count()
    assert post(client, make_wheel(tmp_path), token).status_code == 200
    new = list(Event.objects.filter(seq__gt=start).order_by("seq"))
    assert [e.kind for e in new] == [
        "project.created",
        "project.role.added",
        "release.created",
        "file.uploaded",
        "token.used-from-new-address",
    ]
    project = Project.objects.get()
    for event in new:
        assert event.actor_username == "alice"
        assert event.credential == "token"
        assert event.token_id == str(row.pk)
        assert event.token_name == "release-ci"
        assert event.ip_address == "203.0.113.57"
        assert event.ip_coarse == "203.0.113.0/24"
        assert event.user_agent == UA
    uploaded = new[3]
    assert uploaded.project_id == project.pk and uploaded.project_name == "demo"
    assert uploaded.payload["filename"] == "demo-1.0-py3-none-any.whl"
    assert (
        uploaded.payload["sha256"]
        == hashlib.sha256((tmp_path / "demo-1.0-py3-none-any.whl").read_bytes()).hexdigest()
    )
    # same address again: no second "new address" event
    post(client, make_wheel(tmp_path, version="2.0"), token)
    assert kinds().count("token.used-from-new-address") == 1


def test_refusals_are_recorded_with_their_reason(client, alice, make_token, tmp_path):
    scoped = make_token(alice, projects=["other"], name="other-only")
    response = post(client, make_wheel(tmp_path), scoped)
    assert response.status_code == 403
    refused = Event.objects.get(kind="token.refused")
    assert refused.token_name == "other-only"
    assert refused.project_name == "demo"
    assert refused.payload["code"] == "token.invalid"
    assert refused.payload["status"] == 403

    token = make_token(alice, name="all")
    response = post(client, make_wheel(tmp_path), token, sha256_digest="0" * 64)
    assert response.status_code == 400
    rejected = Event.objects.get(kind="upload.rejected")
    assert rejected.payload["code"] == "upload.digest-mismatch"
    assert rejected.payload["filename"] == "demo-1.0-py3-none-any.whl"
    assert not Project.objects.exists()


def test_unidentified_credentials_leave_no_event(client, alice, tmp_path):
    before = Event.objects.count()
    post(client, make_wheel(tmp_path), "bastion-not-a-token")
    assert Event.objects.count() == before


def test_events_survive_deletion_of_their_subjects(client, alice, make_token, tmp_path):
    token = make_token(alice, name="t")
    post(client, make_wheel(tmp_path), token)
    revoke_token(actor=Actor.operator(), token=ApiToken.objects.get(), now=timezone.now())
    count = Event.objects.count()
    Project.objects.all().delete()
    User.objects.all().delete()
    assert Event.objects.count() == count
    assert kinds()[-1] == "token.revoked"
    assert Event.objects.filter(kind="file.uploaded", actor_username="alice").exists()
    assert verify_chain()[1] is None


@pytest.fixture
def history(client, alice, make_token, tmp_path):
    token = make_token(alice, name="t")
    for version in ("1.0", "2.0", "3.0"):
        assert post(client, make_wheel(tmp_path, version=version), token).status_code == 200
    count, fault = verify_chain()
    assert fault is None and count == Event.objects.count()
    return list(Event.objects.order_by("seq"))


def test_edit_is_detected_at_the_edited_event(history):
    target = history[4]
    Event.objects.filter(pk=target.pk).update(payload={"filename": "evil.whl"})
    _count, fault = verify_chain()
    assert fault is not None and fault.seq == target.seq and "edited" in fault.reason


def test_edit_of_the_full_ip_address_is_detected(history):
    target = history[3]
    Event.objects.filter(pk=target.pk).update(ip_address="198.51.100.1")
    _count, fault = verify_chain()
    assert fault is not None and fault.seq == target.seq


def test_removal_is_detected(history):
    target = history[5]
    Event.objects.filter(pk=target.pk).delete()
    _count, fault = verify_chain()
    assert fault is not None and fault.seq == target.seq and "missing" in fault.reason


def test_removal_of_the_newest_events_is_detected(history):
    Event.objects.filter(seq__gte=history[-2].seq).delete()
    _count, fault = verify_chain()
    assert fault is not None and fault.seq == history[-2].seq


def test_insertion_is_detected(history):
    # shift the tail by one and slip a forged event in between
    target = history[6]
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_event SET seq = seq + 100000 WHERE seq >= %s", [target.seq])
        cursor.execute("UPDATE audit_event SET seq = seq - 99999 WHERE seq >= %s", [target.seq])
    forged = Event.objects.get(seq=target.seq + 1)
    forged.pk = None
    forged.seq = target.seq
    forged.kind = "file.uploaded"
    forged.save()
    _count, fault = verify_chain()
    assert fault is not None and fault.seq == target.seq


def test_export_verifies_with_an_independent_checker(history):
    records = list(export_records())
    previous = "0" * 64
    for expected_seq, record in enumerate(records, start=1):
        line = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        parsed = json.loads(line)
        claimed = parsed.pop("hash")
        canonical = json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert hashlib.sha256(canonical.encode()).hexdigest() == claimed
        assert parsed["prev"] == previous and parsed["seq"] == expected_seq
        assert "203.0.113.57" not in line  # only the coarse address and a commitment leave
        previous = claimed


def test_retention_truncates_addresses_and_keeps_the_chain_valid(history):
    later = timezone.now() + timedelta(days=91)
    changed = truncate_old_addresses(older_than=timedelta(days=90), now=later)
    assert changed == len([e for e in history if e.ip_address])
    assert not Event.objects.exclude(ip_address="").exists()
    assert (
        Event.objects.filter(ip_coarse="127.0.0.0/24").exists()
        or Event.objects.filter(ip_coarse="203.0.113.0/24").exists()
    )
    assert verify_chain()[1] is None


def test_a_batch_is_appended_when_it_ends_and_chains_like_single_events(alice):
    from django.db import transaction

    from bastion.audit.services import batched, record

    operator = Actor.operator()
    with transaction.atomic():
        record("policy.name.prohibited", actor=operator, project_name="first")
    with transaction.atomic(), batched():
        for name in ("second", "third", "fourth"):
            record("policy.name.prohibited", actor=operator, project_name=name)
        assert Event.objects.filter(project_name="second").count() == 0  # not yet
    with transaction.atomic():
        record("policy.name.prohibited", actor=operator, project_name="fifth")
    names = list(Event.objects.order_by("seq").values_list("project_name", flat=True))
    assert names[-5:] == ["first", "second", "third", "fourth", "fifth"]
    seqs = list(Event.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert verify_chain() == (len(seqs), None)


def test_a_batch_that_fails_leaves_no_event(alice):
    from django.db import transaction

    from bastion.audit.services import batched, record

    before = Event.objects.count()
    with pytest.raises(ValueError), transaction.atomic(), batched():
        record("policy.name.prohibited", actor=Actor.operator(), project_name="gone")
        raise ValueError("the change failed")
    assert Event.objects.count() == before
    with transaction.atomic(), batched():  # and the next batch starts empty
        record("policy.name.prohibited", actor=Actor.operator(), project_name="kept")
    assert list(Event.objects.filter(seq__gt=before).values_list("project_name", flat=True)) == [
        "kept"
    ]
    assert verify_chain()[1] is None
