"""Pages for publishers under /manage/: projects, collaborators, releases, deletions.

Views parse the request, call one service (``bastion.projects.services``) and map its errors:
NotFound -> 404, NotAllowed -> 403, anything else back onto the form (400). A project is
visible here only to its Owners and Maintainers (404 for everyone else, like its history).
Deletions need a recent reauthentication (allauth's, ``ACCOUNT_REAUTHENTICATION_TIMEOUT``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from allauth.account.adapter import get_adapter
from allauth.account.internal.flows.reauthentication import did_recently_reauthenticate
from allauth.core.exceptions import ReauthenticationRequired
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from bastion.actors import Actor
from bastion.core.names import normalize_name
from bastion.core.versions import canonical_version, parse_version
from bastion.index.rendering import latest_release
from bastion.projects import services
from bastion.projects.errors import NotAllowed, NotFound, ProjectError
from bastion.projects.forms import (
    ChangeRoleForm,
    ConfirmForm,
    InviteForm,
    UsernameForm,
    YankForm,
)
from bastion.projects.models import File, Invitation, Project, Release, Role, RoleName
from bastion.projects.queries import release_history

log = logging.getLogger(__name__)
MANAGE_ROLES = (RoleName.OWNER, RoleName.MAINTAINER)


# --- helpers ---------------------------------------------------------------------------------


def _actor(request: HttpRequest) -> Actor:
    return Actor.from_request(request, user=request.user)  # type: ignore[arg-type]


def _managed(request: HttpRequest, name: str) -> tuple[Project, str]:
    """The project and the viewer's role on it; 404 unless they are an Owner or Maintainer."""
    project = Project.objects.filter(normalized_name=normalize_name(name)).first()
    if project is None:
        raise Http404("no such project")
    role = (
        Role.objects.filter(project=project, user=request.user)
        .values_list("role_name", flat=True)
        .first()
    )
    if role not in MANAGE_ROLES:
        raise Http404("no such project")
    return project, str(role)


def _release(project: Project, version: str) -> Release:
    try:
        canonical = canonical_version(parse_version(version))
    except ValueError:
        raise Http404("no such release") from None
    release = Release.objects.filter(project=project, canonical_version=canonical).first()
    if release is None:
        raise Http404("no such release")
    return release


def _raise_http(error: ProjectError) -> None:
    """NotFound and NotAllowed become 404 and 403; other errors are for the form."""
    if isinstance(error, NotFound) and error.field is None:
        raise Http404(error.message)
    if isinstance(error, NotAllowed):
        raise PermissionDenied(error.message)


def _attach(form: forms.Form, error: ProjectError) -> None:
    field = error.field if error.field in form.fields else None
    form.add_error(field, error.message)


def _require_recent_reauthentication(request: HttpRequest) -> None:
    """allauth asks for the password (or a second factor) again, then replays this request."""
    if not did_recently_reauthenticate(request):
        raise ReauthenticationRequired()


def _project_url(project: Project, suffix: str = "") -> str:
    return f"/manage/project/{project.normalized_name}/{suffix}"


def _release_url(project: Project, release: Release) -> str:
    return _project_url(project, f"release/{release.version}/")


def _see_other(url: str) -> HttpResponseRedirect:
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


# --- my projects and invitations -------------------------------------------------------------


@login_required
@require_GET
def my_projects(request: HttpRequest) -> HttpResponse:
    roles = list(
        Role.objects.filter(user=request.user)
        .select_related("project")
        .order_by("project__normalized_name")
    )
    projects = [role.project for role in roles]
    by_project: dict[int, list[Release]] = {project.pk: [] for project in projects}
    releases = (
        Release.objects.filter(project__in=projects).select_related("project").defer("metadata")
    )
    for release in releases:
        by_project[release.project.pk].append(release)
    rows = [
        {
            "role": role,
            "project": role.project,
            "latest": latest_release(by_project[role.project.pk]),
        }
        for role in roles
    ]
    pending = Invitation.objects.filter(user=request.user).count()
    return render(request, "bastion/manage/projects.html", {"rows": rows, "pending": pending})


