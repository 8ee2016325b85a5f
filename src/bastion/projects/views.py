"""The public pages: home, search, project and release pages, user pages.

Each page costs a fixed number of queries whatever the number of releases and files.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.shortcuts import render

from bastion.core.names import normalize_name
from bastion.core.versions import InvalidVersionText, canonical_version, parse_version
from bastion.index.rendering import latest_release
from bastion.projects import pages
from bastion.projects.models import Project, ProjectStatus, Release
from bastion.projects.queries import (
    maintainers_of,
    projects_of_user,
    public_user,
    recent_releases,
    release_files,
    release_history,
    release_with_metadata,
    uploaders_of,
    visible_projects,
)
from bastion.projects.search import search_projects

RECENT_RELEASES = 20


def home(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "bastion/home.html",
        {
            "recent": recent_releases(RECENT_RELEASES),
            "project_count": visible_projects().count(),
            "simple_url": pages.simple_url(),
        },
    )


def search(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    try:
        page = int(request.GET.get("page", "1"))
    except ValueError:
        page = 1
    result = search_projects(query, page=page)
    return render(
        request,
        "bastion/search.html",
        {"query": query[:200], "result": result, "page_numbers": _page_numbers(result)},
    )


def _page_numbers(result) -> list[int]:  # type: ignore[no-untyped-def]
    """Page links around the current one: 1, …, n-2 … n+2, …, last (0 marks a gap)."""
    shown = {1, result.pages, *range(result.page - 2, result.page + 3)}
    numbers: list[int] = []
    for number in sorted(n for n in shown if 1 <= n <= result.pages):
        if numbers and number > numbers[-1] + 1:
            numbers.append(0)
        numbers.append(number)
    return numbers


def project_detail(request: HttpRequest, project: str) -> HttpResponse:
    normalized = normalize_name(project)
    if normalized != project:
        return HttpResponsePermanentRedirect(f"/project/{normalized}/")
    found = _listed_project(normalized)
    history = release_history(found)
    shown = latest_release(history)
    return _render_project(request, found, history, shown)


def release_detail(request: HttpRequest, project: str, version: str) -> HttpResponse:
    normalized = normalize_name(project)
    try:
        wanted = canonical_version(parse_version(version))
    except InvalidVersionText:
        raise Http404("no such release") from None
    found = _listed_project(normalized)
    history = release_history(found)
    shown = next((r for r in history if r.canonical_version == wanted), None)
    if shown is None:
        raise Http404("no such release")
    if normalized != project or shown.version != version:
        return HttpResponsePermanentRedirect(f"/project/{normalized}/{shown.version}/")
    return _render_project(request, found, history, shown, is_release_page=True)


def _listed_project(normalized: str) -> Project:
    found = Project.objects.filter(normalized_name=normalized).first()
    if found is None or found.status == ProjectStatus.QUARANTINED:
        raise Http404("no such project")
    return found


def _render_project(
    request: HttpRequest,
    project: Project,
    history: list[Release],
    shown: Release | None,
    *,
    is_release_page: bool = False,
) -> HttpResponse:
    context: dict[str, object] = {
        "project": project,
        "history": history,
        "release": shown,
        "is_release_page": is_release_page,
        "maintainers": maintainers_of(project),
        "install": pages.install_commands(
            project.normalized_name, shown.version if is_release_page and shown else None
        ),
    }
    if shown is not None:
        shown = release_with_metadata(shown)
        metadata = shown.metadata or {}
        files = release_files(shown)
        uploaders = uploaders_of(project, files)
        context.update(
            release=shown,
            files=[(file, uploaders.get(file.filename)) for file in files],
            description=pages.render_description(
                str(metadata.get("description") or ""),
                str(metadata.get("description_content_type") or ""),
            ),
            urls=pages.project_urls(metadata),
            requires_python=shown.requires_python or metadata.get("requires_python") or "",
            license_expression=metadata.get("license_expression") or "",
            license=metadata.get("license") or "",
        )
    template = "bastion/release.html" if is_release_page else "bastion/project.html"
    return render(request, template, context)


def user_detail(request: HttpRequest, username: str) -> HttpResponse:
    account = public_user(username)
    if account is None:
        raise Http404("no such user")
    return render(
        request,
        "bastion/user.html",
        {"account": account, "roles": projects_of_user(account)},
    )
