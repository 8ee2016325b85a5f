"""Configuration: defaults, the environment over bastion.toml, and clear errors at boot."""

from __future__ import annotations

import stat

import pytest

from bastion.config import ConfigError, allowed_hosts, load_config


def test_embedded_defaults_generate_a_private_secret_key(tmp_path):
    config = load_config({"BASTION_DATA_DIR": str(tmp_path)})
    assert config.embedded
    assert config.database_url == f"sqlite:///{tmp_path / 'bastion.sqlite3'}"
    assert config.storage_url == f"file://{tmp_path / 'files'}"
    assert config.base_url == "http://127.0.0.1:8000"
    key_file = tmp_path / "secret_key"
    assert config.secret_key_generated
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = load_config({"BASTION_DATA_DIR": str(tmp_path)})
    assert again.secret_key == config.secret_key and not again.secret_key_generated


def test_secret_key_required_off_the_embedded_default(tmp_path):
    with pytest.raises(ConfigError, match="BASTION_SECRET_KEY is required"):
        load_config(
            {
                "BASTION_DATA_DIR": str(tmp_path),
                "BASTION_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/x",
            }
        )
    with pytest.raises(ConfigError, match="at least 32"):
        load_config({"BASTION_DATA_DIR": str(tmp_path), "BASTION_SECRET_KEY": "short"})


def test_toml_file_and_environment_precedence(tmp_path):
    toml = tmp_path / "bastion.toml"
    toml.write_text(
        'base_url = "https://pkgs.example.test/"\nmax_file_size = "20M"\n'
        f'data_dir = "{tmp_path / "d"}"\n'
    )
    config = load_config({"BASTION_CONFIG": str(toml)})
    assert config.base_url == "https://pkgs.example.test"
    assert config.max_file_size == 20 * 1024 * 1024
    overridden = load_config({"BASTION_CONFIG": str(toml), "BASTION_MAX_FILE_SIZE": "1024"})
    assert overridden.max_file_size == 1024


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("BASTION_DATABASE_URL", "mysql://x/y", "BASTION_DATABASE_URL"),
        ("BASTION_STORAGE_URL", "ftp://x/y", "BASTION_STORAGE_URL"),
        ("BASTION_BASE_URL", "example.test", "BASTION_BASE_URL"),
        ("BASTION_MAX_FILE_SIZE", "lots", "BASTION_MAX_FILE_SIZE"),
        ("BASTION_MAX_FILE_SIZE", "-5", "BASTION_MAX_FILE_SIZE"),
        ("BASTION_ALLOW_LOCAL_VERSIONS", "maybe", "BASTION_ALLOW_LOCAL_VERSIONS"),
        ("BASTION_EMAIL_URL", "pigeon://x", "BASTION_EMAIL_URL"),
        ("BASTION_BASE_URL", "https://pypi_internal.example", "BASTION_BASE_URL's host"),
        ("BASTION_BASE_URL", "https://user@pypi.example.test", "BASTION_BASE_URL's host"),
        ("BASTION_BASE_URL", "https://bücher.example", "xn--"),
        ("BASTION_PROXY_SSL_HEADER", "X_Forwarded_Proto", "BASTION_PROXY_SSL_HEADER"),
        ("BASTION_PROXY_SSL_HEADER", "X-Forwarded-Proto: https", "BASTION_PROXY_SSL_HEADER"),
        ("BASTION_PROXY_SSL_HEADER", "-X-Proto", "BASTION_PROXY_SSL_HEADER"),
    ],
)
def test_invalid_settings_name_the_variable(tmp_path, variable, value, message):
    with pytest.raises(ConfigError, match=message):
        load_config({"BASTION_DATA_DIR": str(tmp_path), variable: value})


def test_unknown_toml_key_is_an_error(tmp_path):
    toml = tmp_path / "bastion.toml"
    toml.write_text('databse_url = "sqlite:///x"\n')
    with pytest.raises(ConfigError, match="unknown setting"):
        load_config({"BASTION_CONFIG": str(toml), "BASTION_DATA_DIR": str(tmp_path)})


def test_missing_config_file_named_explicitly(tmp_path):
    with pytest.raises(ConfigError, match="not a file"):
        load_config({"BASTION_CONFIG": str(tmp_path / "nope.toml")})