@login_required
@require_GET
def invitations(request: HttpRequest) -> HttpResponse:
    pending = (
        Invitation.objects.filter(user=request.user)
        .select_related("project", "invited_by")
        .order_by("created")
    )
    return render(request, "bastion/manage/invitations.html", {"invitations": pending})


def _answer_invitation(request: HttpRequest, pk: int, *, accept: bool) -> HttpResponse:
    invitation = (
        Invitation.objects.filter(pk=pk, user=request.user).select_related("project").first()
    )
    if invitation is None:
        raise Http404("no such invitation")
    name = invitation.project.name
    try:
        if accept:
            services.accept_invitation(actor=_actor(request), invitation=invitation)
        else:
            services.decline_invitation(actor=_actor(request), invitation=invitation)
    except ProjectError as exc:
        _raise_http(exc)
        messages.error(request, exc.message)
        return _see_other("/manage/invitations/")
    if accept:
        messages.success(
            request, _("You are now a collaborator on %(project)s.") % {"project": name}
        )
        return _see_other(_project_url(invitation.project))
    messages.success(request, _("You declined the invitation to %(project)s.") % {"project": name})
    return _see_other("/manage/invitations/")


@login_required
@require_POST
def accept_invitation(request: HttpRequest, pk: int) -> HttpResponse:
    return _answer_invitation(request, pk, accept=True)


@login_required
@require_POST
def decline_invitation(request: HttpRequest, pk: int) -> HttpResponse:
    return _answer_invitation(request, pk, accept=False)


# --- a project -------------------------------------------------------------------------------


def _collaborators_of(project: Project) -> QuerySet[Role]:
    return (
        Role.objects.filter(project=project)
        .select_related("user")
        .order_by("role_name", "user__username")
    )


@login_required
@require_GET
def project_overview(request: HttpRequest, project: str) -> HttpResponse:
    found, role = _managed(request, project)
    return render(
        request,
        "bastion/manage/project.html",
        {
            "project": found,
            "role": role,
            "is_owner": role == RoleName.OWNER,
            "releases": release_history(found),
            "collaborators": _collaborators_of(found),
        },
    )


