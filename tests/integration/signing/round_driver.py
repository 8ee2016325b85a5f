"""Driver for ``test_rounds.test_an_upload_during_a_round_waits_and_is_left_to_the_next``: run
as ``python -m tests.integration.signing.round_driver`` in a subprocess whose environment names
the database (an SQLite file, or PostgreSQL).

The window on purpose: a signing round (``services.sign_changes``) has read which projects
changed and is about to sign them; a rival upload is sent from another thread (its own
connection) and the round waits until the rival reaches the statement that takes the index lock
(``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR UPDATE`` on PostgreSQL), plus a grace period in
which a rival not held by the lock would commit. Prints one JSON line with what happened.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bastion.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402
from securesystemslib.signer import CryptoSigner  # noqa: E402

from bastion.accounts.services import create_user  # noqa: E402
from bastion.actors import Actor  # noqa: E402
from bastion.signing import services  # noqa: E402
from bastion.signing.models import Target  # noqa: E402
from bastion.signing.queries import unsigned_changes  # noqa: E402
from bastion.tokens.services import create_token  # noqa: E402
from tests.integration.uploads.test_upload_endpoint import form_for  # noqa: E402
from tests.unit.core.builders import make_wheel  # noqa: E402

HOST = "127.0.0.1:8000"  # the default base URL's host
GRACE = 1.0  # seconds a rival not held by the lock has to commit inside the window


def post(path: Path, token: str) -> int:
    authorization = "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()
    response = Client().post(
        "/legacy/", data=form_for(path), HTTP_AUTHORIZATION=authorization, HTTP_HOST=HOST
    )
    return response.status_code


def takes_the_lock(sql: str) -> bool:
    statement = sql.lstrip().upper()
    return statement.startswith("BEGIN") or (
        "FOR UPDATE" in statement and "PROJECTS_INDEX_STATE" in statement
    )


def main() -> None:
    call_command("migrate", verbosity=0)
    online = CryptoSigner.generate_ed25519()
    services._online_signer = lambda: online  # in-memory keys: no key files needed here
    services.initialize(
        root=[CryptoSigner.generate_ed25519()],
        root_threshold=1,
        targets=CryptoSigner.generate_ed25519(),
        online=online,
        bins=16,
    )
    user = create_user(  # no upload counters: the rival's first write is its upload's own
        actor=Actor.operator(),
        username="racer",
        email="racer@example.com",
        password=None,
        no_limits=True,
    )
    _row, token = create_token(actor=Actor.operator(), user=user, name="race", now=timezone.now())
    work = Path(tempfile.mkdtemp(prefix="bastion-round-"))
    first = make_wheel(work, name="first", version="1.0")
    second = make_wheel(work, name="second", version="1.0")
    assert post(first, token) == 200

    state: dict[str, object] = {"rival": None, "rival_at_lock": False, "rival_done_in_window": None}
    at_lock = threading.Event()
    done = threading.Event()

    def rival() -> None:
        def watch(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
            if takes_the_lock(sql):
                at_lock.set()
            return execute(sql, params, many, context)

        try:
            with connection.execute_wrapper(watch):
                state["rival"] = post(second, token)
        finally:
            connection.close()
            done.set()

    sync = services._sync_project
    thread = threading.Thread(target=rival)

    def sync_once_the_rival_waits(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not thread.is_alive() and not done.is_set():
            thread.start()
            state["rival_at_lock"] = at_lock.wait(60)
            time.sleep(GRACE)
            state["rival_done_in_window"] = done.is_set()
        return sync(name, *args, **kwargs)

    services._sync_project = sync_once_the_rival_waits
    state["round"] = services.sign_changes()
    services._sync_project = sync
    thread.join(120)
    state["first_signed"] = Target.objects.filter(project="first").exists()
    state["second_signed"] = Target.objects.filter(project="second").exists()
    state["unsigned_after_round"] = unsigned_changes()
    state["next_round"] = services.sign_changes()
    state["second_signed_next"] = Target.objects.filter(project="second").exists()
    state["unsigned_after_next"] = unsigned_changes()
    print(json.dumps(state), flush=True)


if __name__ == "__main__":
    sys.exit(main())
