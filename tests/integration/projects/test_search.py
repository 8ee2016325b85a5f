"""Search at /search/?q=: ranking, pagination, the index kept by triggers, hostile queries.

On SQLite (the default test database) the index is FTS5; one test runs the same checks on
PostgreSQL in a subprocess (search_driver.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bastion.projects.models import Project, ProjectStatus, Release
from bastion.projects.search import PER_PAGE, search_projects, search_terms

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[3]


def make(name: str, summary: str = "", *versions: str) -> Project:
    from bastion.core.names import normalize_name

    project = Project.objects.create(name=name, normalized_name=normalize_name(name))
    for number, version in enumerate(versions or (("1.0",) if summary else ())):
        Release.objects.create(
            project=project, version=version, canonical_version=f"{number}", summary=summary
        )
    return project


def names(query: str, **kwargs) -> list[str]:
    return [hit.name for hit in search_projects(query, **kwargs).hits]


def test_ranking_exact_then_prefix_then_full_text():
    make("requests-oauth", "OAuth for requests")
    make("http-client", "Like requests, but smaller")
    make("requests", "HTTP for humans")
    make("Requests_Toolbelt", "Utilities for requests")
    found = names("requests")
    assert found[0] == "requests"
    assert set(found[1:3]) == {"requests-oauth", "Requests_Toolbelt"}
    assert found[3] == "http-client"
    # spelling of the name does not matter: normalized
    assert names("REQUESTS.toolbelt")[0] == "Requests_Toolbelt"
    assert names("requests toolbelt")[0] == "Requests_Toolbelt"


def test_summary_words_match_and_all_words_must_match():
    make("alpha", "A fast JSON parser")
    make("beta", "A slow JSON parser")
    make("gamma", "Unrelated")
    assert set(names("json parser")) == {"alpha", "beta"}
    assert names("fast json") == ["alpha"]
    assert names("json nothing") == []


def test_last_word_is_a_prefix():
    make("django", "The web framework")
    make("djangorestframework", "REST APIs")
    assert names("djan") == ["django", "djangorestframework"]
    assert names("web fram") == ["django"]


def test_summary_is_the_newest_releases_and_follows_changes():
    project = make("thing", "old words", "1.0")
    assert names("old") == ["thing"]
    release = Release.objects.create(
        project=project, version="2.0", canonical_version="2", summary="new words"
    )
    assert names("old") == [] and names("new") == ["thing"]
    release.summary = "renewed text"
    release.save()
    assert names("renewed") == ["thing"]
    release.delete()
    assert names("old") == ["thing"]
    Project.objects.filter(pk=project.pk).update(name="widget")
    assert names("widget") == ["widget"] and names("thing") == []
    project.delete()
    assert names("old") == []


def test_quarantined_projects_are_not_found():
    make("hidden-thing", "secret")
    Project.objects.update(status=ProjectStatus.QUARANTINED)
    assert search_projects("hidden").total == 0
    Project.objects.update(status=ProjectStatus.ARCHIVED)
    assert names("hidden") == ["hidden-thing"]


def test_pagination():
    for number in range(PER_PAGE * 2 + 5):
        make(f"pkg-{number:03d}", "paged project")
    first = search_projects("paged", page=1)
    third = search_projects("paged", page=3)
    assert first.total == PER_PAGE * 2 + 5 and first.pages == 3
    assert len(first.hits) == PER_PAGE and len(third.hits) == 5
    seen = [hit.name for page in (1, 2, 3) for hit in search_projects("paged", page=page).hits]
    assert len(set(seen)) == len(seen) == first.total
    assert search_projects("paged", page=99).page == 3  # clamped to the last page
    assert search_projects("paged", page=-4).page == 1


@pytest.mark.parametrize(
    "query",
    [
        '"',
        "*",
        "AND",
        "OR NOT",
        "(",
        ")",
        "NEAR(a b)",
        "name:foo",
        "^foo",
        "a + b - c",
        "'; DROP TABLE projects_project; --",
        "\\",
        "%_%",
        "x" * 10_240,
        "é" * 5000,
        "日本語のパッケージ",
        "\x00\x01",
        "🐍 python",
        "-",
        "",
        "   ",
        "foo:* & !bar | (baz",
    ],
)
def test_hostile_queries_never_fail(client, query):
    make("foo", "python package")
    result = search_projects(query)
    assert result.total >= 0
    response = client.get("/search/", {"q": query})
    assert response.status_code == 200
    assert response.content.count(b"<h1") == 1


def test_keywords_are_words_not_operators():
    make("and-or", "boolean helpers")
    make("other", "unrelated")
    assert names("AND") == ["and-or"]
    assert names("and or") == ["and-or"]
    assert names("NOT") == []


def test_unicode_summary_words():
    make("cafe-tools", "Outils pour le café")
    assert names("café") == ["cafe-tools"]
    assert names("cafe") == ["cafe-tools"]


def test_search_terms_are_bounded():
    terms = search_terms(" ".join(["word"] * 100) + " " + "y" * 500)
    assert len(terms) <= 8
    assert all(len(term) <= 64 for term in terms)


def test_search_page_renders_results_and_pagination(client):
    for number in range(PER_PAGE + 1):
        make(f"page-{number:02d}", "listed item")
    response = client.get("/search/", {"q": "listed", "page": "2"})
    page = response.content.decode()
    assert response.status_code == 200
    assert "21 projects match “listed”; 21 to 21 shown." in page
    assert 'href="/project/page-20/"' in page or 'href="/project/page-00/"' in page
    assert 'rel="prev"' in page and 'rel="next"' not in page
    assert 'aria-current="page"' in page
    assert client.get("/search/", {"q": "listed", "page": "zzz"}).status_code == 200
    assert "No project matches" in client.get("/search/", {"q": "absent"}).content.decode()
    assert client.get("/search/").status_code == 200


def test_search_query_count_is_bounded(client, django_assert_max_num_queries):
    for number in range(60):
        make(f"many-{number:02d}", "counted thing", "1.0", "2.0", "3.0")
    with django_assert_max_num_queries(2):
        assert client.get("/search/", {"q": "counted"}).status_code == 200


@pytest.mark.postgres
def test_search_on_postgresql():
    from tests.pg import temporary_database

    with temporary_database("bastion_search") as url:
        env = dict(os.environ)
        env.pop("DJANGO_SETTINGS_MODULE", None)
        env["BASTION_DATABASE_URL"] = url
        env["BASTION_SECRET_KEY"] = "test-secret-key-" + "x" * 40
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
        done = subprocess.run(
            [sys.executable, "-m", "tests.integration.projects.search_driver"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["ranking"][0] == "requests"
    assert set(results["ranking"][1:3]) == {"requests-oauth", "Requests_Toolbelt"}
    assert results["ranking"][3] == "http-client"
    assert results["prefix"] == ["django", "djangorestframework"]
    assert results["summary"] == ["alpha"]
    assert results["newest_summary"] == {"old": [], "new": ["thing"]}
    assert results["quarantined"] == 0
    assert results["pages"] == [20, 20, 5]
    assert results["hostile"] == "ok"
    assert results["after_flush"] == 0


def test_count_stops_at_the_cap(client, monkeypatch):
    import bastion.projects.search as search

    monkeypatch.setattr(search, "MAX_COUNT", 30)
    for number in range(45):
        make(f"capped-{number:02d}", "capped item")
    result = search_projects("capped")
    assert result.total_is_capped and result.pages == 2
    assert len(search_projects("capped", page=2).hits) == PER_PAGE
    assert search_projects("capped", page=3).page == 2
    assert "More than 30 projects match" in client.get("/search/", {"q": "capped"}).content.decode()
