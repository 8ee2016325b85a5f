"""Pages for publishers under /manage/: projects, collaborators, releases, deletions.

(``/manage/project/<p>/history/`` and ``/manage/history/`` are the audit app's, in the root
URLconf.)
"""

from django.urls import path, re_path

from bastion.projects import manage

_P = r"^project/(?P<project>[^/]+)/"
_R = _P + r"release/(?P<version>[^/]+)/"

urlpatterns = [
    path("projects/", manage.my_projects),
    path("invitations/", manage.invitations),
    path("invitations/<int:pk>/accept/", manage.accept_invitation),
    path("invitations/<int:pk>/decline/", manage.decline_invitation),
    re_path(_P + r"$", manage.project_overview),
    re_path(_P + r"collaborators/$", manage.collaborators),
    re_path(_P + r"collaborators/role/$", manage.change_role),
    re_path(_P + r"collaborators/remove/$", manage.remove_collaborator),
    re_path(_P + r"invitations/revoke/$", manage.revoke_invitation),
    re_path(_P + r"delete/$", manage.delete_project),
    re_path(_P + r"file/(?P<filename>[^/]+)/delete/$", manage.delete_file),
    re_path(_R + r"$", manage.release_detail),
    re_path(_R + r"yank/$", manage.yank_release),
    re_path(_R + r"unyank/$", manage.unyank_release),
    re_path(_R + r"delete/$", manage.delete_release),
]
