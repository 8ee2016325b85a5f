"""API tokens in the web interface (/account/tokens/) and leaked-token reports (/_/token-leak/)."""

from django.urls import path  # noqa: F401 - the token pages add their routes here

urlpatterns: list[object] = []
