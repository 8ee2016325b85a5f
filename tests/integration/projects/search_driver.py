"""Driver for ``test_search_on_postgresql``: run as
``python -m tests.integration.projects.search_driver`` with BASTION_DATABASE_URL naming an
empty PostgreSQL database. Migrates, creates projects through the ORM (the triggers fill the
index), queries ``search_projects`` and prints one JSON line of findings.
"""

from __future__ import annotations

import json
import os
import tempfile

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bastion.settings")
os.environ.setdefault("BASTION_DATA_DIR", tempfile.mkdtemp(prefix="bastion-search-driver-"))

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from bastion.core.names import normalize_name  # noqa: E402
from bastion.projects.models import Project, ProjectStatus, Release  # noqa: E402
from bastion.projects.search import search_projects  # noqa: E402

HOSTILE = ['"', "*", "AND", "(", "x" * 10_240, "日本語", "foo:* & !bar | (baz", "'\\", "-"]


def make(name: str, summary: str = "", version: str = "1.0") -> Project:
    project = Project.objects.create(name=name, normalized_name=normalize_name(name))
    if summary:
        Release.objects.create(
            project=project, version=version, canonical_version=version, summary=summary
        )
    return project


def names(query: str, **kwargs: int) -> list[str]:
    return [hit.name for hit in search_projects(query, **kwargs).hits]


def main() -> None:
    assert connection.vendor == "postgresql", connection.vendor
    call_command("migrate", verbosity=0)
    found: dict[str, object] = {}
    make("requests-oauth", "OAuth for requests")
    make("http-client", "Like requests, but smaller")
    make("requests", "HTTP for humans")
    make("Requests_Toolbelt", "Utilities for requests")
    found["ranking"] = names("requests")
    make("django", "The web framework")
    make("djangorestframework", "REST APIs")
    found["prefix"] = names("djan")
    make("alpha", "A fast JSON parser")
    make("beta", "A slow JSON parser")
    found["summary"] = names("fast json")
    thing = make("thing", "old words")
    Release.objects.create(project=thing, version="2.0", canonical_version="2", summary="new words")
    found["newest_summary"] = {"old": names("old"), "new": names("new")}
    make("hidden-thing", "secret")
    Project.objects.filter(name="hidden-thing").update(status=ProjectStatus.QUARANTINED)
    found["quarantined"] = search_projects("hidden").total
    for number in range(45):
        make(f"pkg-{number:03d}", "paged project")
    found["pages"] = [len(search_projects("paged", page=page).hits) for page in (1, 2, 3)]
    for query in HOSTILE:
        search_projects(query)
    found["hostile"] = "ok"
    # Django's flush (TransactionTestCase) truncates the tables: the index follows.
    call_command("flush", interactive=False, verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM projects_search")
        found["after_flush"] = cursor.fetchone()[0]
    print(json.dumps(found))


if __name__ == "__main__":
    main()
