"""Minimal web pages: the home page, search and a project page."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.shortcuts import render

from bastion.core.names import normalize_name
from bastion.index.rendering import latest_release, version_key
from bastion.projects.models import Project, ProjectStatus, Release, Role
from bastion.projects.queries import files_of, visible_projects


def _simple_url() -> str:
    """The index URL shown to users: BASTION_BASE_URL, never the request's Host header."""
    return f"{settings.BASTION.base_url}/simple/"


def home(request: HttpRequest) -> HttpResponse:
    projects = visible_projects().order_by("-serial")[:100]
    return render(
        request,
        "bastion/home.html",
        {
            "projects": projects,
            "project_count": visible_projects().count(),
            "simple_url": _simple_url(),
        },
    )


def search(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:200]
    projects = visible_projects().none()
    if query:
        projects = visible_projects().filter(normalized_name__contains=normalize_name(query))
    return render(
        request,
        "bastion/home.html",
        {
            "projects": projects.order_by("normalized_name")[:100],
            "project_count": projects.count(),
            "simple_url": _simple_url(),
            "query": query,
        },
    )


def project_detail(request: HttpRequest, project: str) -> HttpResponse:
    normalized = normalize_name(project)
    if normalized != project:
        return HttpResponsePermanentRedirect(f"/project/{normalized}/")
    found = Project.objects.filter(normalized_name=normalized).first()
    if found is None or found.status == ProjectStatus.QUARANTINED:
        raise Http404("no such project")
    releases = sorted(
        Release.objects.filter(project=found), key=lambda r: version_key(r.version), reverse=True
    )
    files = files_of(found)
    by_release = {r.pk: [f for f in files if f.release_id == r.pk] for r in releases}
    return render(
        request,
        "bastion/project.html",
        {
            "project": found,
            "latest": latest_release(releases),
            "releases": [(r, by_release[r.pk]) for r in releases],
            "simple_url": _simple_url(),
        },
    )


@login_required
def manage_projects(request: HttpRequest) -> HttpResponse:
    roles = Role.objects.filter(user=request.user).select_related("project")
    return render(
        request,
        "bastion/manage_projects.html",
        {"roles": roles.order_by("project__normalized_name")},
    )
