"""The public pages: home, project and release pages, user pages.

Projects come in through the real upload endpoint (so the audit trail names the token), except
for the query-count test, which makes many releases and files as ORM rows.
"""

from __future__ import annotations

import hashlib
import re

import pytest

from bastion.accounts.services import create_user
from bastion.actors import Actor
from bastion.projects.models import File, Project, ProjectStatus, Release, Role, RoleName
from tests.integration.uploads.test_upload_endpoint import upload
from tests.unit.core.builders import make_sdist, make_wheel

pytestmark = pytest.mark.django_db

README = """# Demo

Some **bold** text.

<script>alert("owned")</script>

[click](javascript:alert(1))

```python
print("code")
```
"""


def wheel_with_readme(tmp_path, name="demo", version="1.0", readme=README, **overrides):
    from tests.unit.core.builders import metadata_bytes

    headers = {
        "Description-Content-Type": "text/markdown",
        "Project-URL": ["Source, https://example.org/src"],
        "Requires-Python": ">=3.9",
        "License-Expression": "MIT OR Apache-2.0",
        "Summary": f"The {name} summary",
    }
    headers.update(overrides)
    return make_wheel(
        tmp_path,
        name=name,
        version=version,
        metadata=metadata_bytes(name, version, headers, body=readme),
    )


@pytest.fixture
def published(client, alice, make_token, tmp_path):
    token = make_token(alice, name="ci-publish")
    wheel = wheel_with_readme(tmp_path)
    assert upload(client, wheel, token).status_code == 200
    return wheel


def text_of(response) -> str:
    return response.content.decode()


def test_project_page_shows_every_part(client, published, alice):
    page = text_of(client.get("/project/demo/"))
    assert page.count("<h1") == 1
    assert "<strong>bold</strong>" in page
    # the description's own headings sit below the page's, without empty permalinks
    assert re.search(r"<h3[^>]*>Demo</h3>", page)
    assert "></a>" not in page
    # sanitized description: no script element, no javascript: link
    assert "<script>alert" not in page
    assert 'href="javascript:' not in page
    # a code block's language is data, not the page's human language (axe: valid-lang)
    assert '<pre data-lang="python"' in page and "<pre lang=" not in page
    assert '<a href="https://example.org/src" rel="nofollow noopener">Source</a>' in page
    assert "&gt;=3.9" in page
    assert "MIT OR Apache-2.0" in page
    # files: size, sha256, upload time, the uploader and the token's name
    file = File.objects.get()
    assert file.sha256 in page
    assert file.filename in page
    assert re.search(r"\d+(\.\d)?\xa0(bytes|KB)", page)
    assert '<a href="/user/alice/">alice</a>' in page
    assert "ci-publish" in page
    assert file.upload_time.strftime("%Y-%m-%d") in page
    # maintainers and history
    assert "(Owner)" in page
    assert 'href="/project/demo/1.0/"' in page


def test_only_http_project_urls_are_links(client, published):
    # upload validation refuses other schemes; rows from elsewhere (imports, old data) may not
    release = Release.objects.get()
    release.metadata["project_urls"] = [
        ["Source", "https://example.org/src"],
        ["Tracker", "javascript:alert(1)"],
        "Chat, ftp://example.org/chat",
        ["Docs", "//example.org/protocol-relative"],
    ]
    release.metadata["home_page"] = "http://example.org/home"
    release.save()
    page = text_of(client.get("/project/demo/"))
    assert '<a href="https://example.org/src" rel="nofollow noopener">Source</a>' in page
    assert '<a href="http://example.org/home" rel="nofollow noopener">Homepage</a>' in page
    assert 'Tracker: <span class="muted">javascript:alert(1)</span>' in page
    assert 'href="javascript:' not in page
    assert 'href="ftp://' not in page
    assert 'href="//example.org' not in page


def test_install_commands_use_the_base_url_not_the_host(client, published):
    page = text_of(client.get("/project/demo/", HTTP_HOST="localhost:8000"))
    assert "pip install --index-url http://127.0.0.1:8000/simple/ demo" in page
    assert "uv add --index http://127.0.0.1:8000/simple/ demo" in page
    assert "localhost:8000" not in page
    release = text_of(client.get("/project/demo/1.0/", HTTP_HOST="localhost:8000"))
    assert "pip install --index-url http://127.0.0.1:8000/simple/ demo==1.0" in release


def test_release_page_yanked_marker_and_history(client, alice, make_token, tmp_path):
    token = make_token(alice, name="ci")
    for version in ("1.0", "2.0", "1.5"):
        directory = tmp_path / version
        directory.mkdir()
        assert (
            upload(client, wheel_with_readme(directory, version=version), token).status_code == 200
        )
    Release.objects.filter(version="2.0").update(yanked=True, yanked_reason="broken import")
    page = text_of(client.get("/project/demo/"))
    # PyPI's choice: the highest non-yanked release is the one shown
    assert re.search(r"<h1>demo <span class=\"version\">1.5</span></h1>", page)
    history = page[page.index("Release history") :]
    assert history.index(">2.0<") < history.index(">1.5<") < history.index(">1.0<")
    assert "broken import" in history
    yanked = text_of(client.get("/project/demo/2.0/"))
    assert "This release is yanked." in yanked
    assert "Reason: broken import" in yanked
    assert 'aria-current="page">2.0<' in yanked


def test_release_urls_redirect_to_their_own_spelling_and_unknown_is_404(client, published):
    assert client.get("/project/Demo/1.0.0/")["Location"] == "/project/demo/1.0/"
    assert client.get("/project/demo/1.0.0/").status_code == 301
    assert client.get("/project/demo/9.9/").status_code == 404
    assert client.get("/project/demo/not a version/").status_code == 404
    assert client.get("/project/nothing/1.0/").status_code == 404
    assert client.get("/project/Demo/")["Location"] == "/project/demo/"


