"""API tokens in the web interface (/account/tokens/) and leaked-token reports (/_/token-leak/)."""

from django.urls import path, re_path

from bastion.tokens import views

urlpatterns = [
    path("account/tokens/", views.token_list, name="token_list"),
    path("account/tokens/new/", views.token_create, name="token_create"),
    path("account/tokens/<uuid:token_id>/revoke/", views.token_revoke, name="token_revoke"),
    # Both spellings: a POST cannot be redirected to the trailing slash.
    re_path(r"^_/token-leak/?$", views.token_leak, name="token_leak"),
]
