"""Public pages about projects: home, search, project and release pages, user pages."""

from django.urls import path, re_path

from bastion.projects import views

urlpatterns = [
    path("", views.home),
    path("search/", views.search),
    re_path(r"^project/(?P<project>[^/]+)/$", views.project_detail),
    re_path(r"^project/(?P<project>[^/]+)/(?P<version>[^/]+)/$", views.release_detail),
    re_path(r"^user/(?P<username>[^/]+)/$", views.user_detail),
]
