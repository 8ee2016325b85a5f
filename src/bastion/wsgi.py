"""WSGI entry point used by ``bastion serve``: Django behind the simple-page fast path, and both
behind the outage guard (a dependency down answers 503, ``bastion.outages``); uploads are signed
(TUF) by each worker's background signer (``bastion.signing.background``)."""

import os
from importlib import import_module

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.urls import resolve

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bastion.settings")
django_application = get_wsgi_application()

from bastion.index.fastpath import FastPath  # noqa: E402  (needs Django set up)
from bastion.outages import OutageGuard  # noqa: E402
from bastion.signing import background  # noqa: E402
from bastion.sqlite import checkpoints  # noqa: E402
from bastion.uploads.chain import UploadsApart, handler_with  # noqa: E402
from bastion.uploads.warmup import warm_up  # noqa: E402

background.enable()  # uploads are signed by this worker's signer thread, in rounds
if settings.DATABASES["default"]["ENGINE"] == "bastion.sqlite":
    # the log is copied into the database by a thread, not by the request whose commit filled it
    checkpoints.start(str(settings.DATABASES["default"]["NAME"]))
# The URLconf (every view module) is loaded now rather than by the worker's first request that
# passes the fast path (~70 ms, ~11 MB): no request of a fresh worker waits for the imports.
import_module(settings.ROOT_URLCONF)
# Django compiles each URL pattern's expression when a path first reaches it: the upload
# endpoint's are compiled now too (~2 ms of a fresh worker's first upload otherwise).
resolve("/legacy/")
# A fresh worker's first uploads would run several times slower than later ones (modules to
# load, bytecode not yet specialised): the validation is run a few times now (~30 ms, ~1 MB).
warm_up()
fast_path = FastPath(UploadsApart(django_application, handler_with(settings.UPLOAD_MIDDLEWARE)))
application = OutageGuard(fast_path)  # fast_path also answers from the socket (bastion.server)
