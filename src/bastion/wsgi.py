"""WSGI entry point used by ``bastion serve``: Django behind the simple-page fast path."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bastion.settings")
django_application = get_wsgi_application()

from bastion.index.fastpath import SimplePageFastPath  # noqa: E402  (needs Django set up)

application = SimplePageFastPath(django_application)
