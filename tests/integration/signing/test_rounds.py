"""Uploads are signed in rounds (``services.sign_changes``), not in their own transaction.

A round signs every project changed since the last one under the index lock, with one snapshot
and one timestamp; a read of ``timestamp.json`` (or of a current signed page) runs one first
when anything is unsigned, so a TUF client sees every upload that has returned. An upload that
commits while a round runs waits for the round's lock and is left for the next round, never
marked signed unsigned. A round that fails marks nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bastion.projects.models import File
from bastion.signing import background, services
from bastion.signing.models import CurrentRole, Target
from bastion.signing.queries import unsigned_changes
from tests.integration.signing.conftest import make_updater
from tests.integration.uploads.test_upload_endpoint import upload
from tests.pg import temporary_database
from tests.unit.core.builders import make_wheel

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[3]


def _version(role: str) -> int:
    return CurrentRole.objects.get(role=role).version


def test_several_uploads_are_signed_by_one_round_on_the_next_timestamp_read(
    client, repository, alice_token, tmp_path
):
    snapshot = _version("snapshot")
    wheels = [make_wheel(tmp_path, name=f"batch-{n}", version="1.0") for n in range(3)]
    for wheel in wheels:
        assert upload(client, wheel, alice_token).status_code == 200
    assert _version("snapshot") == snapshot and not Target.objects.exists()

    updater = make_updater(client, tmp_path / "client")
    updater.refresh()  # its read of timestamp.json runs the round

    assert _version("snapshot") == snapshot + 1  # one round: one snapshot for the three
    assert not unsigned_changes()
    for file in File.objects.all():
        info = updater.get_targetinfo(file.storage_key)
        assert info is not None and info.hashes["sha256"] == file.sha256
    for n in range(3):
        assert updater.get_targetinfo(f"simple/batch-{n}/index.json") is not None


def test_a_read_with_nothing_unsigned_publishes_nothing(client, repository):
    timestamp = _version("timestamp")
    for _ in range(3):
        assert client.get("/tuf/timestamp.json").status_code == 200
    assert _version("timestamp") == timestamp


def test_the_current_signed_page_is_the_latest_upload_s(client, repository, alice_token, tmp_path):
    assert upload(client, make_wheel(tmp_path, name="demo", version="1.0"), alice_token)
    assert upload(client, make_wheel(tmp_path, name="demo", version="2.0"), alice_token)
    signed = client.get("/simple/demo/index.json")
    assert signed.status_code == 200
    served = client.get("/simple/demo/", HTTP_ACCEPT="application/vnd.pypi.simple.v1+json")
    assert signed.content == served.content
    assert [f["filename"] for f in json.loads(signed.content)["files"]] == [
        "demo-1.0-py3-none-any.whl",
        "demo-2.0-py3-none-any.whl",
    ]


def test_a_failed_round_marks_nothing_signed_and_the_next_read_signs(
    client, repository, alice_token, tmp_path, monkeypatch, caplog
):
    assert upload(client, make_wheel(tmp_path, name="demo", version="1.0"), alice_token)
    timestamp = _version("timestamp")

    def kms_down(*args, **kwargs):
        raise RuntimeError("the KMS does not answer")

    publish = services._publish
    monkeypatch.setattr(services, "_publish", kms_down)
    response = client.get("/tuf/timestamp.json")
    assert response.status_code == 200  # the metadata signed so far
    assert json.loads(response.content)["signed"]["version"] == timestamp
    assert unsigned_changes() and not Target.objects.exists()  # rolled back, nothing marked
    assert any("signing the latest changes failed" in r.message for r in caplog.records)

    monkeypatch.setattr(services, "_publish", publish)
    assert json.loads(client.get("/tuf/timestamp.json").content)["signed"]["version"] == (
        timestamp + 1
    )
    assert not unsigned_changes()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_upload_during_a_round_waits_and_is_left_to_the_next(tmp_path, backend):
    # The window on purpose (round_driver): a round has read what changed; an upload arrives.
    # It must wait for the round's lock: committed in between, the round would mark it signed
    # without having signed it.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BASTION_", "DJANGO_"))}
    env["BASTION_DATA_DIR"] = str(tmp_path / "data")
    env["BASTION_SECRET_KEY"] = "round-test-secret-" + "r" * 40

    def run() -> dict[str, object]:
        done = subprocess.run(
            [sys.executable, "-m", "tests.integration.signing.round_driver"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        (line,) = [line for line in done.stdout.splitlines() if line.startswith("{")]
        return json.loads(line)

    if backend == "sqlite":
        state = run()
    else:
        with temporary_database("bastion_round") as url:
            env["BASTION_DATABASE_URL"] = url
            state = run()
    assert state["rival_at_lock"], state  # the rival reached the lock inside the window ...
    assert state["rival_done_in_window"] is False, state  # ... and waited there
    assert state["round"] is True and state["rival"] == 200, state
    assert state["first_signed"] and not state["second_signed"], state
    assert state["unsigned_after_round"] is True, state  # left to the next round
    assert state["next_round"] is True and state["second_signed_next"], state
    assert state["unsigned_after_next"] is False, state


def test_the_background_signer_runs_one_round_after_a_burst(monkeypatch):
    rounds: list[float] = []
    done = threading.Event()

    def counted_round() -> None:
        rounds.append(1)
        done.set()

    monkeypatch.setattr(background, "sign_round", counted_round)
    signer = background.Signer(delay=1.0)
    for _ in range(5):  # within microseconds of each other: well inside the delay
        signer.soon()
    assert done.wait(30)
    assert not signer_busy_again(signer)
    assert rounds == [1]


def signer_busy_again(signer: background.Signer) -> bool:
    """Whether another round is due (none should be, with no upload since)."""
    with signer._cond:
        return signer._due is not None


def test_the_background_signer_does_not_wait_forever_under_steady_uploads(monkeypatch):
    done = threading.Event()
    monkeypatch.setattr(background, "sign_round", done.set)
    signer = background.Signer(delay=0.2)  # rounds at most 1 s after the first upload waiting
    for _ in range(400):
        signer.soon()  # an upload every 10 ms: never 0.2 s of quiet
        if done.wait(0.01):
            break
    assert done.is_set()


def test_only_the_first_upload_waiting_wakes_the_signer(monkeypatch):
    # Later uploads only move the round later, which the signer sees when its timed wait ends:
    # waking it for each cost every upload a switch to the signer's thread and back.
    monkeypatch.setattr(background, "sign_round", lambda: None)
    signer = background.Signer(delay=60.0)
    wakes: list[int] = []
    notify = signer._cond.notify
    monkeypatch.setattr(signer._cond, "notify", lambda n=1: (wakes.append(n), notify(n))[1])
    for _ in range(5):
        signer.soon()
    assert wakes == [1]
    with signer._cond:
        first, due = signer._first, signer._due
    assert first is not None and due is not None and due <= first + signer.max_wait
