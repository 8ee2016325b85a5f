"""bastion's configuration: one typed object, built once from the environment.

Every setting is an environment variable (``BASTION_*``); a ``bastion.toml`` in the working
directory (or the file named by ``BASTION_CONFIG``) may hold the same keys in lower case without
the prefix (``data_dir = "/srv/bastion"``). The environment wins over the file.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

from bastion.core.dists import Limits
from bastion.core.dists.policy import Policy

__all__ = [
    "LOOPBACK_HOSTS",
    "Config",
    "ConfigError",
    "TufSettings",
    "allowed_hosts",
    "load_config",
]

# Names a browser on the serving machine uses; accepted only while the base URL is loopback too.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")

_KEYS = (
    "project_create_limit",
    "project_create_ip_limit",
    "failed_auth_limit",
    "upload_limit",
    "trusted_proxies",
    "read_timeout",
    "data_dir",
    "database_url",
    "storage_url",
    "redis_url",
    "secret_key",
    "base_url",
    "proxy_ssl_header",
    "require_2fa",
    "allow_signup",
    "passkey_login",
    "pwned_passwords_url",
    "reauthentication_timeout",
    "leak_report_secret",
    "deleted_project_reservation_days",
    "email_url",
    "max_file_size",
    "max_project_size",
    "allow_local_versions",
    "ip_retention_days",
    "extra_platform_tags",
    "check_classifiers",
    "check_wheel_tags",
    "render_description",
    "max_archive_members",
    "max_uncompressed_size",
    "max_compression_ratio",
    "debug",
    "tuf_keys_dir",
    "tuf_online_key",
    "tuf_bins",
    "tuf_root_expiry",
    "tuf_targets_expiry",
    "tuf_snapshot_expiry",
    "tuf_timestamp_expiry",
    "tuf_bins_expiry",
    "tuf_gc_grace",
    "tuf_refresh_interval",
    "tuf_sign_delay",
    "front_pages_dir",
)


class ConfigError(Exception):
    """The configuration cannot be used; the message says which setting and why."""


@dataclass(frozen=True)
class Config:
    data_dir: Path
    database_url: str
    storage_url: str
    redis_url: str | None
    secret_key: str
    base_url: str
    email_url: str
    max_file_size: int = 100 * 1024 * 1024
    max_project_size: int = 10 * 1024 * 1024 * 1024
    ip_retention_days: int = 90
    policy: Policy = field(default_factory=Policy)
    limits: Limits = field(default_factory=Limits)
    debug: bool = False
    # Upload API limits "N/window" (bastion.uploads.limits): new projects per user and per
    # client address, failed credentials per address, uploads per token.
    project_create_limit: str = "20/hour"
    project_create_ip_limit: str = "40/hour"
    failed_auth_limit: str = "30/5min"
    upload_limit: str = "600/hour"
    # Addresses (or networks) of proxies whose X-Forwarded-For names the client.
    trusted_proxies: tuple[str, ...] = ()
    # Seconds `bastion serve` waits for more bytes of a request before giving up on the client.
    read_timeout: int = 30
    require_2fa: bool = True  # signed-in users without a second factor reach only its set-up
    allow_signup: bool = True  # self-service registration (else only `bastion user create`)
    passkey_login: bool = False  # passwordless sign-in with a passkey (WebAuthn)
    pwned_passwords_url: str | None = None  # k-anonymity range API, e.g. https://host/range/
    reauthentication_timeout: int = 300  # seconds a password/second-factor confirmation lasts
    leak_report_secret: str | None = None  # bearer secret of POST /_/token-leak/ (unset: 404)
    deleted_project_reservation_days: int = 30  # a deleted project's name stays its owners'
    # The header a TLS-terminating proxy sets to "https" (X-Forwarded-Proto); None: not trusted.
    proxy_ssl_header: str | None = None
    # Where nodes pre-render simple pages for the nginx front to serve itself (index/front.py);
    # None: every page request reaches a node.
    front_pages_dir: Path | None = None
    secret_key_generated: bool = field(default=False, compare=False)
    tuf: TufSettings = field(default_factory=lambda: TufSettings(keys_dir=Path("tuf-keys")))

    @property
    def embedded(self) -> bool:
        """True on the single-machine default: SQLite and local files."""
        return self.database_url.startswith("sqlite:") and self.storage_url.startswith("file:")

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "tmp"

    @property
    def secure_proxy_ssl_header(self) -> tuple[str, str] | None:
        """Django's SECURE_PROXY_SSL_HEADER: (``HTTP_X_FORWARDED_PROTO``, ``https``) or None."""
        if self.proxy_ssl_header is None:
            return None
        return ("HTTP_" + self.proxy_ssl_header.upper().replace("-", "_"), "https")


