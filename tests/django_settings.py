"""Settings for the test process: a private data directory, never the checkout's ./data."""

import os
import tempfile

os.environ["BASTION_DATA_DIR"] = tempfile.mkdtemp(prefix="bastion-test-")
os.environ["BASTION_SECRET_KEY"] = "test-secret-key-" + "x" * 40
for variable in ("BASTION_DATABASE_URL", "BASTION_STORAGE_URL", "BASTION_REDIS_URL"):
    os.environ.pop(variable, None)

from bastion.settings import *  # noqa: E402,F403
