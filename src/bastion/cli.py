"""The ``bastion`` command: serve, migrate, user and token administration, offline checks,
releases (yank, un-yank)."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bastion.projects.models import Release

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_ERROR = 2


class CommandError(Exception):
    """A one-line reason the command could not do its job."""


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bastion.settings")
    import django

    from bastion.config import ConfigError

    try:
        django.setup()
    except ConfigError as exc:
        raise CommandError(f"configuration error: {exc}") from None


_DURATION = re.compile(r"\A(\d+)\s*([smhdw])\Z")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip().lower())
    if not match or int(match.group(1)) <= 0:
        raise CommandError(
            f"invalid duration {text!r}: use a positive number and a unit, e.g. 90m, 12h, 30d, 2w"
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _migrate(verbosity: int = 0) -> None:
    from django.core.management import call_command

    from bastion.storage import StorageError, prepare_store

    call_command("migrate", interactive=False, verbosity=verbosity)
    call_command("createcachetable", verbosity=verbosity)  # shared rate limits without Redis
    from bastion.signing.services import ensure_development_repository

    ensure_development_repository()  # TUF from the first start on the embedded default
    try:
        prepare_store()
    except StorageError as exc:
        raise CommandError(f"storage: {exc}") from None


def _prepare_local_store() -> None:
    """A local store is this node's own: its directories are made (and files stored in an
    earlier layout moved) even without ``bastion migrate`` (``serve --no-migrate``)."""
    from bastion.storage import StorageError, prepare_store

    try:
        prepare_store(local_only=True)
    except StorageError as exc:
        raise CommandError(f"storage: {exc}") from None


def cmd_migrate(args: argparse.Namespace) -> int:
    _setup_django()
    _migrate(verbosity=1)
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    _setup_django()
    from django.conf import settings

    config = settings.BASTION
    _check_can_listen(args.host, args.port)
    if not args.no_migrate:
        _migrate()
    else:
        _prepare_local_store()
    config.spool_dir.mkdir(parents=True, exist_ok=True)
    from bastion.uploads.spool import remove_abandoned_spool_files

    remove_abandoned_spool_files(config.spool_dir)  # left by a worker killed mid-upload
    _first_start_notice(args.host, args.port)
    from bastion.server import exec_master

    # Same pid, without Django: gunicorn's master and the periodic TUF refresh (bastion.server).
    exec_master(
        host=args.host,
        port=args.port,
        workers=args.workers,
        read_timeout=config.read_timeout,
        refresh_interval=config.tuf.refresh_interval.total_seconds(),
    )
    return EXIT_OK  # pragma: no cover - exec_master does not return


def _check_can_listen(host: str, port: int) -> None:
    """Fail with one line, before starting workers, when the address cannot be bound."""
    import socket

    if not 0 < port < 65536:
        raise CommandError(f"invalid port {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise CommandError(f"cannot resolve --host {host!r}: {exc.strerror}") from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _first_start_notice(host: str, port: int) -> None:
    from django.conf import settings
    from django.db import InterfaceError, OperationalError, connection

    from bastion.accounts.models import User

    config = settings.BASTION
    try:
        if User.objects.exists():
            return
    except (OperationalError, InterfaceError):
        # A stateless node (--no-migrate) starts all the same: it answers 503 naming the
        # database (and /healthz says so) until the database is back, then serves.
        connection.close()
        print(
            "bastion: warning: the database is unavailable; serving 503s until it answers",
            file=sys.stderr,
            flush=True,
        )
        return
    where = (
        f"data directory {config.data_dir}"
        if config.embedded
        else f"database {config.database_url.split('@')[-1]}, storage {config.storage_url}"
    )
    # The index answers only for its base URL's host (bastion.hosts): show that, not the socket.
    print(
        f"bastion: listening on {host}:{port}, serving {config.base_url}/ ({where}).\n"
        "bastion: no users yet. Create one and an upload token with:\n"
        "  bastion user create alice --email alice@example.com --password-stdin\n"
        "  bastion token create alice --name laptop\n"
        f"bastion: then upload with twine: twine upload --repository-url "
        f"{config.base_url}/legacy/ -u __token__ -p <token> dist/*",
        file=sys.stderr,
        flush=True,
    )


def cmd_user_create(args: argparse.Namespace) -> int:
    _setup_django()
    from bastion.accounts.errors import AccountError
    from bastion.accounts.services import create_user
    from bastion.actors import Actor

    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CommandError("no password on standard input")
    try:
        create_user(
            actor=Actor.operator(),
            username=args.username,
            email=args.email,
            password=password,
            superuser=args.superuser,
            no_limits=args.no_limits,
            email_verified=True,
        )
    except AccountError as exc:
        raise CommandError(exc.message) from None
    return EXIT_OK


def cmd_token_create(args: argparse.Namespace) -> int:
    _setup_django()
    from django.utils import timezone

    from bastion.accounts.models import User
    from bastion.actors import Actor
    from bastion.tokens.errors import TokenServiceError
    from bastion.tokens.services import create_token

    expires_in = parse_duration(args.expires_in) if args.expires_in else None
    user = User.objects.filter(username=args.username).first()
    if user is None:
        raise CommandError(f"no user named {args.username!r}")
    if not user.is_active:
        raise CommandError(f"the user {args.username!r} is disabled")
    try:
        _token, secret = create_token(
            actor=Actor.operator(),
            user=user,
            name=args.name,
            project_names=args.project or (),
            expires_in=expires_in,
            now=timezone.now(),
        )
    except TokenServiceError as exc:
        raise CommandError(exc.message) from None
    print(secret)
    return EXIT_OK


def cmd_check_dist(args: argparse.Namespace) -> int:
    # Pure: no Django, no database; the same pipeline the upload endpoint runs.
    from bastion.core.dists import DeclaredFields, DistributionRejected, validate_distribution

    path = Path(args.file)
    if not path.is_file():
        raise CommandError(f"{path}: no such file")
    if (args.name is None) != (args.version is None):
        raise CommandError("give --name and --version together, or neither")
    declared = (
        DeclaredFields(name=args.name, version=args.version)
        if args.name is not None and args.version is not None
        else None
    )
    from bastion.config import ConfigError, load_validation_settings

    try:
        policy, limits = load_validation_settings()
    except ConfigError as exc:
        raise CommandError(f"configuration error: {exc}") from None
    try:
        dist = validate_distribution(
            path, filename=path.name, declared=declared, limits=limits, policy=policy
        )
    except DistributionRejected as rejected:
        for problem in rejected.problems:
            field = f" [{problem.field}]" if problem.field else ""
            print(f"{path.name}: {problem.code}{field}: {problem.message}", file=sys.stderr)
        return EXIT_REJECTED
    print(f"{dist.filename}: valid {dist.packagetype} of {dist.name} {dist.version}")
    return EXIT_OK


def _parse_since(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(
            f"invalid --since {text!r}: use ISO 8601, e.g. 2026-01-31T00:00:00Z"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def cmd_audit_verify(args: argparse.Namespace) -> int:
    _setup_django()
    from bastion.audit.queries import verify_chain

    count, fault = verify_chain()
    if fault is not None:
        print(
            f"bastion: audit trail broken at {fault} ({count} events verified before it)",
            file=sys.stderr,
        )
        return EXIT_REJECTED
    print(f"audit trail intact: {count} events")
    return EXIT_OK


def cmd_audit_export(args: argparse.Namespace) -> int:
    since = _parse_since(args.since) if args.since else None
    _setup_django()
    import json

    from bastion.audit.queries import export_records

    out = sys.stdout
    for record in export_records(since):
        out.write(json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
        out.write("\n")
    out.flush()
    return EXIT_OK


def cmd_audit_retention(args: argparse.Namespace) -> int:
    _setup_django()
    from django.conf import settings
    from django.utils import timezone

    from bastion.audit.services import truncate_old_addresses

    days = settings.BASTION.ip_retention_days
    changed = truncate_old_addresses(older_than=timedelta(days=days), now=timezone.now())
    print(f"forgot the full IP address of {changed} event(s) older than {days} days")
    return EXIT_OK


def _release_for(project_name: str, version: str) -> Release:
    from bastion.core.names import normalize_name
    from bastion.core.versions import canonical_version, parse_version
    from bastion.projects.models import Project, Release

    project = Project.objects.filter(normalized_name=normalize_name(project_name)).first()
    if project is None:
        raise CommandError(f"no project named {project_name!r}")
    try:
        canonical = canonical_version(parse_version(version))
    except ValueError:
        raise CommandError(f"invalid version {version!r}") from None
    release = Release.objects.filter(project=project, canonical_version=canonical).first()
    if release is None:
        raise CommandError(f"project {project.name!r} has no release {version!r}")
    return release


def cmd_release_yank(args: argparse.Namespace) -> int:
    _setup_django()
    from bastion.actors import Actor
    from bastion.projects.errors import ProjectError
    from bastion.projects.services import yank_release

    release = _release_for(args.project, args.version)
    try:
        yank_release(actor=Actor.operator(), release=release, reason=args.reason or "")
    except ProjectError as exc:
        raise CommandError(exc.message) from None
    return EXIT_OK


def cmd_release_unyank(args: argparse.Namespace) -> int:
    _setup_django()
    from bastion.actors import Actor
    from bastion.projects.errors import ProjectError
    from bastion.projects.services import unyank_release

    release = _release_for(args.project, args.version)
    try:
        unyank_release(actor=Actor.operator(), release=release)
    except ProjectError as exc:
        raise CommandError(exc.message) from None
    return EXIT_OK


def cmd_storage_sweep(args: argparse.Namespace) -> int:
    _setup_django()
    from django.utils import timezone

    from bastion.actors import Actor
    from bastion.storage import StorageError, blob_store
    from bastion.uploads.sweep import sweep_unreferenced_blobs

    older_than = parse_duration(args.older_than)
    try:
        report = sweep_unreferenced_blobs(
            actor=Actor.operator(), store=blob_store(), older_than=older_than, now=timezone.now()
        )
    except StorageError as exc:
        raise CommandError(f"storage: {exc}") from None
    print(f"removed {len(report.removed)} unreferenced blob(s) of {report.examined}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bastion", description="A self-hosted Python package index."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the web server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=min(4, (os.cpu_count() or 1) * 2))
    serve.add_argument("--no-migrate", action="store_true", help="do not apply migrations first")
    serve.set_defaults(handler=cmd_serve)

    migrate = commands.add_parser("migrate", help="create or upgrade the database schema")
    migrate.set_defaults(handler=cmd_migrate)

    user = commands.add_parser("user", help="manage users").add_subparsers(
        dest="user_command", required=True, metavar="ACTION"
    )
    user_create = user.add_parser("create", help="create a user (e-mail counts as verified)")
    user_create.add_argument("username")
    user_create.add_argument("--email", required=True)
    user_create.add_argument("--password-stdin", action="store_true")
    user_create.add_argument("--superuser", action="store_true")
    user_create.add_argument(
        "--no-limits",
        action="store_true",
        help="exempt from the upload API's limits (new projects, uploads per token)",
    )
    user_create.set_defaults(handler=cmd_user_create)

    token = commands.add_parser("token", help="manage API tokens").add_subparsers(
        dest="token_command", required=True, metavar="ACTION"
    )
    token_create = token.add_parser("create", help="mint an upload token; prints only the token")
    token_create.add_argument("username")
    token_create.add_argument("--project", action="append", metavar="NAME")
    token_create.add_argument("--expires-in", metavar="DURATION", help="e.g. 12h, 30d, 2w")
    token_create.add_argument("--name", metavar="LABEL")
    token_create.set_defaults(handler=cmd_token_create)

    storage = commands.add_parser("storage", help="maintain the blob store")
    storage_actions = storage.add_subparsers(dest="action", required=True, metavar="ACTION")
    sweep = storage_actions.add_parser(
        "sweep", help="remove blobs no file refers to (left by a crash mid-upload)"
    )
    sweep.add_argument(
        "--older-than", default="1h", metavar="DURATION", help="only blobs this old (default 1h)"
    )
    sweep.set_defaults(handler=cmd_storage_sweep)

    check = commands.add_parser("check-dist", help="validate a distribution file offline")
    check.add_argument("file")
    check.add_argument("--name")
    check.add_argument("--version")
    check.set_defaults(handler=cmd_check_dist)

    audit = commands.add_parser("audit", help="the audit trail").add_subparsers(
        dest="audit_command", required=True, metavar="ACTION"
    )
    verify = audit.add_parser("verify", help="re-compute the hash chain; exit 1 if it is broken")
    verify.set_defaults(handler=cmd_audit_verify)
    export = audit.add_parser("export", help="write events as JSON lines (see docs/audit.md)")
    export.add_argument("--since", metavar="ISO8601")
    export.set_defaults(handler=cmd_audit_export)
    retention = audit.add_parser(
        "retention", help="truncate IP addresses older than BASTION_IP_RETENTION_DAYS (cron it)"
    )
    retention.set_defaults(handler=cmd_audit_retention)

    from bastion.signing.cli import register as register_tuf_commands

    register_tuf_commands(commands)

    release = commands.add_parser("release", help="yank or un-yank a release (PEP 592)")
    release_actions = release.add_subparsers(
        dest="release_command", required=True, metavar="ACTION"
    )
    yank = release_actions.add_parser(
        "yank", help="mark a release yanked: installers skip it unless pinned with =="
    )
    yank.add_argument("project")
    yank.add_argument("version")
    yank.add_argument("--reason", metavar="TEXT", help="shown to installers")
    yank.set_defaults(handler=cmd_release_yank)
    unyank = release_actions.add_parser("unyank", help="undo a yank")
    unyank.add_argument("project")
    unyank.add_argument("version")
    unyank.set_defaults(handler=cmd_release_unyank)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "workers", 1) < 1:
        parser.error("--workers must be at least 1")
    try:
        return int(args.handler(args))
    except CommandError as exc:
        print(f"bastion: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - a one-line reason instead of a traceback
        from bastion.config import ConfigError

        if isinstance(exc, ConfigError):
            print(f"bastion: error: configuration error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        if os.environ.get("BASTION_DEBUG"):
            raise
        reason = " ".join(str(exc).split()) or type(exc).__name__
        print(f"bastion: error: {type(exc).__name__}: {reason}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
