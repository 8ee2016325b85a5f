"""Django settings, derived entirely from :func:`bastion.config.load_config`."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

import dj_database_url

from bastion.config import allowed_hosts, load_config
from bastion.sqlite import checkpoints

BASTION = load_config()

SECRET_KEY = BASTION.secret_key
DEBUG = BASTION.debug
_base = urlsplit(BASTION.base_url)
_https = _base.scheme == "https"
# Only the base URL's host (plus loopback names on a loopback base); bastion.hosts refuses others.
ALLOWED_HOSTS = allowed_hosts(BASTION.base_url)
CSRF_TRUSTED_ORIGINS = [f"{_base.scheme}://{_base.netloc}"]

INSTALLED_APPS = [
    "django.contrib.admin",  # operators (superusers, behind 2FA): bastion.*.admin
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "bastion.accounts",
    "bastion.projects",
    "bastion.tokens",
    "bastion.uploads",
    "bastion.index",
    "bastion.audit",
    "bastion.signing",
    "allauth",
    "allauth.account",
    "bastion.accounts.mfa_app.MFAConfig",  # allauth.mfa (see the class for the one change)
]

MIDDLEWARE = [
    "bastion.hosts.HostCheckMiddleware",  # first: /healthz for any Host, then 400 for foreign ones
    "bastion.outages.OutageMiddleware",  # a dependency down: 503 naming it (see also handler500)
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "bastion.accounts.middleware.PageLocaleMiddleware",  # pages only, not the APIs
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    # after authentication: a signed-in user without a second factor reaches only its set-up
    "bastion.accounts.middleware.RequireSecondFactorMiddleware",
    "bastion.headers.ContentSecurityPolicyMiddleware",
]

# The upload endpoint's chain under `bastion serve` (bastion.wsgi): MIDDLEWARE without what only
# people's pages use (static files, sessions, CSRF, sign-in, messages, allauth, the second-factor
# redirect). An upload is authenticated by its API token alone; the rest had nothing to do and
# cost about 3% of a small upload's time (in process, the same uploads alternating between the
# two chains; note on issue 12). The same order, the same answers and headers
# (tests/integration/uploads/test_upload_chain.py).
UPLOAD_MIDDLEWARE = [
    "bastion.hosts.HostCheckMiddleware",
    "bastion.outages.OutageMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "bastion.accounts.middleware.PageLocaleMiddleware",  # (the index's one language for APIs)
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "bastion.headers.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "bastion.urls"
WSGI_APPLICATION = "bastion.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database() -> dict[str, object]:
    url = BASTION.database_url
    if url.startswith("sqlite:"):
        path = url.split("sqlite://", 1)[1]
        if path.startswith("/"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return {
            "ENGINE": "bastion.sqlite",  # Django's, with placeholders converted once
            "NAME": path,
            # keep each worker thread's connection: reopening costs the PRAGMAs on every request
            "CONN_MAX_AGE": None,
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": (
                    "PRAGMA journal_mode=WAL;"
                    "PRAGMA synchronous=NORMAL;"
                    "PRAGMA foreign_keys=ON;"
                    "PRAGMA busy_timeout=30000;"
                    # a worker's thread checkpoints (bastion.sqlite.checkpoints); a request
                    # only beyond this
                    f"PRAGMA wal_autocheckpoint={checkpoints.SAFETY_NET_PAGES};"
                ),
            },
        }
    # Connections are checked before each request's first query and replaced when the server
    # went away (bastion.outages: a 503 meanwhile); a server that does not answer at all is
    # given up on after connect_timeout seconds instead of holding the request.
    config = dict(dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True))
    options = config.setdefault("OPTIONS", {})
    assert isinstance(options, dict)
    options.setdefault("connect_timeout", 5)
    return config


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["allauth.account.auth_backends.AuthenticationBackend"]
LOGIN_URL = "/account/login/"
LOGIN_REDIRECT_URL = "/"
ACCOUNT_ADAPTER = "bastion.accounts.adapter.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_SESSION_REMEMBER = False
ACCOUNT_DEFAULT_HTTP_PROTOCOL = _base.scheme
ACCOUNT_REAUTHENTICATION_TIMEOUT = BASTION.reauthentication_timeout
ACCOUNT_REAUTHENTICATION_REQUIRED = True  # before e-mail and password changes
ACCOUNT_EMAIL_NOTIFICATIONS = True  # password and e-mail changes, factors added or removed
ACCOUNT_CHANGE_EMAIL = True  # one address, changed with re-verification and a notice to the old
ACCOUNT_PREVENT_ENUMERATION = True
# A reset asked for any address sends one mail (to its owner): the page and its timing tell the
# asker nothing; the mail is bounded by the per-address reset limit.
ACCOUNT_EMAIL_UNKNOWN_ACCOUNTS = True
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False  # this session stays; every other one ends

# Second factors (allauth.mfa): bastion's policy lives in bastion.accounts.mfa.
MFA_ADAPTER = "bastion.accounts.mfa.MFAAdapter"
MFA_SUPPORTED_TYPES = ["totp", "webauthn", "recovery_codes"]
MFA_TOTP_PERIOD = 30
MFA_TOTP_DIGITS = 6
MFA_TOTP_TOLERANCE = 1  # one step either side; every accepted step is burnt for the user
MFA_PASSKEY_LOGIN_ENABLED = BASTION.passkey_login
# WebAuthn needs a secure context; browsers treat http://127.0.0.1 and localhost as one.
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = _base.scheme == "http"
MFA_RECOVERY_CODE_COUNT = 10
MFA_RECOVERY_CODES_SHOW_ONCE = True  # shown (and downloadable) once; regenerate to see new ones
MFA_FORMS = {
    "authenticate": "bastion.accounts.mfa.AuthenticateForm",
    "reauthenticate": "bastion.accounts.mfa.ReauthenticateForm",
    "activate_totp": "bastion.accounts.mfa.ActivateTOTPForm",
    "authenticate_webauthn": "bastion.accounts.mfa.AuthenticateWebAuthnForm",
    "login_webauthn": "bastion.accounts.mfa.LoginWebAuthnForm",
    "reauthenticate_webauthn": "bastion.accounts.mfa.ReauthenticateWebAuthnForm",
}

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 8},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    # BASTION_PWNED_PASSWORDS_URL (off by default): refuse passwords known from data breaches
    {"NAME": "bastion.accounts.passwords.PwnedPasswordValidator"},
]

# Rate limits (allauth's, kept in Django's cache: the database or Redis, so shared by every
# process and node). "N/window/per": per "ip" (client address), "key" (the account: the login
# name for passwords, the user for second-factor codes, the address for resets) or "user" (the
# signed-in user). Only failures count toward login_failed. A limit hit answers 429 with
# Retry-After (bastion.accounts.views.rate_limited). Values after PyPI's (warehouse-security §4.4).
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",  # every sign-in POST
    "login_failed": "10/5m/ip,5/5m/key",  # wrong passwords, and wrong second-factor codes
    "signup": "10/10m/ip",
    "reset_password": "20/h/ip,5/h/key",  # per address asked for: no mail-bombing a victim
    "reset_password_from_key": "20/5m/ip",
    "reauthenticate": "10/5m/user",
    "change_password": "10/5m/user",
    "manage_email": "10/5m/user",
    "confirm_email": "1/3m/key",  # re-sending a verification mail
}
MFA_RATE_LIMITS = {
    "webauthn_login": "10/5m/ip",  # passwordless passkey sign-in (BASTION_PASSKEY_LOGIN)
}

if BASTION.redis_url:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": BASTION.redis_url,
            "KEY_PREFIX": "bastion",
            # A Redis that is down or stalled is a quick 503 (bastion.outages), never a hung
            # request; the pool reconnects by itself when it is back.
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    # Shared by every process and node (rate limits, used codes): never per-process memory.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "bastion_cache",
        }
    }

_email = urlsplit(BASTION.email_url)
if _email.scheme == "file":
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = unquote(_email.path)
elif _email.scheme == "console":
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
else:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = _email.hostname or "localhost"
    EMAIL_PORT = _email.port or (465 if _email.scheme == "smtps" else 25)
    EMAIL_HOST_USER = _email.username or ""
    EMAIL_HOST_PASSWORD = _email.password or ""
    EMAIL_USE_SSL = _email.scheme == "smtps"
    EMAIL_USE_TLS = "starttls" in _email.query
DEFAULT_FROM_EMAIL = f"bastion <noreply@{_base.hostname or 'localhost'}>"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("fr", "Français")]
LOCALE_PATHS = [str(Path(__file__).resolve().parent / "locale")]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = None  # no collected assets yet; app static files are served by finders
WHITENOISE_USE_FINDERS = True

# Upload bodies: form fields are small; the distribution itself is streamed to a spool file.
DATA_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FIELDS = 2000
FILE_UPLOAD_MAX_MEMORY_SIZE = 0
FILE_UPLOAD_TEMP_DIR = str(BASTION.spool_dir)
BASTION.spool_dir.mkdir(parents=True, exist_ok=True)  # checked by Django (files.E001)

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = _https
CSRF_COOKIE_SECURE = _https
# HTTPS (Django's deployment checklist). HSTS for a year, on every answer of an https index
# (bastion.hosts.hsts_value); subdomains and preloading are left to the operator: they bind
# other hosts and cannot be undone quickly (security.W005 and W021 silenced below).
SECURE_HSTS_SECONDS = 365 * 24 * 3600 if _https else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = False
SECURE_HSTS_PRELOAD = False
SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W021"] if _https else []
# Behind a TLS-terminating proxy the request's scheme is known only from a header the proxy sets
# (and overwrites); trusted only when BASTION_PROXY_SSL_HEADER names it.
SECURE_PROXY_SSL_HEADER = BASTION.secure_proxy_ssl_header
if _https and SECURE_PROXY_SSL_HEADER is not None:
    SECURE_SSL_REDIRECT = True
    SECURE_SSL_HOST = _base.netloc  # redirect to the base origin, never to the request's Host
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # (answered before SecurityMiddleware anyway)
elif _https:
    # Without the proxy header every request looks like plain http, so redirecting would loop:
    # the front (proxy or load balancer) redirects http to https instead.
    SILENCED_SYSTEM_CHECKS.append("security.W008")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
    "loggers": {"bastion": {"level": "INFO", "propagate": True}},
}