@dataclass(frozen=True)
class TufSettings:
    """Signed repository metadata (TUF, PEP 458); see docs/adr/0005-tuf-key-layout.md."""

    keys_dir: Path  # development keys on the embedded default; `bastion tuf init` writes elsewhere
    online_key: str = ""  # signer URI of the online key; "" = file2:<keys_dir>/online.pem
    bins: int = 1024  # succinct hash bins (a power of two), used when the repository is created
    root_expiry: timedelta = timedelta(days=365)
    targets_expiry: timedelta = timedelta(days=365)
    snapshot_expiry: timedelta = timedelta(days=1)
    timestamp_expiry: timedelta = timedelta(days=1)
    bins_expiry: timedelta = timedelta(days=1)
    gc_grace: timedelta = timedelta(hours=1)  # superseded snapshots (and what only they name)
    refresh_interval: timedelta = timedelta(minutes=5)  # `bastion serve`'s refresh; 0: never
    # Uploads are signed in rounds: this long after the last upload (at most 5x after the first
    # one waiting), by the worker's background signer; 0: right after each upload.
    sign_delay: timedelta = timedelta(seconds=1)

    @property
    def online_key_uri(self) -> str:
        return self.online_key or f"file2:{self.keys_dir / 'online.pem'}"


_DURATION = re.compile(r"\A(\d+)\s*([smhdw])\Z")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _as_duration(name: str, value: object, *, allow_zero: bool = False) -> timedelta:
    text = str(value).strip().lower()
    match = _DURATION.match(text)
    if not match or (int(match.group(1)) == 0 and not allow_zero):
        raise ConfigError(
            f"BASTION_{name.upper()} must be a duration such as 90m, 12h, 1d or 52w, not {value!r}"
        )
    return timedelta(**{_DURATION_UNITS[match.group(2)]: int(match.group(1))})


def _tuf(settings: dict[str, object], data_dir: Path) -> TufSettings:
    keys_dir = Path(str(settings.get("tuf_keys_dir", data_dir / "tuf-keys"))).expanduser()
    bins = _as_count("tuf_bins", settings.get("tuf_bins", 1024))
    if bins < 2 or bins > 65536 or bins & (bins - 1):
        raise ConfigError("BASTION_TUF_BINS must be a power of two from 2 to 65536")
    durations = {
        key: _as_duration(key, settings.get(key, default))
        for key, default in (
            ("tuf_root_expiry", "365d"),
            ("tuf_targets_expiry", "365d"),
            ("tuf_snapshot_expiry", "1d"),
            ("tuf_timestamp_expiry", "1d"),
            ("tuf_bins_expiry", "1d"),
            ("tuf_gc_grace", "1h"),
        )
    }
    return TufSettings(
        keys_dir=keys_dir.resolve(),
        online_key=str(settings.get("tuf_online_key") or "").strip(),
        bins=bins,
        root_expiry=durations["tuf_root_expiry"],
        targets_expiry=durations["tuf_targets_expiry"],
        snapshot_expiry=durations["tuf_snapshot_expiry"],
        timestamp_expiry=durations["tuf_timestamp_expiry"],
        bins_expiry=durations["tuf_bins_expiry"],
        gc_grace=durations["tuf_gc_grace"],
        refresh_interval=_as_duration(
            "tuf_refresh_interval", settings.get("tuf_refresh_interval", "5m"), allow_zero=True
        ),
        sign_delay=_as_duration(
            "tuf_sign_delay", settings.get("tuf_sign_delay", "1s"), allow_zero=True
        ),
    )


