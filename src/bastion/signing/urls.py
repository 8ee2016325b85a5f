"""``/tuf/``: TUF (PEP 458) repository metadata."""

from django.urls import re_path

from bastion.signing import views

urlpatterns = [
    re_path(r"^(?P<role>timestamp|root)\.json$", views.current_metadata),
    re_path(r"^(?P<version>[0-9]+)\.(?P<role>[a-z0-9-]+)\.json$", views.versioned_metadata),
]
