"""People and a project shared by the manage and yank/delete tests."""

from __future__ import annotations

import pytest

from bastion.projects.models import Project
from tests.integration.accounts.conftest import verified_user
from tests.integration.uploads.test_upload_endpoint import upload
from tests.unit.core.builders import make_wheel

PASSWORD = "correct horse battery staple 9"


@pytest.fixture
def olga(db):
    return verified_user("olga", PASSWORD)


@pytest.fixture
def bob(db):
    return verified_user("bob", PASSWORD)


@pytest.fixture
def eve(db):
    return verified_user("eve", PASSWORD)


@pytest.fixture
def demo(client, olga, make_token, tmp_path) -> Project:
    """A project ``demo`` with release 1.0 (a wheel), created by olga's upload: its Owner."""
    response = upload(client, make_wheel(tmp_path, name="demo", version="1.0"), make_token(olga))
    assert response.status_code == 200, response.content
    return Project.objects.get(normalized_name="demo")
