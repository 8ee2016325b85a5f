"""Operators' view of projects: find them and set their PEP 792 status through the service.

Statuses change only through actions (``set_project_status`` records the audit event and
updates the simple API at once); nothing is edited through the admin's forms.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from bastion.actors import Actor
from bastion.projects.errors import ProjectError
from bastion.projects.models import Project, ProjectStatus
from bastion.projects.services import set_project_status


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "normalized_name", "status", "created", "serial")
    list_filter = ("status",)
    search_fields = ("normalized_name", "name")
    ordering = ("normalized_name",)
    fields = ("name", "normalized_name", "status", "status_reason", "created", "serial")
    readonly_fields = fields
    actions = ("quarantine", "archive", "make_active")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Quarantine (hidden from installers, uploads refused)")
    def quarantine(self, request: HttpRequest, queryset: QuerySet[Project]) -> None:
        self._set(request, queryset, ProjectStatus.QUARANTINED)

    @admin.action(description="Archive (read-only: uploads refused)")
    def archive(self, request: HttpRequest, queryset: QuerySet[Project]) -> None:
        self._set(request, queryset, ProjectStatus.ARCHIVED)

    @admin.action(description="Make active again")
    def make_active(self, request: HttpRequest, queryset: QuerySet[Project]) -> None:
        self._set(request, queryset, ProjectStatus.ACTIVE)

    def _set(self, request: HttpRequest, queryset: QuerySet[Project], status: str) -> None:
        actor = Actor.from_request(request, user=request.user)  # type: ignore[arg-type]
        changed = 0
        for project in queryset:
            try:
                changed += set_project_status(
                    actor=actor, project=project, status=status, reason="set by an operator"
                )
            except ProjectError as exc:
                self.message_user(request, f"{project.name}: {exc}", messages.ERROR)
        self.message_user(request, f"{changed} project(s) now {status}.")
