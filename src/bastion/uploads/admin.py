"""Operators manage the names no new project may take (on top of the built-in list)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from bastion.actors import Actor
from bastion.uploads.models import ProhibitedName
from bastion.uploads.services import allow_name, prohibit_name


@admin.register(ProhibitedName)
class ProhibitedNameAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("normalized_name", "comment", "created", "created_by")
    search_fields = ("normalized_name",)
    fields = ("normalized_name", "comment")
    actions = ("allow_names",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("normalized_name", "comment") if obj is not None else ()

    def save_model(
        self, request: HttpRequest, obj: ProhibitedName, form: Any, change: bool
    ) -> None:
        if change:
            return
        row = prohibit_name(
            actor=Actor.from_request(request, user=request.user),  # type: ignore[arg-type]
            name=obj.normalized_name,
            comment=obj.comment,
            now=timezone.now(),
        )
        obj.pk = row.pk

    def delete_model(self, request: HttpRequest, obj: ProhibitedName) -> None:
        allow_name(
            actor=Actor.from_request(request, user=request.user),  # type: ignore[arg-type]
            name=obj.normalized_name,
            now=timezone.now(),
        )

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ProhibitedName]) -> None:
        for obj in queryset:
            self.delete_model(request, obj)

    @admin.action(description="Allow the selected names again")
    def allow_names(self, request: HttpRequest, queryset: QuerySet[ProhibitedName]) -> None:
        self.delete_queryset(request, queryset)