def allowed_hosts(base_url: str) -> list[str]:
    """Django's ALLOWED_HOSTS for ``base_url``: its host alone, plus the loopback names when it
    is itself loopback (so ``make run`` works from a browser as localhost or 127.0.0.1).

    Entries are what Django matches a Host header's domain against: lower case, no port (any
    port matches), IPv6 in brackets. The one place this is decided (settings, fast path, tests).
    """
    name = urlsplit(base_url).hostname or ""
    host = f"[{name}]" if ":" in name else name
    try:
        loopback = name == "localhost" or ipaddress.ip_address(name).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return [host]
    return [host, *(other for other in LOOPBACK_HOSTS if other != host)]


def _read_file_settings(environ: dict[str, str]) -> dict[str, object]:
    path = Path(environ.get("BASTION_CONFIG", "bastion.toml"))
    if not path.is_file():
        if "BASTION_CONFIG" in environ:
            raise ConfigError(f"BASTION_CONFIG names {path}, which is not a file")
        return {}
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}")
    return data


def _as_bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"BASTION_{name.upper()} must be true or false, not {value!r}")


def _as_size(name: str, value: object) -> int:
    text = str(value).strip().lower()
    units = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
    factor = 1
    if text and text[-1] in units:
        factor = units[text[-1]]
        text = text[:-1]
    elif text.endswith(("kib", "mib", "gib", "tib")):
        factor = units[text[-3]]
        text = text[:-3]
    try:
        number = int(text)
    except ValueError:
        raise ConfigError(
            f"BASTION_{name.upper()} must be a byte count such as 104857600 or 100M, not {value!r}"
        ) from None
    if number <= 0:
        raise ConfigError(f"BASTION_{name.upper()} must be positive")
    return number * factor


def _as_tags(value: object) -> frozenset[str]:
    items = value if isinstance(value, list) else str(value).split(",")
    tags = frozenset(str(item).strip() for item in items if str(item).strip())
    for tag in tags:
        if not tag.replace("_", "").isalnum() or tag != tag.lower():
            raise ConfigError(
                f"BASTION_EXTRA_PLATFORM_TAGS: {tag!r} is not a platform tag (e.g. linux_x86_64)"
            )
    return tags


def _policy(settings: dict[str, object]) -> Policy:
    return Policy(
        allow_local_versions=_as_bool(
            "allow_local_versions", settings.get("allow_local_versions", False)
        ),
        extra_platform_tags=_as_tags(settings.get("extra_platform_tags", "")),
        check_classifiers=_as_bool("check_classifiers", settings.get("check_classifiers", True)),
        check_wheel_tags=_as_bool("check_wheel_tags", settings.get("check_wheel_tags", True)),
        render_description=_as_bool("render_description", settings.get("render_description", True)),
    )


def _as_http_url(name: str, value: object) -> str | None:
    text = str(value or "").strip()
    if not text:
        return None
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ConfigError(f"BASTION_{name.upper()} must be an http(s) URL, not {text!r}")
    return text.rstrip("/") + "/"


_RATE = re.compile(r"\A\s*(\d+)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour|d|day)s?\s*\Z")
_UNIT_SECONDS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}


def rate_seconds(text: str) -> tuple[int, int]:
    """``"20/hour"`` -> (20, 3600); ``"30/5min"`` -> (30, 300). ValueError if malformed."""
    match = _RATE.match(text.lower())
    if not match:
        raise ValueError(text)
    count, multiple, unit = match.groups()
    return int(count), int(multiple or 1) * _UNIT_SECONDS[unit]


def _as_rate(name: str, value: object) -> str:
    text = str(value).strip()
    try:
        count, seconds = rate_seconds(text)
    except ValueError:
        raise ConfigError(
            f"BASTION_{name.upper()} must be a rate such as 20/hour or 30/5min, not {value!r}"
        ) from None
    if count < 1 or seconds < 1:
        raise ConfigError(f"BASTION_{name.upper()} must allow at least 1 per window")
    return text


def _as_networks(value: object) -> tuple[str, ...]:
    items = value if isinstance(value, list) else str(value or "").split(",")
    networks = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ConfigError(
                f"BASTION_TRUSTED_PROXIES: {item!r} is not an IP address or network"
            ) from None
    return tuple(networks)


