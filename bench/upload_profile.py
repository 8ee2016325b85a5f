#!/usr/bin/env python3
"""Where an upload's time goes: twine's own requests replayed in process against bastion's WSGI app.

Each distribution of DIR (default: the shared harness's W3 small files) becomes the exact
multipart body twine would send (twine's ``PackageFile.metadata_dictionary``), built before
timing. The bodies are then fed to Django's WSGI handler one at a time, with no network and no
client in the measurement, into a fresh data directory (SQLite, or the PostgreSQL database
given). Prints the median and p90 per upload; ``--profile`` adds cProfile's top functions.

    .venv/bin/python bench/upload_profile.py [--dists DIR] [--rounds 3] [--profile]
        [--database-url URL]

Every round uploads every file under new project names (a suffix per round), so each round
creates its projects the way the W3 workload does.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import io
import os
import pstats
import re
import statistics
import time
from pathlib import Path

from _inprocess import setup_django  # bench/ is on sys.path when run

DEFAULT_DISTS = Path(os.environ.get("BENCH_ROOT", "/tmp/anchors")) / "data" / "w3" / "small"


def twine_body(path: Path, boundary: str) -> bytes:
    """The multipart body twine sends for ``path`` (its own metadata extraction)."""
    from twine.package import PackageFile

    package = PackageFile.from_filename(str(path), comment=None)
    fields = package.metadata_dictionary()
    fields.update({":action": "file_upload", "protocol_version": "1"})
    fields["sha256_digest"] = package.sha2_digest
    fields["blake2_256_digest"] = package.blake2_256_digest
    out = io.BytesIO()
    for key, value in fields.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if item is None:
                continue
            out.write(f"--{boundary}\r\n".encode())
            out.write(f'Content-Disposition: form-data; name="{key}"\r\n\r\n'.encode())
            out.write(str(item).encode() + b"\r\n")
    out.write(f"--{boundary}\r\n".encode())
    out.write(
        f'Content-Disposition: form-data; name="content"; filename="{path.name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
    )
    out.write(path.read_bytes() + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue()


def renamed(directory: Path, suffix: str, into: Path) -> list[Path]:
    """Copies of the distributions under project names ending in ``suffix`` (a fresh project
    per round): wheels and sdists are rebuilt with the name changed in every member."""
    import tarfile
    import zipfile

    into.mkdir(parents=True, exist_ok=True)
    result = []
    for path in sorted(directory.iterdir()):
        base = path.name.split("-")[0]
        new = base + suffix
        target = into / path.name.replace(base, new, 1)
        if path.name.endswith(".whl"):
            with zipfile.ZipFile(path) as src, zipfile.ZipFile(target, "w") as dst:
                for info in src.infolist():
                    data = src.read(info)
                    text_name = info.filename.replace(base, new)
                    if info.filename.endswith(("METADATA", "RECORD")):
                        data = _rename_text(data, base, new)
                    info.filename = text_name
                    dst.writestr(info, data)
            _fix_record(target)
        else:
            with tarfile.open(path) as src, tarfile.open(target, "w:gz") as dst:
                for member in src.getmembers():
                    data = src.extractfile(member).read() if member.isfile() else None
                    member.name = member.name.replace(base, new)
                    if data is not None and member.name.endswith("PKG-INFO"):
                        data = _rename_text(data, base, new)
                    if data is not None:
                        member.size = len(data)
                        dst.addfile(member, io.BytesIO(data))
                    else:
                        dst.addfile(member)
        result.append(target)
    return result


def _rename_text(data: bytes, base: str, new: str) -> bytes:
    """The ``Name:`` header gets the round's suffix (the rest of the metadata stays)."""
    suffix = new[len(base) :].replace("_", "-")
    return re.sub(rb"(?m)^(Name: .*?)\r?$", lambda m: m.group(1) + suffix.encode(), data, count=1)


def _fix_record(wheel: Path) -> None:
    """Rewrite RECORD with the renamed members' real hashes."""
    import hashlib
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    record_name = next(name for name in members if name.endswith(".dist-info/RECORD"))
    lines = []
    for name, data in members.items():
        if name == record_name:
            lines.append(f"{name},,")
            continue
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{name},sha256={digest},{len(data)}")
    members[record_name] = ("\n".join(lines) + "\n").encode()
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def renamed_bodies(directory: Path, boundary: str, work: Path) -> list[bytes]:
    """A new project's first two files (the first creates it), under a name no round used."""
    files = renamed(directory, "_q", work / "queries")
    return [twine_body(path, boundary) for path in files[:2]]


