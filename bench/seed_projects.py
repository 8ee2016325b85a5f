#!/usr/bin/env python3
"""Bench only: add many projects to a bastion data directory in bulk, through bastion's models.

Loading 100,000 projects through ``POST /legacy/`` takes hours on 2 cores (about 10 uploads/s,
each signs TUF metadata), so the W2 run at 100,000 projects (bench/peers.py) starts from the
10,000 projects of W2 uploaded through the API and adds the rest here, in one transaction per
batch, with bastion's own Django models:

- ``Project`` rows with a valid, unique name (a realistic three-word name, never a look-alike of
  an existing project: ``confusable_key`` is checked and stored as uploads store it), the serial
  of this change, and an ``Owner`` ``Role`` for ``--owner`` (default ``bench``), as
  ``bastion.projects.services.create_project`` makes them;
- one change of the index: under ``lock_index()``, ``bump_serial(projects_changed=True)``, so
  ``IndexState.projects_serial`` moves and ``/simple/`` (``index.pages.root_page``, keyed by
  that serial) is rendered again on the next request with every project listed.

What is left out, because nothing the benchmark reads depends on it: the added projects have no
releases or files (``/simple/<name>/`` answers with an empty list; TUF targets are unchanged,
since it signs files only), and no audit events (``project.created``) are written. Do not run
this on an index anyone uses.

    DJANGO_SETTINGS_MODULE=bastion.settings BASTION_DATA_DIR=/path/to/data \\
        .venv/bin/python bench/seed_projects.py --add 90000 [--names-out FILE]

``--names-out`` writes the normalized names added, one a line (peers.py gives pypiserver the
same names). Deterministic for a given database content (``--seed``).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src")]

BATCH = 5_000

# Words for names like "astro-cache-backoff-kit": enough combinations for several 100,000s.
PREFIXES = (
    "py django flask fast async aio pytest sphinx azure google aws open data ml deep tiny "
    "simple easy smart micro rapid lazy strict typed cloud web net geo bio astro quant stat "
    "text image audio video"
).split()
NOUNS = (
    "json yaml toml config settings cache queue worker scheduler client server router auth "
    "token session storage blob bucket table schema model validator parser lexer compiler "
    "formatter linter logger metrics tracing profiler debugger console terminal shell cli http "
    "grpc socket stream pipeline graph tree matrix tensor vector frame series index search "
    "crawler scraper mailer notifier webhook payment invoice report chart plot canvas widget "
    "form template markdown html pdf csv excel sql orm migrations fixtures factory mock stub "
    "faker retry backoff ratelimit pool lock crypto hash signer uuid datetime timezone units "
    "money i18n slug color emoji regex diff patch sync watch"
).split()
SUFFIXES = (
    "utils tools kit lib core plus extras lite helpers compat ext contrib backend adapter".split()
)


def candidate_names(rng: random.Random):
    """An endless stream of realistic project names (three or four words)."""
    while True:
        parts = [rng.choice(PREFIXES), rng.choice(NOUNS), rng.choice(NOUNS)]
        if parts[1] == parts[2]:
            continue
        if rng.random() < 0.5:
            parts.append(rng.choice(SUFFIXES))
        sep = "_" if rng.random() < 0.1 else "-"
        yield sep.join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--add", type=int, required=True, help="how many projects to add")
    ap.add_argument("--owner", default="bench", help="username of the Owner of every project")
    ap.add_argument("--seed", type=int, default=100_000)
    ap.add_argument("--names-out", type=Path, help="write the normalized names added here")
    a = ap.parse_args(argv)
    if not os.environ.get("BASTION_DATA_DIR"):
        raise SystemExit("set BASTION_DATA_DIR (the data directory to add projects to)")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bastion.settings")

    import django

    django.setup()
    from django.db import transaction
    from django.utils import timezone

    from bastion.accounts.models import User
    from bastion.core.names import (
        confusable_key,
        is_prohibited_name,
        is_stdlib_name,
        is_valid_name,
        normalize_name,
    )
    from bastion.projects.models import IndexState, Project, Role, RoleName
    from bastion.projects.services import bump_serial, lock_index

    owner = User.objects.get(username=a.owner)
    taken_names = set(Project.objects.values_list("normalized_name", flat=True))
    taken_keys = set(Project.objects.values_list("confusable_key", flat=True))
    rng = random.Random(a.seed)
    stream = candidate_names(rng)
    names: list[str] = []
    while len(names) < a.add:
        name = next(stream)
        normalized = normalize_name(name)
        key = confusable_key(name)
        if (
            normalized in taken_names
            or key in taken_keys
            or not is_valid_name(name)
            or is_stdlib_name(name)
            or is_prohibited_name(name)
        ):
            continue
        taken_names.add(normalized)
        taken_keys.add(key)
        names.append(name)

    started = time.perf_counter()
    now = timezone.now()
    with transaction.atomic():  # one change of the project list, as one upload would make
        state = lock_index()
        serial = bump_serial(state, projects_changed=True)
        for start in range(0, len(names), BATCH):
            chunk = names[start : start + BATCH]
            projects = Project.objects.bulk_create(
                [
                    Project(
                        name=n,
                        normalized_name=normalize_name(n),
                        confusable_key=confusable_key(n),
                        serial=serial,
                        created=now,
                    )
                    for n in chunk
                ]
            )
            if projects and projects[0].pk is None:  # backends that do not return ids
                by_name = dict(Project.objects.filter(name__in=chunk).values_list("name", "pk"))
                for project in projects:
                    project.pk = by_name[project.name]
            Role.objects.bulk_create(
                [
                    Role(user=owner, project_id=p.pk, role_name=RoleName.OWNER, created=now)
                    for p in projects
                ]
            )
    total = Project.objects.count()
    state = IndexState.objects.get(pk=1)
    print(
        f"added {len(names)} projects in {time.perf_counter() - started:.1f}s; "
        f"{total} projects; serial {state.serial}, projects_serial {state.projects_serial}"
    )
    if a.names_out:
        a.names_out.write_text("".join(normalize_name(n) + "\n" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
