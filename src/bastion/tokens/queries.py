"""Reads for the token pages: a user's tokens, and the projects a token may be scoped to."""

from __future__ import annotations

from uuid import UUID

from django.db.models import QuerySet

from bastion.accounts.models import User
from bastion.projects.models import Role
from bastion.projects.queries import UPLOAD_ROLES
from bastion.tokens.models import ApiToken


def tokens_of(user: User) -> QuerySet[ApiToken]:
    """The user's tokens, newest first (the key is never needed to list them)."""
    return ApiToken.objects.filter(user=user).defer("key").order_by("-created", "name")


def token_of(user: User, token_id: UUID) -> ApiToken | None:
    """One of the user's own tokens; None for another user's (never revealed)."""
    return ApiToken.objects.filter(user=user, pk=token_id).select_related("user").first()


def scopable_projects(user: User) -> list[tuple[str, str]]:
    """(normalized name, display name) of the projects the user uploads to (Owner, Maintainer)."""
    roles = (
        Role.objects.filter(user=user, role_name__in=UPLOAD_ROLES)
        .select_related("project")
        .order_by("project__normalized_name")
    )
    return [(role.project.normalized_name, role.project.name) for role in roles]
