"""TUF settings: defaults per PEP 458, bins a power of two, durations."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bastion.config import ConfigError, load_config


def test_defaults_follow_pep_458(tmp_path):
    tuf = load_config({"BASTION_DATA_DIR": str(tmp_path)}).tuf
    assert tuf.bins == 1024
    assert tuf.root_expiry == tuf.targets_expiry == timedelta(days=365)
    assert tuf.snapshot_expiry == tuf.timestamp_expiry == tuf.bins_expiry == timedelta(days=1)
    assert tuf.keys_dir == tmp_path / "tuf-keys"
    assert tuf.online_key_uri == f"file2:{tmp_path / 'tuf-keys' / 'online.pem'}"
    assert tuf.sign_delay == timedelta(seconds=1)


@pytest.mark.parametrize("bins", ["1000", "1", "0", "many"])
def test_bins_must_be_a_power_of_two(tmp_path, bins):
    with pytest.raises(ConfigError, match="BASTION_TUF_BINS"):
        load_config({"BASTION_DATA_DIR": str(tmp_path), "BASTION_TUF_BINS": bins})


def test_durations(tmp_path):
    tuf = load_config(
        {
            "BASTION_DATA_DIR": str(tmp_path),
            "BASTION_TUF_TIMESTAMP_EXPIRY": "6h",
            "BASTION_TUF_REFRESH_INTERVAL": "0m",
            "BASTION_TUF_SIGN_DELAY": "0s",
        }
    ).tuf
    assert tuf.timestamp_expiry == timedelta(hours=6)
    assert tuf.refresh_interval == timedelta(0)
    assert tuf.sign_delay == timedelta(0)
    with pytest.raises(ConfigError, match="BASTION_TUF_SIGN_DELAY"):
        load_config({"BASTION_DATA_DIR": str(tmp_path), "BASTION_TUF_SIGN_DELAY": "0.5s"})
    with pytest.raises(ConfigError, match="BASTION_TUF_GC_GRACE"):
        load_config({"BASTION_DATA_DIR": str(tmp_path), "BASTION_TUF_GC_GRACE": "soon"})