def _as_count(name: str, value: object) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"BASTION_{name.upper()} must be a whole number, not {value!r}") from None
    if number < 1:
        raise ConfigError(f"BASTION_{name.upper()} must be at least 1")
    return number


def _limits(settings: dict[str, object]) -> Limits:
    defaults = Limits()
    return Limits(
        max_members=_as_count(
            "max_archive_members", settings.get("max_archive_members", defaults.max_members)
        ),
        max_uncompressed_bytes=_as_size(
            "max_uncompressed_size",
            settings.get("max_uncompressed_size", defaults.max_uncompressed_bytes),
        ),
        max_compression_ratio=_as_count(
            "max_compression_ratio",
            settings.get("max_compression_ratio", defaults.max_compression_ratio),
        ),
    )


def _as_days(value: object) -> int:
    try:
        days = int(str(value).strip())
    except ValueError:
        raise ConfigError(
            f"BASTION_IP_RETENTION_DAYS must be a number of days, not {value!r}"
        ) from None
    if days < 1:
        raise ConfigError("BASTION_IP_RETENTION_DAYS must be at least 1")
    return days


# Django's own rule for a Host header (django.http.request.host_validation_re).
_BASE_HOST = re.compile(r"\A(?:[a-z0-9.-]+|\[[a-f0-9]*:[a-f0-9.:]+\])(?::[0-9]+)?\Z")
_HEADER_NAME = re.compile(r"\A[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*\Z")


def _as_header_name(value: object) -> str | None:
    text = str(value).strip()
    if not text:
        return None
    # Letters, digits and inner hyphens only. WSGI spells both "-" and "_" as "_" in its
    # HTTP_* keys, so a name with "_" could be matched by a header the proxy does not overwrite.
    if not _HEADER_NAME.match(text) or len(text) > 100:
        raise ConfigError(
            f"BASTION_PROXY_SSL_HEADER must be an HTTP header name such as X-Forwarded-Proto, "
            f"not {value!r}"
        )
    return text


def _secret_key(data_dir: Path, configured: str | None, embedded: bool) -> tuple[str, bool]:
    if configured:
        if len(configured) < 32:
            raise ConfigError("BASTION_SECRET_KEY must be at least 32 characters long")
        return configured, False
    if not embedded:
        raise ConfigError(
            "BASTION_SECRET_KEY is required with PostgreSQL or S3 storage "
            "(every app node must share the same key)"
        )
    key_file = data_dir / "secret_key"
    if key_file.is_file():
        return key_file.read_text().strip(), False
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
    return key, True


def _raw_settings(environ: dict[str, str] | None) -> dict[str, object]:
    env = dict(os.environ if environ is None else environ)
    settings: dict[str, object] = _read_file_settings(env)
    for key in _KEYS:
        value = env.get("BASTION_" + key.upper())
        if value is not None and value != "":
            settings[key] = value
    return settings


def load_validation_settings(environ: dict[str, str] | None = None) -> tuple[Policy, Limits]:
    """Only the upload policy and limits (for ``bastion check-dist``: no data dir, no key)."""
    settings = _raw_settings(environ)
    return _policy(settings), _limits(settings)


def _front_pages_dir(settings: dict[str, object], data_dir: Path, embedded: bool) -> Path | None:
    """Where pre-rendered simple pages live (index/front.py): as configured ("off": nowhere);
    by default ``<data>/pages`` on the embedded default, whose workers all share the data
    directory, and none otherwise (the nodes of a cluster need a directory they all share)."""
    if "front_pages_dir" not in settings:
        return data_dir / "pages" if embedded else None
    value = str(settings["front_pages_dir"]).strip()
    return None if value.lower() in ("", "off") else Path(value).expanduser().resolve()


