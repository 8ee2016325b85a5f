"""Every upload path locks the token's row before the audit chain head. Two transactions that
lock them in opposite orders deadlock on PostgreSQL: an identical re-upload from an address new
to the token (its event appended at once, then the token's row) raced the token's first upload
(the token's row, then the events at the end) and one of them got a 503."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from bastion.audit.models import Event
from bastion.tokens.models import ApiToken
from tests.integration.conftest import basic
from tests.integration.uploads.test_storage_failures import _wheel
from tests.integration.uploads.test_upload_endpoint import form_for

pytestmark = pytest.mark.django_db


def _locks(queries: list[dict[str, str]]) -> list[str]:
    """The statements that lock the token's row or the chain head, in the order they ran."""
    order = []
    for query in queries:
        sql = query["sql"].lstrip()
        if sql.startswith("UPDATE") and ApiToken._meta.db_table in sql:
            order.append("token")
        elif sql.startswith("SELECT") and "audit_chain_head" in sql:
            order.append("chain head")
    return order


@pytest.mark.parametrize("path", ["first upload", "identical re-upload"])
def test_the_token_row_is_locked_before_the_audit_chain_head(path, alice, alice_token, tmp_path):
    wheel = _wheel(tmp_path, "demo", "1.0")
    if path == "identical re-upload":  # stored from another address first
        first = Client(REMOTE_ADDR="192.0.2.1").post(
            "/legacy/", data=form_for(wheel), HTTP_AUTHORIZATION=basic(alice_token)
        )
        assert first.status_code == 200
    events = Event.objects.filter(kind="token.used-from-new-address").count()
    with CaptureQueriesContext(connection) as captured:
        response = Client(REMOTE_ADDR="198.51.100.7").post(
            "/legacy/", data=form_for(wheel), HTTP_AUTHORIZATION=basic(alice_token)
        )
    assert response.status_code == 200, response.content
    # The address is new to the token: its event is appended, so the chain head is locked.
    assert Event.objects.filter(kind="token.used-from-new-address").count() == events + 1
    locks = _locks(captured.captured_queries)
    assert locks.index("token") < locks.index("chain head"), locks
