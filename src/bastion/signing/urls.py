"""``/tuf/``: TUF (PEP 458) repository metadata."""

urlpatterns: list[object] = []
