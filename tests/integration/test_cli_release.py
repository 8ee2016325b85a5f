"""The pinned `bastion release yank|unyank PROJECT VERSION` commands.

In-process against the test database (the simple API changes at once), and as subprocesses
with their own data directory, as an operator runs them (exit codes and one-line errors).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bastion.audit.models import Event
from bastion.cli import main
from bastion.projects.models import File, Release
from tests.integration.uploads.test_upload_endpoint import upload
from tests.unit.core.builders import make_wheel

BASTION = str(Path(sys.executable).parent / "bastion")
JSON_TYPE = "application/vnd.pypi.simple.v1+json"


@pytest.mark.django_db
def test_yank_and_unyank_in_process_show_in_the_simple_api(client, alice_token, tmp_path, capsys):
    assert (
        upload(client, make_wheel(tmp_path, name="demo", version="1.0"), alice_token).status_code
        == 200
    )
    client.get("/simple/demo/", HTTP_ACCEPT=JSON_TYPE)  # cached
    capsys.readouterr()  # what the upload logged is not the command's output

    assert main(["release", "yank", "Demo", "1.0.0", "--reason", "CVE-2026-1"]) == 0
    assert capsys.readouterr() == ("", "")
    page = json.loads(client.get("/simple/demo/", HTTP_ACCEPT=JSON_TYPE).content)
    assert page["files"][0]["yanked"] == "CVE-2026-1"
    event = Event.objects.get(kind="release.yanked")
    assert (event.credential, event.actor_username, event.project_name) == ("cli", "", "demo")

    assert main(["release", "unyank", "demo", "1.0"]) == 0
    page = json.loads(client.get("/simple/demo/", HTTP_ACCEPT=JSON_TYPE).content)
    assert page["files"][0]["yanked"] is False
    assert Event.objects.get(kind="release.unyanked").credential == "cli"


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BASTION_", "DJANGO_"))}
    env["BASTION_DATA_DIR"] = str(tmp_path / "data")
    env["BASTION_SECRET_KEY"] = "release-cli-test-" + "k" * 32
    return env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BASTION, *args], env=env, capture_output=True, text=True, timeout=120)


# Rows as the upload service would leave them, written through the services and models of a
# separate process on the deployment's own database.
_SEED = textwrap.dedent(
    """
    import django, os
    os.environ["DJANGO_SETTINGS_MODULE"] = "bastion.settings"
    django.setup()
    from django.db import transaction
    from django.utils import timezone
    from bastion.accounts.models import User
    from bastion.actors import Actor
    from bastion.projects.models import File, FilenameRecord, Release
    from bastion.projects.services import bump_serial, create_project, lock_index

    now = timezone.now()
    with transaction.atomic():
        state = lock_index()
        project = create_project(
            actor=Actor.operator(), name="demo", owner=User.objects.get(username="alice"),
            serial=bump_serial(state, projects_changed=True), now=now,
        )
        release = Release.objects.create(project=project, version="1.0", canonical_version="1")
        for n, name in enumerate(["demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz"]):
            File.objects.create(
                project=project, release=release, filename=name, size=1,
                packagetype="bdist_wheel" if name.endswith(".whl") else "sdist",
                python_version="py3", sha256=str(n) * 64, blake2_256=str(n) * 64, md5="0" * 32,
                storage_key=f"key-{n}",
            )
            FilenameRecord.objects.create(filename=name, project_name="demo")
    """
)


def test_release_commands_as_an_operator_runs_them(tmp_path):
    env = _env(tmp_path)
    assert _run(env, "migrate").returncode == 0
    assert _run(env, "user", "create", "alice", "--email", "alice@example.com").returncode == 0
    seeded = subprocess.run(
        [sys.executable, "-c", _SEED], env=env, capture_output=True, text=True, timeout=120
    )
    assert seeded.returncode == 0, seeded.stderr
    database = tmp_path / "data" / "bastion.sqlite3"

    def rows() -> list[tuple]:
        with sqlite3.connect(database) as connection:
            return connection.execute(
                "SELECT r.yanked, r.yanked_reason, f.yanked, f.yanked_reason "
                "FROM projects_release r JOIN projects_file f ON f.release_id = r.id"
            ).fetchall()

    yanked = _run(env, "release", "yank", "demo", "1.0", "--reason", "broken metadata")
    assert (yanked.returncode, yanked.stdout, yanked.stderr) == (0, "", "")
    assert rows() == [(1, "broken metadata", 1, "broken metadata")] * 2
    again = _run(env, "release", "yank", "demo", "1.0", "--reason", "broken metadata")
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")  # idempotent

    unyanked = _run(env, "release", "unyank", "demo", "1.0")
    assert (unyanked.returncode, unyanked.stdout, unyanked.stderr) == (0, "", "")
    assert rows() == [(0, "", 0, "")] * 2
    assert _run(env, "release", "unyank", "demo", "1.0").returncode == 0

    for args, reason in (
        (("yank", "nope", "1.0"), "no project named 'nope'"),
        (("yank", "demo", "9.9"), "has no release '9.9'"),
        (("unyank", "demo", "not a version"), "invalid version"),
    ):
        failed = _run(env, "release", *args)
        assert failed.returncode != 0 and failed.stdout == ""
        assert failed.stderr.count("\n") == 1 and reason in failed.stderr, failed.stderr

    with sqlite3.connect(database) as connection:
        events = connection.execute(
            "SELECT kind, credential FROM audit_event WHERE kind LIKE 'release.%' ORDER BY seq"
        ).fetchall()
    assert events == [("release.yanked", "cli"), ("release.unyanked", "cli")]
    verified = _run(env, "audit", "verify")
    assert verified.returncode == 0, verified.stderr


def test_release_yank_needs_project_and_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["release", "yank", "demo"])
    assert exited.value.code != 0


@pytest.mark.django_db
def test_yanking_changes_nothing_but_the_release_asked_for(client, alice_token, tmp_path):
    for version in ("1.0", "2.0"):
        path = make_wheel(tmp_path, name="demo", version=version)
        assert upload(client, path, alice_token).status_code == 200
    assert main(["release", "yank", "demo", "2.0"]) == 0
    assert list(Release.objects.order_by("version").values_list("yanked", flat=True)) == [
        False,
        True,
    ]
    assert File.objects.filter(yanked=True).count() == 1
    assert File.objects.get(yanked=True).yanked_reason == ""
