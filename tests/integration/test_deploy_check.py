"""Django's deployment checklist (``check --deploy``) passes for an https index, in a fresh
process with bastion's own settings module (not the test settings)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

HTTPS_BASE = "https://pypi.example.test"

SHOW_SETTINGS = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({name: getattr(s, name, None) for name in (
    "ALLOWED_HOSTS", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD", "SECURE_PROXY_SSL_HEADER", "SECURE_SSL_REDIRECT", "SECURE_SSL_HOST",
    "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SILENCED_SYSTEM_CHECKS", "MIDDLEWARE",
)}))
"""


def _environ(data_dir: Path, **bastion: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("BASTION_")}
    env["DJANGO_SETTINGS_MODULE"] = "bastion.settings"
    env["BASTION_DATA_DIR"] = str(data_dir / "data")  # fresh: nothing created yet
    env["BASTION_SECRET_KEY"] = secrets.token_urlsafe(50)[:50]
    env.update({"BASTION_" + key.upper(): value for key, value in bastion.items()})
    return env


def _run(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    # cwd: a directory without bastion.toml, so only the environment configures the process.
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def check_deploy(tmp_path: Path, **bastion: str) -> subprocess.CompletedProcess[str]:
    env = _environ(tmp_path, **bastion)
    return _run(tmp_path, env, "-m", "django", "check", "--deploy", "--fail-level", "WARNING")


def settings_of(tmp_path: Path, **bastion: str) -> dict[str, object]:
    result = _run(tmp_path, _environ(tmp_path, **bastion), "-c", SHOW_SETTINGS)
    assert result.returncode == 0, result.stderr
    shown: dict[str, object] = json.loads(result.stdout)
    return shown


@pytest.mark.parametrize("proxy_header", [None, "X-Forwarded-Proto"])
def test_check_deploy_is_clean_for_an_https_index(tmp_path, proxy_header):
    extra = {"proxy_ssl_header": proxy_header} if proxy_header else {}
    result = check_deploy(tmp_path, base_url=HTTPS_BASE, **extra)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr


def test_check_deploy_does_catch_problems(tmp_path):
    """The check above is a real one: DEBUG on is reported (security.W018)."""
    result = check_deploy(tmp_path, base_url=HTTPS_BASE, debug="true")
    assert result.returncode != 0
    assert "security.W018" in result.stdout + result.stderr


def test_https_settings_without_a_proxy_header(tmp_path):
    shown = settings_of(tmp_path, base_url=HTTPS_BASE)
    assert shown["ALLOWED_HOSTS"] == ["pypi.example.test"]
    assert shown["SECURE_HSTS_SECONDS"] == 365 * 24 * 3600
    assert shown["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is False
    assert shown["SECURE_HSTS_PRELOAD"] is False
    assert shown["SESSION_COOKIE_SECURE"] is True and shown["CSRF_COOKIE_SECURE"] is True
    # No way to tell https from http behind the proxy: no redirect (it would loop).
    assert shown["SECURE_PROXY_SSL_HEADER"] is None and shown["SECURE_SSL_REDIRECT"] is False
    assert "security.W008" in shown["SILENCED_SYSTEM_CHECKS"]  # type: ignore[operator]
    middleware = shown["MIDDLEWARE"]
    assert isinstance(middleware, list) and middleware[0] == "bastion.hosts.HostCheckMiddleware"


def test_https_settings_behind_a_proxy_that_says_https(tmp_path):
    shown = settings_of(tmp_path, base_url=HTTPS_BASE, proxy_ssl_header="X-Forwarded-Proto")
    assert shown["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert shown["SECURE_SSL_REDIRECT"] is True
    assert shown["SECURE_SSL_HOST"] == "pypi.example.test"
    assert "security.W008" not in shown["SILENCED_SYSTEM_CHECKS"]  # type: ignore[operator]


def test_loopback_default_settings(tmp_path):
    shown = settings_of(tmp_path)
    assert shown["ALLOWED_HOSTS"] == ["127.0.0.1", "localhost", "[::1]"]
    assert shown["SECURE_HSTS_SECONDS"] == 0 and shown["SECURE_SSL_REDIRECT"] is False
    assert shown["SESSION_COOKIE_SECURE"] is False