def _time_phases() -> dict[str, list[float]]:
    """Wrap the steps of an upload with wall-clock accumulators (per upload, summed)."""
    import functools

    from django.db.backends.base import base as db_base

    from bastion.storage import local
    from bastion.tokens import services as token_services
    from bastion.uploads import services, views

    spent: dict[str, list[float]] = {}

    def wrap(owner: object, name: str, label: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args: object, **kwargs: object) -> object:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent.setdefault(label, []).append(time.perf_counter() - started)

        setattr(owner, name, timed)

    wrap(views, "read_body", "multipart body (read_body)")
    wrap(token_services, "authenticate", "token authenticate")
    wrap(services, "project_and_role", "project_and_role")
    wrap(services, "_duplicate_before_validation", "duplicate check")
    wrap(services, "_validate", "validation")
    wrap(local.LocalBlobStore, "put", "store file (put)")
    wrap(local.LocalBlobStore, "put_bytes", "store metadata (put_bytes)")
    wrap(services, "_record", "rows + events (_record)")
    wrap(services, "create_project", "  of which create_project")
    wrap(token_services, "record_use", "token record_use")
    wrap(db_base.BaseDatabaseWrapper, "commit", "commit")
    wrap(views, "upload_distribution", "upload_distribution (total)")
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dists", type=Path, default=DEFAULT_DISTS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--callees", default="", help="with --profile: functions to expand")
    parser.add_argument("--database-url")
    parser.add_argument(
        "--phases", action="store_true", help="wall time per step of an upload (no profiler)"
    )
    parser.add_argument(
        "--queries", action="store_true", help="print the SQL of the last round's first two uploads"
    )
    args = parser.parse_args()
    setup_django("bastion-bench-upload-", args.database_url, ACCOUNT_RATE_LIMITS=False)

    from django.core.wsgi import get_wsgi_application
    from django.utils import timezone

    from bastion.accounts.services import create_user
    from bastion.actors import Actor
    from bastion.tokens.services import create_token

    user = create_user(
        actor=Actor.operator(),
        username="bench",
        email="bench@example.com",
        password="benchmark passphrase 1",
        email_verified=True,
        no_limits=True,
    )
    _row, token = create_token(actor=Actor.operator(), user=user, name="b", now=timezone.now())
    auth = "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()
    app = get_wsgi_application()
    boundary = "bench0boundary0" + "x" * 16
    work = Path(os.environ["BASTION_DATA_DIR"]) / "dists"
    rounds = []
    for round_ in range(args.rounds + 1):  # round 0 warms up
        files = renamed(args.dists, f"_r{round_}", work / str(round_))
        rounds.append([twine_body(path, boundary) for path in files])

    def post(body: bytes) -> None:
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/legacy/",
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "REMOTE_ADDR": "192.0.2.10",
            "HTTP_HOST": "testserver",
            "HTTP_AUTHORIZATION": auth,
            "CONTENT_TYPE": f"multipart/form-data; boundary={boundary}",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "wsgi.url_scheme": "http",
            "wsgi.errors": io.StringIO(),
        }
        status: list[str] = []
        chunks = app(environ, lambda s, h, *rest: status.append(s))
        answer = b"".join(chunks)
        if not status[0].startswith("200"):
            raise SystemExit(f"upload refused: {status[0]} {answer[:200]!r}")

    phases = _time_phases() if args.phases else None
    for body in rounds[0]:
        post(body)
    if phases is not None:
        phases.clear()
    timings = []
    profiler = cProfile.Profile() if args.profile else None
    for bodies in rounds[1:]:
        for body in bodies:
            if profiler:
                profiler.enable()
            started = time.perf_counter()
            post(body)
            timings.append(time.perf_counter() - started)
            if profiler:
                profiler.disable()
    if args.queries:
        from django.db import connection

        statements: list[str] = []

        def log_sql(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                spent = (time.perf_counter() - started) * 1e6
                statements.append(f"{spent:6.0f} us  " + " ".join(sql.split())[:110])

        for body in rounds[-1][:0] or renamed_bodies(args.dists, boundary, work):
            statements.clear()
            with connection.execute_wrapper(log_sql):
                post(body)
            print(f"{len(statements)} statements:")
            for sql in statements:
                print("   ", sql)
    timings.sort()
    print(
        f"{len(timings)} uploads: median {statistics.median(timings) * 1000:.2f} ms, "
        f"p90 {timings[int(len(timings) * 0.9)] * 1000:.2f} ms "
        f"({args.database_url or 'sqlite'})"
    )
    if phases is not None:
        for name, spent in phases.items():
            print(f"  {name:<40} {sum(spent) / len(timings) * 1000:6.2f} ms per upload")
    if profiler:
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(25)
        if os.environ.get("PROFILE_DUMP"):
            stats.dump_stats(os.environ["PROFILE_DUMP"])
        for name in filter(None, args.callees.split(",")):
            stats.sort_stats("cumulative").print_callees(name)


if __name__ == "__main__":
    main()
