"""Security history pages: a user's own events, a project's events, everything for the admin."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext

from bastion.audit.chain import timestamp
from bastion.audit.models import Event
from bastion.audit.queries import visible_ip
from bastion.core.names import normalize_name
from bastion.projects.models import Project, RoleName
from bastion.projects.queries import role_of

PAGE_SIZE = 50
KIND_FILTERS = ("account", "token", "project", "release", "file", "upload")


def _filtered(request: HttpRequest, events: QuerySet[Event]) -> tuple[QuerySet[Event], str]:
    kind = request.GET.get("kind", "")
    if kind in KIND_FILTERS:
        events = events.filter(kind__startswith=kind + ".")
    else:
        kind = ""
    return events.order_by("-seq"), kind


def _rows(request: HttpRequest, events: list[Event]) -> list[dict[str, Any]]:
    viewer = request.user
    is_admin = bool(getattr(viewer, "is_superuser", False))
    return [
        {
            "event": event,
            "ip": visible_ip(event, viewer_id=viewer.pk, is_admin=is_admin),
        }
        for event in events
    ]


def _page(request: HttpRequest, events: QuerySet[Event], title: str, **extra: Any) -> HttpResponse:
    events, kind = _filtered(request, events)
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "audit/history.html",
        {
            "title": title,
            "page": page,
            "rows": _rows(request, list(page.object_list)),
            "kind": kind,
            "kinds": KIND_FILTERS,
            **extra,
        },
    )


@login_required
def account_history(request: HttpRequest) -> HttpResponse:
    me = request.user.pk
    events = Event.objects.filter(Q(subject_user_id=me) | Q(actor_user_id=me))
    return _page(request, events, gettext("Your security history"))


def _project_for(request: HttpRequest, name: str, *, owners_only: bool) -> Project:
    project = Project.objects.filter(normalized_name=normalize_name(name)).first()
    if project is None:
        raise Http404("no such project")
    if request.user.is_superuser:
        return project
    role = role_of(request.user, project)
    allowed = {RoleName.OWNER} if owners_only else {RoleName.OWNER, RoleName.MAINTAINER}
    if role not in allowed:
        raise Http404("no such project")  # do not reveal the history to outsiders
    return project


def _project_events(project: Project) -> QuerySet[Event]:
    return Event.objects.filter(Q(project_id=project.pk) | Q(project_name=project.normalized_name))


@login_required
def project_history(request: HttpRequest, project: str) -> HttpResponse:
    found = _project_for(request, project, owners_only=False)
    return _page(
        request,
        _project_events(found),
        gettext("Security history of %(project)s") % {"project": found.name},
        project=found,
    )


@login_required
def project_history_feed(request: HttpRequest, project: str) -> JsonResponse:
    found = _project_for(request, project, owners_only=True)
    events, _kind = _filtered(request, _project_events(found))
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    is_admin = request.user.is_superuser
    body = {
        "project": found.normalized_name,
        "page": page.number,
        "pages": page.paginator.num_pages,
        "events": [
            {
                "seq": event.seq,
                "kind": event.kind,
                "created": timestamp(event.created),
                "actor": event.actor_username or None,
                "credential": event.credential,
                "token_id": event.token_id or None,
                "token_name": event.token_name or None,
                "ip": visible_ip(event, viewer_id=request.user.pk, is_admin=is_admin) or None,
                "user_agent": event.user_agent or None,
                "subject_user": event.subject_username or None,
                "payload": event.payload,
                "hash": event.hash,
            }
            for event in page.object_list
        ],
    }
    return JsonResponse(body, headers={"Cache-Control": "private, no-store"})


@login_required
def admin_history(request: HttpRequest) -> HttpResponse:
    if not request.user.is_superuser:
        raise Http404("not found")
    return _page(request, Event.objects.all(), gettext("All security events"))
