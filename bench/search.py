#!/usr/bin/env python3
"""Search on a large index: /search/?q= over --projects projects (100,000 by default).

Runs in-process against a fresh SQLite database (FTS5), or the PostgreSQL database named by
--database-url (tsvector + GIN); --postgres creates and drops a throw-away database on the
server tests use (127.0.0.1:5432, user postgres) when it answers.

1. Creates the projects with one release each in bulk (``bulk_create``, batches of 5,000): names
   of two or three words, summaries of 5 to 12 words, drawn from a generated word list with a
   Zipf-like skew (a few words are in many summaries, most in few). The search index is filled
   by its triggers as the rows go in, so the insert time includes building it.
2. Times --repeat searches per kind of query, through ``search_projects()`` (the query alone) and
   through Django's test client (``GET /search/?q=``: view, template, middleware), after one
   unrecorded warm-up each. ``ANALYZE`` runs first (on PostgreSQL the planner otherwise
   reads stale statistics right after a bulk load and scans every project).
3. Prints a Markdown table (p50/p95 in ms, hits) and appends JSON lines to
   ``bench/results/search.jsonl`` (git-ignored).

    .venv/bin/python bench/search.py [--projects 100000] [--repeat 50] [--postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
BATCH = 5_000
SYLLABLES = (
    "ba be bi bo bu da de di do du fa fe fi fo ka ke ki ko ku la le li lo lu ma me mi mo mu "
    "na ne ni no nu pa pe pi po pu ra re ri ro ru sa se si so su ta te ti to tu va ve vi vo "
    "za ze zi zo"
).split()
COMMON = (
    "python client library server async http json parser fast simple web framework api tool "
    "data test plugin django flask cli utils config database orm cache queue logging crypto"
).split()


def word_list(seed: int) -> list[str]:
    """About 6,000 distinct words: the common ones first, then made-up ones of 2-4 syllables."""
    rng = random.Random(seed)
    words = list(COMMON)
    seen = set(words)
    while len(words) < 6_000:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def setup(database_url: str | None, data_dir: str | None = None) -> None:
    os.environ["BASTION_DATA_DIR"] = data_dir or tempfile.mkdtemp(prefix="bastion-bench-search-")
    os.environ["BASTION_SECRET_KEY"] = "bench-" + "x" * 40
    if database_url:
        os.environ["BASTION_DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "bastion.settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def populate(count: int, words: list[str], seed: int) -> tuple[float, list[str]]:
    """Insert ``count`` projects with one release each; returns (seconds, project names)."""
    from django.db import transaction
    from django.utils import timezone

    from bastion.core.names import normalize_name
    from bastion.projects.models import Project, Release

    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(len(words))]  # Zipf-like
    names: list[str] = []
    taken: set[str] = set()
    while len(names) < count:
        name = "-".join(rng.choices(words, weights=weights, k=rng.choice((2, 2, 3))))
        if name in taken:
            name = f"{name}-{len(names)}"
        taken.add(name)
        names.append(name)
    now = timezone.now()
    started = time.perf_counter()
    for start in range(0, count, BATCH):
        chunk = names[start : start + BATCH]
        with transaction.atomic():
            projects = Project.objects.bulk_create(
                [Project(name=n, normalized_name=normalize_name(n), created=now) for n in chunk]
            )
            if projects[0].pk is None:  # backends that do not return ids
                by_name = dict(Project.objects.filter(name__in=chunk).values_list("name", "pk"))
                for project in projects:
                    project.pk = by_name[project.name]
            Release.objects.bulk_create(
                [
                    Release(
                        project_id=project.pk,
                        version="1.0",
                        canonical_version="1",
                        created=now,
                        summary=" ".join(
                            rng.choices(words, weights=weights, k=rng.randint(5, 12))
                        ).capitalize(),
                    )
                    for project in projects
                ]
            )
    elapsed = time.perf_counter() - started
    from django.db import connection

    with connection.cursor() as cursor:  # fresh planner statistics, as autovacuum would make
        cursor.execute("ANALYZE")
    return elapsed, names


def queries(names: list[str], words: list[str], seed: int) -> dict[str, str]:
    rng = random.Random(seed + 1)
    name = rng.choice(names)
    return {
        "exact name": name,
        "name prefix (4 chars)": name[:4],
        "common word": "python",
        "two common words": "web framework",
        "rare word": words[-1],
        "one letter": "a",
        "no match": "zzzyyyxxx",
        "hostile syntax": '" * AND ( NEAR OR',
        "10 KB string": "x" * 10_240,
    }


def measure(query: str, repeat: int) -> dict[str, object]:
    from urllib.parse import urlencode

    from django.test import Client

    from bastion.projects.search import search_projects

    client = Client(HTTP_HOST="127.0.0.1:8000")  # the default base URL's host
    url = "/search/?" + urlencode({"q": query})
    result = search_projects(query)  # warm-up
    assert client.get(url).status_code == 200
    direct, through_client = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        search_projects(query)
        direct.append(time.perf_counter() - started)
        started = time.perf_counter()
        response = client.get(url)
        through_client.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
    return {
        "hits": result.total,
        "function_p50_ms": _ms(statistics.median(direct)),
        "function_p95_ms": _ms(_p95(direct)),
        "client_p50_ms": _ms(statistics.median(through_client)),
        "client_p95_ms": _ms(_p95(through_client)),
    }


def _p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.95) - 1)]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def run(database: str, database_url: str | None, args: argparse.Namespace) -> list[dict]:
    setup(database_url)
    words = word_list(args.seed)
    seconds, names = populate(args.projects, words, args.seed)
    print(
        f"\n{database}: {args.projects} projects + releases inserted, index by triggers: "
        f"{seconds:.1f} s ({args.projects / seconds:.0f} projects/s)\n"
    )
    rows = []
    for kind, query in queries(names, words, args.seed).items():
        row = {
            "database": database,
            "kind": kind,
            "query": query[:40],
            **measure(query, args.repeat),
        }
        rows.append(row)
    print("| query | hits | search_projects p50 / p95 (ms) | GET /search/ p50 / p95 (ms) |")
    print("|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['kind']} (`{row['query'][:24]}`) | {row['hits']} "
            f"| {row['function_p50_ms']} / {row['function_p95_ms']} "
            f"| {row['client_p50_ms']} / {row['client_p95_ms']} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--database-url", help="an existing, empty PostgreSQL database")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="measure on a throw-away database on 127.0.0.1:5432 instead of SQLite",
    )
    args = parser.parse_args()
    if args.postgres:
        rows = run_on_temporary_postgres(args)
    else:
        label = "postgresql" if args.database_url else "sqlite"
        rows = run(label, args.database_url, args)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    with open(out / "search.jsonl", "a") as handle:
        for row in rows:
            handle.write(json.dumps(dict(row, projects=args.projects)) + "\n")


def run_on_temporary_postgres(args: argparse.Namespace) -> list[dict]:
    import secrets

    import psycopg

    name = f"bastion_bench_search_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        return run("postgresql", f"postgresql://postgres@127.0.0.1:5432/{name}", args)
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
