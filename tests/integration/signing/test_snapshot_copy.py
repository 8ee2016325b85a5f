"""The per-process copy of the current snapshot's ``meta`` (repository._committed_snapshot).

A publish reads the current snapshot from this copy when its version is current. The copy must
only ever hold a committed version: a version written in a transaction that rolls back could be
written again with other content by another worker, and taking one for the other would drop or
resurrect a bin version in the next snapshot.
"""

from __future__ import annotations

import json

import pytest
from django.db import transaction
from django.utils import timezone

from bastion.projects.services import lock_index
from bastion.signing import repository as repository_module
from bastion.signing import services
from bastion.signing.models import CurrentRole
from bastion.signing.queries import metadata_body

pytestmark = pytest.mark.django_db(transaction=True)


class Boom(Exception):
    pass


def _publish(bins: set[int]) -> None:
    with transaction.atomic():
        lock_index()
        repo = services._online_repository(timezone.now())
        services._publish(repo, services._current_bins(), bins)


def _snapshot() -> tuple[int, dict[str, int]]:
    version = CurrentRole.objects.get(role="snapshot").version
    meta = json.loads(metadata_body("snapshot", version))["signed"]["meta"]
    return version, {name: entry["version"] for name, entry in meta.items()}


def _current_targets_roles() -> dict[str, int]:
    rows = CurrentRole.objects.exclude(role__in=("root", "snapshot", "timestamp"))
    return {f"{row.role}.json": row.version for row in rows}


def test_a_rolled_back_publish_never_becomes_the_copy(repository):
    _publish({1})
    committed = _snapshot()
    assert repository_module._committed_snapshot is not None
    assert repository_module._committed_snapshot[0] == committed[0]

    with pytest.raises(Boom), transaction.atomic():
        _publish({2})  # a savepoint inside the outer transaction: written, then rolled back
        raise Boom
    assert repository_module._committed_snapshot[0] == committed[0]
    assert _snapshot() == committed

    _publish({3})
    version, meta = _snapshot()
    assert version == committed[0] + 1
    assert meta == _current_targets_roles()  # bin 2 kept its committed version


def test_a_copy_of_another_version_is_not_used(repository):
    _publish({1})
    # As if another process had published meanwhile: the copy names an older version.
    stale_version, stale_meta = repository_module._committed_snapshot
    _publish({4})
    repository_module._remember_snapshot(stale_version, stale_meta)
    _publish({5})
    _version, meta = _snapshot()
    assert meta == _current_targets_roles()
    assert meta["bins-4.json"] == CurrentRole.objects.get(role="bins-4").version
