"""Driver for ``test_rows``: run as ``python -m tests.integration.rows_driver`` in a subprocess
whose environment names the database (SQLite file or PostgreSQL), so ``bastion.rows`` is
checked against both backends' own converters and ``RETURNING``.

Every row ``rows`` writes must read back through the ORM exactly as written, and every row it
reads must equal the ORM's own reading of it, field by field. Prints one JSON line of results.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from unittest import mock

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bastion.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import Model  # noqa: E402

from bastion import rows  # noqa: E402
from bastion.accounts.models import User  # noqa: E402
from bastion.accounts.services import create_user  # noqa: E402
from bastion.actors import Actor  # noqa: E402
from bastion.audit.models import Event  # noqa: E402
from bastion.projects.models import (  # noqa: E402
    File,
    FilenameRecord,
    Project,
    Release,
    Role,
    RoleName,
)
from bastion.tokens.models import ApiToken  # noqa: E402
from bastion.tokens.services import create_token  # noqa: E402

NOW = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


def _fields(obj: Model) -> dict[str, object]:
    values = {}
    for field in type(obj)._meta.concrete_fields:
        value = getattr(obj, field.attname)
        values[field.attname] = bytes(value) if isinstance(value, memoryview) else value
    return values


def _same(obj: Model) -> bool:
    """``obj`` as written equals the ORM's reading of its row."""
    return _fields(type(obj).objects.get(pk=obj.pk)) == _fields(obj)


def _prepared_alike(obj: Model) -> bool:
    """Each value ``rows`` stores as it is equals its field's preparation of it, in type too
    (the other values are prepared by the fields themselves: JSON may become an adapter object
    that compares by identity)."""
    mine = list(rows._prepared(obj, connection))
    as_is = [
        (mine[i], field.get_db_prep_save(field.pre_save(obj, True), connection))
        for i, (field, _attname, kind) in enumerate(rows._preparers(type(obj), connection.vendor))
        if kind is not None
    ]
    if connection.vendor != "sqlite":
        return not as_is  # every value prepared by its field
    return bool(as_is) and all(v == w and type(v) is type(w) for v, w in as_is)