def load_config(environ: dict[str, str] | None = None) -> Config:
    settings = _raw_settings(environ)

    data_dir = Path(str(settings.get("data_dir", "./data"))).expanduser().resolve()
    database_url = str(settings.get("database_url", f"sqlite:///{data_dir / 'bastion.sqlite3'}"))
    storage_url = str(settings.get("storage_url", f"file://{quote(str(data_dir / 'files'))}"))
    email_url = str(settings.get("email_url", f"file://{quote(str(data_dir / 'outbox'))}"))
    base_url = str(settings.get("base_url", "http://127.0.0.1:8000")).rstrip("/")
    redis_url = settings.get("redis_url")

    scheme = urlsplit(database_url).scheme
    if scheme not in {"sqlite", "postgres", "postgresql", "pgsql"}:
        raise ConfigError(
            f"BASTION_DATABASE_URL must be sqlite:///path or postgresql://..., not {scheme!r}"
        )
    if urlsplit(storage_url).scheme not in {"file", "s3"}:
        raise ConfigError("BASTION_STORAGE_URL must be file:///path or s3://bucket/prefix")
    if urlsplit(base_url).scheme not in {"http", "https"} or not urlsplit(base_url).netloc:
        raise ConfigError(f"BASTION_BASE_URL must be an http(s) origin, not {base_url!r}")
    if not _BASE_HOST.match(urlsplit(base_url).netloc.lower()):
        # Requests are only answered for this host (bastion.hosts): one Django would not accept
        # as a Host header would make every request a 400.
        raise ConfigError(
            "BASTION_BASE_URL's host must be a DNS name (letters, digits, '.', '-'; IDNs in "
            f"their xn-- form) or an IP address, with an optional port, not {base_url!r}"
        )
    if urlsplit(email_url).scheme not in {"file", "smtp", "smtps", "console"}:
        raise ConfigError("BASTION_EMAIL_URL must be file:///path, smtp://... or console://")

    embedded = database_url.startswith("sqlite:") and storage_url.startswith("file:")
    secret_key, generated = _secret_key(
        data_dir, str(settings["secret_key"]) if "secret_key" in settings else None, embedded
    )
    return Config(
        data_dir=data_dir,
        database_url=database_url,
        storage_url=storage_url,
        redis_url=str(redis_url) if redis_url else None,
        secret_key=secret_key,
        base_url=base_url,
        email_url=email_url,
        max_file_size=_as_size("max_file_size", settings.get("max_file_size", 100 * 1024**2)),
        max_project_size=_as_size(
            "max_project_size", settings.get("max_project_size", 10 * 1024**3)
        ),
        ip_retention_days=_as_days(settings.get("ip_retention_days", 90)),
        policy=_policy(settings),
        limits=_limits(settings),
        debug=_as_bool("debug", settings.get("debug", False)),
        proxy_ssl_header=_as_header_name(settings.get("proxy_ssl_header", "")),
        project_create_limit=_as_rate(
            "project_create_limit", settings.get("project_create_limit", "20/hour")
        ),
        project_create_ip_limit=_as_rate(
            "project_create_ip_limit", settings.get("project_create_ip_limit", "40/hour")
        ),
        failed_auth_limit=_as_rate(
            "failed_auth_limit", settings.get("failed_auth_limit", "30/5min")
        ),
        upload_limit=_as_rate("upload_limit", settings.get("upload_limit", "600/hour")),
        trusted_proxies=_as_networks(settings.get("trusted_proxies", "")),
        read_timeout=_as_count("read_timeout", settings.get("read_timeout", 30)),
        require_2fa=_as_bool("require_2fa", settings.get("require_2fa", True)),
        allow_signup=_as_bool("allow_signup", settings.get("allow_signup", True)),
        passkey_login=_as_bool("passkey_login", settings.get("passkey_login", False)),
        pwned_passwords_url=_as_http_url(
            "pwned_passwords_url", settings.get("pwned_passwords_url", "")
        ),
        reauthentication_timeout=_as_count(
            "reauthentication_timeout", settings.get("reauthentication_timeout", 300)
        ),
        leak_report_secret=str(settings.get("leak_report_secret") or "").strip() or None,
        deleted_project_reservation_days=_as_count(
            "deleted_project_reservation_days",
            settings.get("deleted_project_reservation_days", 30),
        ),
        secret_key_generated=generated,
        front_pages_dir=_front_pages_dir(settings, data_dir, embedded),
        tuf=_tuf(settings, data_dir),
    )