def _collaborators_page(
    request: HttpRequest,
    project: Project,
    role: str,
    *,
    invite_form: InviteForm | None = None,
    error: str | None = None,
    status: int = 200,
) -> HttpResponse:
    collaborators = [
        {
            "role": collaborator,
            "form": ChangeRoleForm(
                initial={"username": collaborator.user.username, "role": collaborator.role_name},
                auto_id=f"id_role_{collaborator.pk}_%s",
            ),
        }
        for collaborator in _collaborators_of(project)
    ]
    return render(
        request,
        "bastion/manage/collaborators.html",
        {
            "project": project,
            "role": role,
            "is_owner": role == RoleName.OWNER,
            "collaborators": collaborators,
            "invitations": Invitation.objects.filter(project=project)
            .select_related("user")
            .order_by("created"),
            "invite_form": invite_form or InviteForm(),
            "error": error,
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def collaborators(request: HttpRequest, project: str) -> HttpResponse:
    """The collaborators and pending invitations; POST invites someone (Owners)."""
    found, role = _managed(request, project)
    if request.method == "GET":
        return _collaborators_page(request, found, role)
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            invitation = services.invite_collaborator(
                actor=_actor(request),
                project=found,
                username=form.cleaned_data["username"],
                role_name=form.cleaned_data["role"],
            )
        except ProjectError as exc:
            _raise_http(exc)
            _attach(form, exc)
        else:
            _send_invitation_mail(request, invitation)
            messages.success(
                request,
                _("%(user)s is invited; the role is theirs once they accept.")
                % {"user": invitation.user.username},
            )
            return _see_other(_project_url(found, "collaborators/"))
    return _collaborators_page(request, found, role, invite_form=form, status=400)


def _send_invitation_mail(request: HttpRequest, invitation: Invitation) -> None:
    context = {
        "project": invitation.project.name,
        "role": invitation.role_name,
        "inviter": request.user.username,  # type: ignore[union-attr]
        "invitations_url": f"{settings.BASTION.base_url}/manage/invitations/",
    }
    try:
        get_adapter(request).send_notification_mail(
            "bastion/manage/email/invitation", invitation.user, context
        )
    except Exception:  # noqa: BLE001 - the invitation stands; it is listed on their page
        log.exception("could not send the invitation mail to user %s", invitation.user.pk)


def _collaborator_action(request: HttpRequest, project: str, action: str) -> HttpResponse:
    found, role = _managed(request, project)
    form: forms.Form = (
        ChangeRoleForm(request.POST) if action == "role" else UsernameForm(request.POST)
    )
    if not form.is_valid():
        return _collaborators_page(request, found, role, error=_("Invalid request."), status=400)
    username = form.cleaned_data["username"]
    actor = _actor(request)
    try:
        if action == "role":
            services.change_role(
                actor=actor, project=found, username=username, role_name=form.cleaned_data["role"]
            )
        elif action == "remove":
            services.remove_collaborator(actor=actor, project=found, username=username)
        else:
            services.revoke_invitation(actor=actor, project=found, username=username)
    except ProjectError as exc:
        _raise_http(exc)
        return _collaborators_page(request, found, role, error=exc.message, status=exc.status)
    if action == "remove" and username == request.user.username:  # type: ignore[union-attr]
        messages.success(request, _("You left %(project)s.") % {"project": found.name})
        return _see_other("/manage/projects/")
    done = {
        "role": _("The role of %(user)s was changed."),
        "remove": _("%(user)s was removed from the project."),
        "revoke": _("The invitation of %(user)s was revoked."),
    }[action]
    messages.success(request, done % {"user": username})
    return _see_other(_project_url(found, "collaborators/"))


@login_required
@require_POST
def change_role(request: HttpRequest, project: str) -> HttpResponse:
    return _collaborator_action(request, project, "role")


@login_required
@require_POST
def remove_collaborator(request: HttpRequest, project: str) -> HttpResponse:
    return _collaborator_action(request, project, "remove")


@login_required
@require_POST
def revoke_invitation(request: HttpRequest, project: str) -> HttpResponse:
    return _collaborator_action(request, project, "revoke")


# --- releases: yank, un-yank -----------------------------------------------------------------


def _release_page(
    request: HttpRequest,
    project: Project,
    role: str,
    release: Release,
    *,
    yank_form: YankForm | None = None,
    status: int = 200,
) -> HttpResponse:
    return render(
        request,
        "bastion/manage/release.html",
        {
            "project": project,
            "role": role,
            "is_owner": role == RoleName.OWNER,
            "release": release,
            "files": File.objects.filter(release=release).order_by("filename"),
            "yank_form": yank_form or YankForm(),
        },
        status=status,
    )


@login_required
@require_GET
def release_detail(request: HttpRequest, project: str, version: str) -> HttpResponse:
    found, role = _managed(request, project)
    return _release_page(request, found, role, _release(found, version))


@login_required
@require_POST
def yank_release(request: HttpRequest, project: str, version: str) -> HttpResponse:
    found, role = _managed(request, project)
    release = _release(found, version)
    form = YankForm(request.POST)
    if form.is_valid():
        try:
            services.yank_release(
                actor=_actor(request), release=release, reason=form.cleaned_data["reason"]
            )
        except ProjectError as exc:
            _raise_http(exc)
            _attach(form, exc)
        else:
            messages.success(
                request, _("Release %(version)s is yanked.") % {"version": release.version}
            )
            return _see_other(_release_url(found, release))
    return _release_page(request, found, role, release, yank_form=form, status=400)


@login_required
@require_POST
def unyank_release(request: HttpRequest, project: str, version: str) -> HttpResponse:
    found, _role = _managed(request, project)
    release = _release(found, version)
    try:
        services.unyank_release(actor=_actor(request), release=release)
    except ProjectError as exc:
        _raise_http(exc)
        messages.error(request, exc.message)
    else:
        messages.success(
            request, _("Release %(version)s is no longer yanked.") % {"version": release.version}
        )
    return _see_other(_release_url(found, release))


# --- deletions -------------------------------------------------------------------------------


def _confirm_deletion(
    request: HttpRequest,
    *,
    project: Project,
    role: str,
    expected: str,
    what: str,
    back: str,
    delete: Callable[[str], object],
) -> HttpResponse | None:
    """The shared confirm-then-delete flow: Owners, recent reauthentication, typed name.

    None once ``delete`` succeeded (the caller answers); else the confirmation page.
    """
    if role != RoleName.OWNER:
        raise PermissionDenied(_("Only Owners may delete."))
    _require_recent_reauthentication(request)
    form = ConfirmForm(request.POST or None, expected=expected)
    if request.method == "POST" and form.is_valid():
        try:
            delete(form.cleaned_data["confirm"])
        except ProjectError as exc:
            _raise_http(exc)
            _attach(form, exc)
        else:
            return None
    return render(
        request,
        "bastion/manage/confirm_delete.html",
        {"project": project, "form": form, "expected": expected, "what": what, "back": back},
        status=400 if request.method == "POST" else 200,
    )


@login_required
@require_http_methods(["GET", "POST"])
def delete_file(request: HttpRequest, project: str, filename: str) -> HttpResponse:
    found, role = _managed(request, project)
    file = File.objects.filter(project=found, filename=filename).select_related("release").first()
    if file is None:
        raise Http404("no such file")
    answer = _confirm_deletion(
        request,
        project=found,
        role=role,
        expected=file.filename,
        what=_("the file %(filename)s") % {"filename": file.filename},
        back=_release_url(found, file.release),
        delete=lambda typed: services.delete_file(actor=_actor(request), file=file, confirm=typed),
    )
    if answer is not None:
        return answer
    messages.success(
        request,
        _("%(filename)s was deleted. Its name cannot be used again.") % {"filename": filename},
    )
    return _see_other(_release_url(found, file.release))


@login_required
@require_http_methods(["GET", "POST"])
def delete_release(request: HttpRequest, project: str, version: str) -> HttpResponse:
    found, role = _managed(request, project)
    release = _release(found, version)
    answer = _confirm_deletion(
        request,
        project=found,
        role=role,
        expected=release.version,
        what=_("release %(version)s and all its files") % {"version": release.version},
        back=_release_url(found, release),
        delete=lambda typed: services.delete_release(
            actor=_actor(request), release=release, confirm=typed
        ),
    )
    if answer is not None:
        return answer
    messages.success(request, _("Release %(version)s was deleted.") % {"version": release.version})
    return _see_other(_project_url(found))


@login_required
@require_http_methods(["GET", "POST"])
def delete_project(request: HttpRequest, project: str) -> HttpResponse:
    found, role = _managed(request, project)
    answer = _confirm_deletion(
        request,
        project=found,
        role=role,
        expected=found.name,
        what=_("the project %(project)s, all its releases and files") % {"project": found.name},
        back=_project_url(found),
        delete=lambda typed: services.delete_project(
            actor=_actor(request), project=found, confirm=typed
        ),
    )
    if answer is not None:
        return answer
    messages.success(
        request,
        _("%(project)s was deleted. Its name stays reserved for its owners for %(days)s days.")
        % {"project": found.name, "days": settings.BASTION.deleted_project_reservation_days},
    )
    return _see_other("/manage/projects/")
