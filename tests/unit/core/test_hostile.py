"""Every hostile artifact in ``tests.fixtures.dists`` is rejected with exactly its code, by
``validate_distribution`` and by ``bastion check-dist`` (exit status 1, the code on stderr)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bastion.core.dists import (
    KNOWN_CODES,
    DeclaredFields,
    DistributionRejected,
    validate_distribution,
)
from tests.fixtures.dists import FORM_HOSTILE, HOSTILE, Builder, valid_sdist, valid_wheel

BASTION = Path(sys.executable).with_name("bastion")


def rejected_codes(path: Path, declared: DeclaredFields | None = None) -> list[str]:
    with pytest.raises(DistributionRejected) as caught:
        validate_distribution(path, filename=path.name, declared=declared)
    return list(caught.value.codes)


def check_dist(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BASTION), "check-dist", str(path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("builder", [valid_wheel, valid_sdist])
def test_the_baselines_are_valid(tmp_path: Path, builder: Builder) -> None:
    path = builder(tmp_path)
    assert validate_distribution(path, filename=path.name).name == "demo"


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_artifact_is_rejected_with_its_code(tmp_path: Path, case: str) -> None:
    code, build = HOSTILE[case]
    assert code in KNOWN_CODES
    path = build(tmp_path)
    assert set(rejected_codes(path)) == {code}
    result = check_dist(path)
    assert result.returncode == 1, result.stderr
    reported = [line.split(": ", 2)[1].split(" ")[0] for line in result.stderr.splitlines()]
    assert set(reported) == {code}, result.stderr


@pytest.mark.parametrize("case", sorted(FORM_HOSTILE))
def test_form_contradicting_the_file_is_rejected(tmp_path: Path, case: str) -> None:
    code, build, fields = FORM_HOSTILE[case]
    path = build(tmp_path)
    declared = DeclaredFields(name=fields["name"][0], version=fields["version"][0], fields=fields)
    assert rejected_codes(path, declared) == [code]
    if set(fields) == {"name", "version"}:  # the CLI can only declare these two
        result = check_dist(path, "--name", fields["name"][0], "--version", fields["version"][0])
        assert result.returncode == 1 and f": {code}" in result.stderr, result.stderr
