"""Pages for publishers under /manage/: projects, collaborators, releases, deletions."""

from django.urls import path

from bastion.projects import views

urlpatterns = [
    path("projects/", views.manage_projects),
]
