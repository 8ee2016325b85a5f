"""Operators' view of accounts: find users, disable or re-enable them (through the service).

Nothing is edited through the admin's forms: every change is an action calling a service that
records its audit event. Accounts are created with ``bastion user create`` or by sign-up.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from bastion.accounts.models import User
from bastion.accounts.services import set_upload_limits_exempt, set_user_active
from bastion.actors import Actor


@admin.register(User)
class UserAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "username", "email", "is_active", "is_superuser", "upload_limits_exempt", "last_login"
    )
    list_filter = ("is_active", "is_superuser")
    search_fields = ("username", "email")
    ordering = ("username",)
    fields = ("username", "email", "email_verified", "is_active", "is_superuser",
              "upload_limits_exempt", "date_joined", "last_login")
    readonly_fields = fields
    actions = ("disable_accounts", "enable_accounts", "exempt_from_limits", "restore_limits")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Disable the selected accounts (sessions and API tokens stop)")
    def disable_accounts(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._set_active(request, queryset, active=False)

    @admin.action(description="Re-enable the selected accounts")
    def enable_accounts(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._set_active(request, queryset, active=True)

    @admin.action(description="Exempt from the upload limits (trusted CI accounts)")
    def exempt_from_limits(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._set_exempt(request, queryset, exempt=True)

    @admin.action(description="Apply the upload limits again")
    def restore_limits(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._set_exempt(request, queryset, exempt=False)

    def _set_exempt(self, request: HttpRequest, queryset: QuerySet[User], *, exempt: bool) -> None:
        actor = Actor.from_request(request, user=request.user)  # type: ignore[arg-type]
        for user in queryset:
            set_upload_limits_exempt(actor=actor, user=user, exempt=exempt)
        self.message_user(request, f"{queryset.count()} account(s) updated.")

    def _set_active(self, request: HttpRequest, queryset: QuerySet[User], *, active: bool) -> None:
        actor = Actor.from_request(request, user=request.user)  # type: ignore[arg-type]
        count = 0
        for user in queryset:
            if not active and user.pk == request.user.pk:
                self.message_user(request, "You cannot disable your own account.", messages.ERROR)
                continue
            set_user_active(actor=actor, user=user, active=active, reason="by an operator")
            count += 1
        self.message_user(request, f"{count} account(s) {'enabled' if active else 'disabled'}.")
