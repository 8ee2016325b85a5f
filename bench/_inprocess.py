"""Django for the in-process benchmarks (bench/audit_cost.py, bench/tuf_signing.py): bastion
from this checkout, a fresh data directory (SQLite, or the PostgreSQL database given), migrated.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]


def setup_django(prefix: str, database_url: str | None, **settings_overrides: object) -> None:
    os.environ["BASTION_DATA_DIR"] = tempfile.mkdtemp(prefix=prefix)
    os.environ["BASTION_SECRET_KEY"] = "bench-" + "x" * 40
    if database_url:
        os.environ["BASTION_DATABASE_URL"] = database_url
    os.environ["BASTION_BASE_URL"] = "http://testserver"  # the host of Django's test client
    os.environ["DJANGO_SETTINGS_MODULE"] = "bastion.settings"
    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    for name, value in settings_overrides.items():
        setattr(settings, name, value)
    call_command("migrate", verbosity=0)