def main() -> None:
    call_command("migrate", verbosity=0)
    results: dict[str, object] = {"vendor": connection.vendor}
    user = create_user(
        actor=Actor.operator(), username="rower", email="rower@example.com", password=None
    )
    token, _raw = create_token(
        actor=Actor.operator(),
        user=user,
        name="rows",
        project_names=["row-project"],
        expires_in=timedelta(days=3),
        now=NOW,
    )
    with transaction.atomic():
        project = Project(name="Row.Project", normalized_name="row-project", serial=7, created=NOW)
        rows.insert(project)
        role = Role(user=user, project=project, role_name="Owner", created=NOW)
        rows.insert(role)
        release = Release(
            project=project,
            version="1.0",
            canonical_version="1",
            created=NOW,
            metadata={"summary": "ünïcode", "classifiers": ["A :: B"], "nested": {"n": [1, None]}},
        )
        rows.insert(release)
        file = File(
            project=project,
            release=release,
            filename="row_project-1.0-py3-none-any.whl",
            packagetype="bdist_wheel",
            python_version="py3",
            size=123,
            sha256="a" * 64,
            blake2_256="b" * 64,
            md5="c" * 32,
            upload_time=NOW,
            storage_key="bb/bb/key/row_project-1.0-py3-none-any.whl",
            uploaded_by=user,
        )
        rows.insert(file)
        record = FilenameRecord(filename=file.filename, project_name="row-project", created=NOW)
        rows.insert(record)
        events = [
            Event(seq=1000 + n, kind=f"row.{n}", created=NOW, credential="cli", payload={"n": n})
            for n in range(3)
        ]
        rows.insert(*events)
    written = [project, role, release, file, record, *events]
    # Values stored as they are (rows._prepared) are what the fields' own preparation gives:
    # text choices, booleans, None, keys, datetimes and JSON included.
    choice = Role(user=user, project=project, role_name=RoleName.OWNER, created=NOW)
    results["prepared_as_fields"] = [
        type(obj).__name__ for obj in [*written, choice] if not _prepared_alike(obj)
    ]
    results["keys_set"] = all(obj.pk is not None and not obj._state.adding for obj in written)
    results["written_as_read"] = [type(obj).__name__ for obj in written if not _same(obj)]
    # bulk: each event got its own row's key, in order
    results["event_keys"] = [
        Event.objects.get(pk=event.pk).seq == event.seq for event in events
    ] == [True] * 3

    token_pk = ApiToken._meta.pk
    assert token_pk is not None
    read = {
        "token": (
            rows.get(ApiToken, "WHERE id = %s", [token_pk.get_db_prep_value(token.pk, connection)]),
            ApiToken.objects.get(pk=token.pk),
        ),
        "user": (rows.get(User, "WHERE id = %s", [user.pk]), User.objects.get(pk=user.pk)),
        "release": (
            rows.get(Release, "WHERE project_id = %s", [project.pk]),
            Release.objects.get(pk=release.pk),
        ),
        "project": (
            rows.get(Project, "WHERE normalized_name = %s", ["row-project"]),
            Project.objects.get(pk=project.pk),
        ),
    }
    results["read_as_orm"] = {
        name: mine is not None and _fields(mine) == _fields(orm)
        for name, (mine, orm) in read.items()
    }
    token_read = read["token"][0]
    results["token_types"] = token_read is not None and [
        type(token_read.pk).__name__,
        type(token_read.expires).__name__,
        token_read.expires.tzinfo is not None if token_read.expires else None,
        bytes(token_read.key) == bytes(token.key),
        token_read.caveats == token.caveats,
    ]
    # SQLite before 3.35 has no RETURNING: keys from the last insert, one row per statement
    # (PostgreSQL always has it). The feature flag is a class property: patched for this block.
    if connection.vendor == "sqlite":
        features = type(connection.features)
        with mock.patch.object(features, "can_return_rows_from_bulk_insert", False):
            with transaction.atomic():
                older = [
                    Event(seq=2000 + n, kind="row.old", created=NOW, credential="cli", payload={})
                    for n in range(2)
                ]
                rows.insert(*older)
                other = Project(name="other", normalized_name="other", serial=8, created=NOW)
                rows.insert(other)
        results["without_returning"] = [
            _same(obj) and Event.objects.filter(pk=obj.pk, seq=obj.seq).exists() for obj in older
        ] + [_same(other)]
    results["missing"] = rows.get(Project, "WHERE normalized_name = %s", ["no-such"]) is None
    # A token joined to its user, a project with its owner's role, a release with an extra
    # column: each loaded as the ORM loads it, the extra values as the database gives them.
    from bastion.projects.queries import project_and_role
    from bastion.tokens.services import _token_and_user

    joined = _token_and_user(token.pk)
    found, role = project_and_role("Row_Project", user, for_update=True)
    stranger = create_user(
        actor=Actor.operator(), username="stranger", email="stranger@example.com", password=None
    )
    with_extra = rows.get_with(
        Release,
        '(SELECT COUNT(*) FROM projects_file WHERE release_id = "projects_release".id)',
        "WHERE project_id = %s",
        [project.pk],
    )
    results["joined"] = [
        joined is not None and _fields(joined) == _fields(ApiToken.objects.get(pk=token.pk)),
        joined is not None and _fields(joined.user) == _fields(User.objects.get(pk=user.pk)),
        _token_and_user(token.pk.__class__(int=0)) is None,
        found is not None and _fields(found) == _fields(Project.objects.get(pk=project.pk)),
        role,
        project_and_role("row-project", stranger) == (found, None),
        project_and_role("no-such", user) == (None, None),
        with_extra is not None
        and _fields(with_extra[0]) == _fields(Release.objects.get(pk=release.pk))
        and with_extra[1] == (1,),
    ]
    print(json.dumps(results))


if __name__ == "__main__":
    main()