def test_policy_and_limits_from_the_environment(tmp_path):
    config = load_config(
        {
            "BASTION_DATA_DIR": str(tmp_path),
            "BASTION_ALLOW_LOCAL_VERSIONS": "yes",
            "BASTION_EXTRA_PLATFORM_TAGS": "linux_x86_64, linux_aarch64",
            "BASTION_CHECK_CLASSIFIERS": "false",
            "BASTION_MAX_ARCHIVE_MEMBERS": "500",
            "BASTION_MAX_UNCOMPRESSED_SIZE": "1G",
            "BASTION_MAX_COMPRESSION_RATIO": "20",
        }
    )
    assert config.policy.allow_local_versions
    assert config.policy.extra_platform_tags == {"linux_x86_64", "linux_aarch64"}
    assert not config.policy.check_classifiers and config.policy.render_description
    assert config.limits.max_members == 500
    assert config.limits.max_uncompressed_bytes == 1024**3
    assert config.limits.max_compression_ratio == 20
    defaults = load_config({"BASTION_DATA_DIR": str(tmp_path)})
    assert not defaults.policy.allow_local_versions and not defaults.policy.extra_platform_tags


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BASTION_EXTRA_PLATFORM_TAGS", "Linux X86"),
        ("BASTION_MAX_ARCHIVE_MEMBERS", "0"),
        ("BASTION_MAX_COMPRESSION_RATIO", "many"),
    ],
)
def test_invalid_policy_settings(tmp_path, variable, value):
    with pytest.raises(ConfigError, match=variable):
        load_config({"BASTION_DATA_DIR": str(tmp_path), variable: value})


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        # A loopback base also answers to the other loopback names (``make run`` in a browser).
        ("http://127.0.0.1:8000", ["127.0.0.1", "localhost", "[::1]"]),
        ("http://localhost:8000", ["localhost", "127.0.0.1", "[::1]"]),
        ("http://[::1]:8000", ["[::1]", "127.0.0.1", "localhost"]),
        ("http://127.0.0.2:9000", ["127.0.0.2", "127.0.0.1", "localhost", "[::1]"]),
        # Anything else answers to its own name only: no loopback, no wildcard.
        ("https://pypi.example.test", ["pypi.example.test"]),
        ("https://PyPI.Example.Test:8443/", ["pypi.example.test"]),
        ("http://10.1.2.3:8000", ["10.1.2.3"]),
        ("http://[2001:db8::1]:8000", ["[2001:db8::1]"]),
        ("https://localhost.example.test", ["localhost.example.test"]),
    ],
)
def test_allowed_hosts_come_from_the_base_url(base_url, expected):
    assert allowed_hosts(base_url) == expected


def test_proxy_ssl_header(tmp_path):
    default = load_config({"BASTION_DATA_DIR": str(tmp_path)})
    assert default.proxy_ssl_header is None and default.secure_proxy_ssl_header is None
    config = load_config(
        {"BASTION_DATA_DIR": str(tmp_path), "BASTION_PROXY_SSL_HEADER": "X-Forwarded-Proto"}
    )
    assert config.proxy_ssl_header == "X-Forwarded-Proto"
    assert config.secure_proxy_ssl_header == ("HTTP_X_FORWARDED_PROTO", "https")
    toml = tmp_path / "bastion.toml"
    toml.write_text('proxy_ssl_header = "X-Forwarded-Scheme"\n')
    from_file = load_config({"BASTION_CONFIG": str(toml), "BASTION_DATA_DIR": str(tmp_path)})
    assert from_file.secure_proxy_ssl_header == ("HTTP_X_FORWARDED_SCHEME", "https")


def test_front_pages_dir_defaults_to_the_data_dir_only_on_the_embedded_default(tmp_path):
    embedded = load_config({"BASTION_DATA_DIR": str(tmp_path)})
    assert embedded.front_pages_dir == tmp_path.resolve() / "pages"
    off = load_config({"BASTION_DATA_DIR": str(tmp_path), "BASTION_FRONT_PAGES_DIR": "off"})
    assert off.front_pages_dir is None
    cluster = {
        "BASTION_DATA_DIR": str(tmp_path),
        "BASTION_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/x",
        "BASTION_SECRET_KEY": "k" * 50,
    }
    assert load_config(cluster).front_pages_dir is None  # nodes must name a shared directory
    shared = load_config({**cluster, "BASTION_FRONT_PAGES_DIR": str(tmp_path / "front")})
    assert shared.front_pages_dir == tmp_path.resolve() / "front"
