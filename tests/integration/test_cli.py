"""The pinned command line, run in-process against the test database."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.utils import timezone

from bastion.accounts.models import User
from bastion.cli import CommandError, main, parse_duration
from bastion.security import caveats, macaroons
from bastion.tokens.models import ApiToken
from tests.unit.core.builders import make_wheel

pytestmark = pytest.mark.django_db


def run(capsys, *argv: str, stdin: str | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_user_create_prints_nothing_and_marks_email_verified(capsys, monkeypatch):
    code, out, err = run(
        capsys,
        "user",
        "create",
        "alice",
        "--email",
        "alice@example.com",
        "--password-stdin",
        stdin="correct horse battery staple\n",
        monkeypatch=monkeypatch,
    )
    assert (code, out, err) == (0, "", "")
    user = User.objects.get(username="alice")
    assert user.email_verified and user.check_password("correct horse battery staple")
    assert user.password.startswith("argon2")
    assert not user.is_superuser


def test_user_create_errors_are_one_line(capsys, monkeypatch):
    assert run(capsys, "user", "create", "alice", "--email", "a@example.com")[0] == 0
    code, out, err = run(capsys, "user", "create", "alice", "--email", "b@example.com")
    assert code != 0 and out == ""
    assert err.count("\n") == 1 and "already exists" in err
    code, _, err = run(capsys, "user", "create", "carol", "--email", "A@example.com")
    assert code != 0 and "already in use" in err
    code, _, err = run(capsys, "user", "create", "dave", "--email", "not-an-address")
    assert code != 0 and "invalid e-mail" in err
    code, _, err = run(
        capsys,
        "user",
        "create",
        "erin",
        "--email",
        "e@example.com",
        "--password-stdin",
        stdin="123\n",
        monkeypatch=monkeypatch,
    )
    assert code != 0 and "password rejected" in err
    assert not User.objects.filter(username__in=["carol", "dave", "erin"]).exists()


def test_superuser_flag(capsys):
    assert run(capsys, "user", "create", "root", "--email", "r@example.com", "--superuser")[0] == 0
    assert User.objects.get(username="root").is_superuser


def test_token_create_prints_only_the_token(capsys):
    run(capsys, "user", "create", "alice", "--email", "alice@example.com")
    code, out, err = run(
        capsys,
        "token",
        "create",
        "alice",
        "--project",
        "Foo_Bar",
        "--project",
        "baz",
        "--expires-in",
        "30d",
        "--name",
        "ci",
    )
    assert code == 0 and err == ""
    token = out.strip()
    assert out == token + "\n" and token.startswith("bastion-")
    row = ApiToken.objects.get(name="ci")
    assert row.project_names == ["foo-bar", "baz"]
    assert abs((row.expires - timezone.now()) - timedelta(days=30)) < timedelta(minutes=1)
    embedded = macaroons.caveats_of(token)
    assert caveats.ProjectName(normalized_names=("foo-bar", "baz")) in embedded
    assert caveats.RequestUser(user_id=str(row.user_id)) in embedded


def test_token_create_errors(capsys):
    code, out, err = run(capsys, "token", "create", "nobody")
    assert code != 0 and out == "" and "no user named 'nobody'" in err
    run(capsys, "user", "create", "alice", "--email", "alice@example.com")
    assert run(capsys, "token", "create", "alice", "--name", "dup")[0] == 0
    code, out, err = run(capsys, "token", "create", "alice", "--name", "dup")
    assert code != 0 and out == "" and "already has a token named 'dup'" in err
    code, _, err = run(capsys, "token", "create", "alice", "--expires-in", "forever")
    assert code != 0 and "invalid duration" in err
    code, _, err = run(capsys, "token", "create", "alice", "--project=-bad-")
    assert code != 0 and "not a valid project name" in err
    assert ApiToken.objects.count() == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("2w", timedelta(weeks=2)),
        ("90m", timedelta(minutes=90)),
        ("45s", timedelta(seconds=45)),
    ],
)
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["0d", "-1d", "d", "1y", "1.5d", ""])
def test_parse_duration_rejects(text):
    with pytest.raises(CommandError):
        parse_duration(text)


def test_check_dist(capsys, tmp_path):
    wheel = make_wheel(tmp_path, name="demo", version="1.0")
    code, out, err = run(capsys, "check-dist", str(wheel))
    assert code == 0 and "valid bdist_wheel of demo 1.0" in out and err == ""
    code, out, err = run(capsys, "check-dist", str(wheel), "--name", "other", "--version", "1.0")
    assert code == 1 and "dist.form.name-mismatch" in err
    broken = tmp_path / "demo-2.0-py3-none-any.whl"
    broken.write_bytes(b"not a zip")
    code, out, err = run(capsys, "check-dist", str(broken))
    assert code == 1 and "dist.archive." in err
    code, out, err = run(capsys, "check-dist", str(tmp_path / "missing.whl"))
    assert code == 2 and "no such file" in err


def test_serve_refuses_a_busy_port_in_one_line(capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = run(capsys, "serve", "--port", str(port))
    assert code == 2 and out == ""
    assert err == f"bastion: error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
