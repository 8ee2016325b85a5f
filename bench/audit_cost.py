#!/usr/bin/env python3
"""What the audit trail costs: upload and sign-in latency with and without recording events.

Runs in-process with Django's test client against a fresh SQLite database (or the PostgreSQL
database named by --database-url), so the difference is the trail's own cost (hash chain,
chain-head lock, one INSERT per event) without network noise. "Without" replaces the event
writer with a no-op for the measurement only.

    .venv/bin/python bench/audit_cost.py [--uploads 200] [--signins 200] [--database-url URL]
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from _inprocess import ROOT, setup_django  # bench/ is on sys.path when run


def setup(database_url: str | None) -> None:
    # measure the trail, not allauth's rate limiter
    setup_django("bastion-bench-audit-", database_url, ACCOUNT_RATE_LIMITS=False)


@contextmanager
def trail(enabled: bool):
    import bastion.audit.services as services

    if enabled:
        yield
        return
    original = services.record

    def no_op(*args, **kwargs):
        return None

    modules = [m for m in list(sys.modules.values()) if getattr(m, "record", None) is original]
    for module in modules:
        module.record = no_op
    try:
        yield
    finally:
        for module in modules:
            module.record = original


def measure_uploads(count: int, enabled: bool, workdir: Path, offset: int) -> list[float]:
    from django.test import Client
    from django.utils import timezone
    from tests.integration.uploads.test_upload_endpoint import form_for
    from tests.unit.core.builders import make_wheel

    from bastion.accounts.models import User
    from bastion.actors import Actor
    from bastion.tokens.services import create_token

    user = User.objects.get(username="bench")
    _row, token = create_token(
        actor=Actor.operator(), user=user, name=f"bench-{offset}", now=timezone.now()
    )
    auth = "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()
    wheels = [
        make_wheel(workdir, name=f"bench-audit-{offset}", version=f"{n}.0") for n in range(count)
    ]
    client = Client()
    timings = []
    with trail(enabled):
        for wheel in wheels:
            form = form_for(wheel)
            started = time.perf_counter()
            response = client.post(
                "/legacy/", data=form, HTTP_AUTHORIZATION=auth, REMOTE_ADDR="192.0.2.10"
            )
            timings.append(time.perf_counter() - started)
            assert response.status_code == 200, response.content
    return timings


def measure_signins(count: int, enabled: bool) -> list[float]:
    from django.test import Client

    timings = []
    with trail(enabled):
        for _ in range(count):
            client = Client()
            started = time.perf_counter()
            response = client.post(
                "/account/login/",
                {"login": "bench", "password": "benchmark passphrase 1"},
                REMOTE_ADDR="192.0.2.10",
            )
            timings.append(time.perf_counter() - started)
            assert response.status_code == 302, response.status_code
    return timings


def summary(name: str, on: list[float], off: list[float]) -> dict[str, object]:
    on_ms = statistics.median(on) * 1000
    off_ms = statistics.median(off) * 1000
    return {
        "measure": name,
        "with_trail_ms_p50": round(on_ms, 2),
        "without_trail_ms_p50": round(off_ms, 2),
        "overhead_ms": round(on_ms - off_ms, 2),
        "overhead_pct": round((on_ms / off_ms - 1) * 100, 1),
        "n": len(on),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--signins", type=int, default=100)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    setup(args.database_url)
    from bastion.accounts.services import create_user
    from bastion.actors import Actor

    create_user(
        actor=Actor.operator(),
        username="bench",
        email="bench@example.com",
        password="benchmark passphrase 1",
        email_verified=True,
        no_limits=True,  # a benchmark creates more projects than the hourly limit allows
    )
    workdir = Path(tempfile.mkdtemp(prefix="bastion-bench-wheels-"))
    rows = []
    # alternate to spread any drift over both variants; the first round warms up
    measure_uploads(10, True, workdir, offset=0)
    up_on, up_off = [], []
    for round_ in range(2):
        up_on += measure_uploads(args.uploads // 2, True, workdir, offset=2 * round_ + 1)
        up_off += measure_uploads(args.uploads // 2, False, workdir, offset=2 * round_ + 2)
    rows.append(summary("upload (POST /legacy/, small wheel)", up_on, up_off))
    measure_signins(5, True)
    in_on, in_off = [], []
    for _ in range(2):
        in_on += measure_signins(args.signins // 2, True)
        in_off += measure_signins(args.signins // 2, False)
    rows.append(summary("sign-in (POST /account/login/)", in_on, in_off))

    print("| measure | with trail p50 (ms) | without p50 (ms) | overhead |")
    print("|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['measure']} | {row['with_trail_ms_p50']} | {row['without_trail_ms_p50']} "
            f"| {row['overhead_ms']} ms ({row['overhead_pct']}%) |"
        )
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    with open(out / "audit_cost.jsonl", "a") as handle:
        for row in rows:
            handle.write(json.dumps(dict(row, database=args.database_url or "sqlite")) + "\n")


if __name__ == "__main__":
    main()
