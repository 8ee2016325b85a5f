"""Driver for ``test_duplicate_race``: run as ``python -m tests.integration.uploads.race_driver``
in a subprocess whose environment names the database (SQLite file or PostgreSQL).

It uploads a file (the "retry") through Django's test client and, right after the retry's
k-th database read (SELECT) made outside a transaction, lets a rival upload commit from another
thread (its own connection) before the retry goes on. Every k is tried in turn, so the rival
commits in every window between two reads of the retry: a decision made on two reads that a
commit can separate is caught deterministically, not now and then. Prints one JSON line per
round: {"k", "fired", "rival", "retry", "rival_reason", "retry_reason"}.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import tempfile
import threading
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bastion.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart  # noqa: E402
from django.utils import timezone  # noqa: E402

from bastion.accounts.services import create_user  # noqa: E402
from bastion.actors import Actor  # noqa: E402
from bastion.tokens.services import create_token  # noqa: E402
from tests.unit.core.builders import make_wheel  # noqa: E402

HOST = "127.0.0.1:8000"  # the default base URL's host


def form(path: Path, content: bytes) -> bytes:
    name, version = path.name.split("-")[:2]
    return encode_multipart(
        BOUNDARY,
        {
            ":action": "file_upload",
            "protocol_version": "1",
            "metadata_version": "2.1",
            "name": name.replace("_", "-"),
            "version": version,
            "filetype": "bdist_wheel",
            "pyversion": "py3",
            "sha256_digest": hashlib.sha256(content).hexdigest(),
            "content": _NamedBytes(path.name, content),
        },
    )


class _NamedBytes:
    """A file-like part for encode_multipart."""

    def __init__(self, name: str, data: bytes) -> None:
        self.name = name
        self._data = data

    def read(self) -> bytes:
        return self._data


def post(body: bytes, token: str) -> tuple[int, str]:
    authorization = "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()
    response = Client().generic(
        "POST",
        "/legacy/",
        data=body,
        content_type=MULTIPART_CONTENT,
        HTTP_AUTHORIZATION=authorization,
        HTTP_HOST=HOST,
    )
    return response.status_code, response.reason_phrase


def one_round(k: int, retry_body: bytes, rival_body: bytes, token: str) -> dict[str, object]:
    state: dict[str, object] = {"k": k, "fired": False, "rival": None, "rival_reason": ""}
    seen = 0

    def rival() -> None:
        state["rival"], state["rival_reason"] = post(rival_body, token)

    def wrapper(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        nonlocal seen
        result = execute(sql, params, many, context)
        # Only windows where the retry holds no transaction (the BEGIN itself runs before
        # Django marks the block atomic): a rival cannot commit into a held lock anyway.
        # Reads only: a write's statement may still hold SQLite's lock until its cursor closes.
        outside = not connection.in_atomic_block and sql.lstrip().upper().startswith("SELECT")
        if not state["fired"] and outside:
            seen += 1
            if seen == k:
                state["fired"] = True
                thread = threading.Thread(target=rival)
                thread.start()
                thread.join(timeout=120)
        return result

    with connection.execute_wrapper(wrapper):
        state["retry"], state["retry_reason"] = post(retry_body, token)
    return state


def main(rounds: int, mode: str) -> None:
    call_command("migrate", verbosity=0)
    user = create_user(
        actor=Actor.operator(), username="racer", email="racer@example.com", password=None
    )
    _row, token = create_token(actor=Actor.operator(), user=user, name="race", now=timezone.now())
    work = Path(tempfile.mkdtemp(prefix="bastion-race-"))
    for k in range(1, rounds + 1):
        (work / str(k)).mkdir()
        (work / f"{k}-other").mkdir()
        wheel = make_wheel(work / str(k), name="race-demo", version=f"1.{k}")
        content = wheel.read_bytes()
        if mode == "identical":
            rival = form(wheel, content)
        else:  # the rival stores other content under the same file name
            other = make_wheel(
                work / f"{k}-other", name="race-demo", version=f"1.{k}",
                metadata_overrides={"Summary": "another build"},
            )
            rival = form(wheel, other.read_bytes())
        result = one_round(k, form(wheel, content), rival, token)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