def test_quarantined_is_404_and_archived_has_a_notice(client, published):
    Project.objects.update(status=ProjectStatus.ARCHIVED, status_reason="Moved elsewhere.")
    page = text_of(client.get("/project/demo/"))
    assert "This project is archived." in page and "Moved elsewhere." in page
    Project.objects.update(status=ProjectStatus.QUARANTINED)
    assert client.get("/project/demo/").status_code == 404
    assert client.get("/project/demo/1.0/").status_code == 404
    assert "demo" not in text_of(client.get("/")).split("Recent releases")[1]
    assert client.get("/user/alice/").content.count(b"/project/demo/") == 0


def test_rst_plain_and_broken_descriptions(client, alice, make_token, tmp_path):
    token = make_token(alice)
    cases = {
        "rst-one": ("Title\n=====\n\nSome *emphasis*.\n", "text/x-rst", "<em>emphasis</em>"),
        "plain-one": ("a <b>c</b>\n  indented", "text/plain", "a &lt;b&gt;c&lt;/b&gt;"),
    }
    for name, (readme, content_type, expected) in cases.items():
        directory = tmp_path / name
        directory.mkdir()
        wheel = wheel_with_readme(
            directory, name=name, readme=readme, **{"Description-Content-Type": content_type}
        )
        assert upload(client, wheel, token).status_code == 200, name
        assert expected in text_of(client.get(f"/project/{name}/")), name


def test_broken_rst_stored_before_validation_falls_back_to_text(client, published):
    Release.objects.update(metadata={"description": ".. raw:: html\n\n   <script>x()</script>\n"})
    page = text_of(client.get("/project/demo/"))
    assert "<script>x()" not in page
    assert "&lt;script&gt;x()" in page


def test_home_lists_recent_releases_newest_first_and_the_count(client, alice, make_token, tmp_path):
    token = make_token(alice)
    for name in ("first-project", "second-project"):
        directory = tmp_path / name
        directory.mkdir()
        assert upload(client, wheel_with_readme(directory, name=name), token).status_code == 200
    page = text_of(client.get("/"))
    assert page.count("<h1") == 1
    assert "2 projects on this index." in page
    assert page.index("second-project") < page.index("first-project")
    assert 'for="home-search"' in page


def test_user_page_lists_projects_with_roles_and_no_email(client, published, alice, bob):
    Role.objects.create(user=bob, project=Project.objects.get(), role_name=RoleName.MAINTAINER)
    page = text_of(client.get("/user/bob/"))
    assert "<h1>bob</h1>" in page
    assert '<a href="/project/demo/">demo</a>' in page
    assert "Maintainer" in page
    assert "The demo summary" in page
    assert "@example.com" not in page
    assert "@example.com" not in text_of(client.get("/project/demo/"))
    assert client.get("/user/nobody/").status_code == 404
    bob.is_active = False
    bob.save()
    assert client.get("/user/bob/").status_code == 404
    assert "/user/bob/" not in text_of(client.get("/project/demo/"))


def test_a_project_without_release(client):
    Project.objects.create(name="Empty", normalized_name="empty")
    page = text_of(client.get("/project/empty/"))
    assert "This project has no release." in page


def _make_project(releases: int, files_per_release: int) -> Project:
    user = create_user(
        actor=Actor.operator(),
        username=f"owner{releases}",
        email=f"o{releases}@example.org",
        password=None,
    )
    name = f"many-{releases}"
    project = Project.objects.create(name=name, normalized_name=name)
    Role.objects.create(user=user, project=project, role_name=RoleName.OWNER)
    for number in range(releases):
        release = Release.objects.create(
            project=project,
            version=f"{number}.0",
            canonical_version=str(number),
            summary="many releases",
            metadata={"description": "# Hello", "description_content_type": "text/markdown"},
            yanked=number % 3 == 1,
            yanked_reason="bad" if number % 3 == 1 else "",
        )
        for index in range(files_per_release):
            filename = f"many_{releases}-{number}.0-py3-none-any.{index}.whl"
            digest = hashlib.sha256(filename.encode()).hexdigest()
            File.objects.create(
                project=project,
                release=release,
                filename=filename,
                packagetype="bdist_wheel",
                python_version="py3",
                size=1234,
                sha256=digest,
                blake2_256=digest,
                md5=digest[:32],
                storage_key=f"{digest[:2]}/{digest[2:4]}/{digest[4:]}/{filename}",
                uploaded_by=user,
            )
    return project


def _queries(client, url: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(captured)


@pytest.mark.parametrize("path", ["/project/{name}/", "/project/{name}/0.0/"])
def test_query_count_does_not_grow_with_releases_and_files(
    client, django_assert_max_num_queries, path
):
    small = _make_project(1, 5)
    large = _make_project(50, 5)
    few = _queries(client, path.format(name=small.normalized_name))
    many = _queries(client, path.format(name=large.normalized_name))
    assert few == many
    with django_assert_max_num_queries(6):
        assert client.get(path.format(name=large.normalized_name)).status_code == 200


def test_home_and_user_page_query_counts_are_bounded(client, django_assert_max_num_queries):
    _make_project(1, 1)
    _make_project(30, 2)
    with django_assert_max_num_queries(3):
        assert client.get("/").status_code == 200
    with django_assert_max_num_queries(3):
        assert client.get("/user/owner30/").status_code == 200


def test_an_sdist_is_marked_as_source(client, alice, make_token, tmp_path):
    token = make_token(alice)
    assert (
        upload(client, make_sdist(tmp_path, name="demo", version="1.0"), token).status_code == 200
    )
    assert ">source<" in text_of(client.get("/project/demo/"))
