"""Index policy (bastion.core.dists.policy): P106 local versions, P108 platform tags, and the
names a new project may not take -- with the switches a private index may turn."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.core.dists import (
    DistProblem,
    DistributionRejected,
    Policy,
    check_new_project_name,
    is_pypi_platform_tag,
    validate_distribution,
)
from bastion.core.names import confusable_key
from tests.fixtures.dists import HOSTILE


@pytest.mark.parametrize(
    "tag",
    [
        "any",
        "win32",
        "win_amd64",
        "win_arm64",
        "win_ia64",
        "manylinux1_x86_64",
        "manylinux2010_i686",
        "manylinux2014_aarch64",
        "manylinux2014_ppc64",
        "manylinux_2_17_x86_64",
        "manylinux_2_28_riscv64",
        "manylinux_2_5_ppc64",
        "musllinux_1_2_aarch64",
        "linux_armv6l",
        "linux_armv7l",
        "macosx_10_9_x86_64",
        "macosx_10_15_universal2",
        "macosx_11_0_arm64",
        "macosx_15_0_arm64",
        "macosx_26_0_arm64",
        "ios_13_0_arm64_iphoneos",
        "ios_13_0_x86_64_iphonesimulator",
        "android_21_arm64_v8a",
        "android_24_x86_64",
        "pyemscripten_2025_0_wasm32",
    ],
)
def test_pypi_platform_tags(tag: str) -> None:
    assert is_pypi_platform_tag(tag)


@pytest.mark.parametrize(
    "tag",
    [
        "linux_x86_64",  # not portable
        "linux_aarch64",
        "manylinux2014_riscv64",  # not in the static list
        "musllinux_1_2_ppc64",  # ppc64 only for manylinux
        "manylinux_2_17_sparc",
        "macosx_11_1_arm64",  # from 11 on only _0
        "macosx_16_0_arm64",  # not a macOS major
        "macosx_10_9_arm65",
        "ios_13_0_arm64_ipados",
        "android_21_mips",
        "pyemscripten_2025_0_wasm64",
        "emscripten_3_1_14_wasm32",
        "cygwin_x86_64",
        "",
        "ANY",
    ],
)
def test_tags_pypi_refuses(tag: str) -> None:
    assert not is_pypi_platform_tag(tag)


def test_extra_platform_tags_allow_internal_builds(tmp_path: Path) -> None:
    path = HOSTILE["platform_tag_linux"][1](tmp_path)
    with pytest.raises(DistributionRejected) as caught:
        validate_distribution(path, filename=path.name)
    (problem,) = caught.value.problems
    assert problem.message == (
        "Binary wheel 'demo-1.0-cp311-cp311-linux_x86_64.whl' has an unsupported platform tag "
        "'linux_x86_64'."
    )
    policy = Policy(extra_platform_tags=frozenset({"linux_x86_64"}))
    assert validate_distribution(path, filename=path.name, policy=policy).tags == {
        "cp311-cp311-linux_x86_64"
    }


def test_local_versions_when_the_policy_allows_them(tmp_path: Path) -> None:
    path = HOSTILE["local_version"][1](tmp_path)
    dist = validate_distribution(path, filename=path.name, policy=Policy(allow_local_versions=True))
    assert (dist.version, dist.canonical_version) == ("1.0+local", "1+local")


def test_wheel_tag_check_can_be_relaxed_for_renamed_wheels(tmp_path: Path) -> None:
    path = HOSTILE["wheel_tags_mismatch"][1](tmp_path)
    policy = Policy(check_wheel_tags=False)
    assert validate_distribution(path, filename=path.name, policy=policy).name == "demo"


@pytest.mark.parametrize(
    ("case", "policy"),
    [
        ("unknown_classifier", Policy(check_classifiers=False)),
        ("description_does_not_render", Policy(render_description=False)),
        ("stdlib_name", Policy(reject_stdlib_names=False)),
        ("prohibited_name", Policy(prohibited_names=frozenset())),
    ],
)
def test_relaxing_switches(tmp_path: Path, case: str, policy: Policy) -> None:
    path = HOSTILE[case][1](tmp_path)
    assert validate_distribution(path, filename=path.name, policy=policy)


@pytest.mark.parametrize("case", ["stdlib_name", "prohibited_name"])
def test_name_rules_apply_only_to_new_projects(tmp_path: Path, case: str) -> None:
    path = HOSTILE[case][1](tmp_path)
    assert validate_distribution(path, filename=path.name, new_project=False)


def test_private_classifiers_are_accepted_unless_switched_off(tmp_path: Path) -> None:
    from tests.fixtures.dists import wheel_members, write_wheel

    metadata = {"Classifier": "Private :: Do Not Upload"}
    path = write_wheel(tmp_path, wheel_members(metadata=metadata))
    assert validate_distribution(path, filename=path.name)
    with pytest.raises(DistributionRejected) as caught:
        validate_distribution(
            path, filename=path.name, policy=Policy(allow_private_classifiers=False)
        )
    assert caught.value.codes == ("dist.metadata.classifier",)


def codes_of(problems: list[DistProblem]) -> list[str]:
    return [problem.code for problem in problems]


def test_new_project_names() -> None:
    existing = {confusable_key(name): name for name in ["requests", "Django", "numpy"]}
    policy = Policy()

    def check(name: str) -> list[str]:
        problems: list[DistProblem] = []
        check_new_project_name(name, policy=policy, similar_project=existing.get, problems=problems)
        return codes_of(problems)

    assert check("requ3sts") == ["dist.name.confusable"]
    assert check("Req_uests") == ["dist.name.confusable"]
    assert check("djang0") == ["dist.name.confusable"]
    assert check("requests") == []  # the same project, not a look-alike
    assert check("request") == []
    assert check("asyncio") == ["dist.name.stdlib"]
    assert check("python") == ["dist.name.prohibited"]


def test_confusable_name_through_validate_distribution(tmp_path: Path) -> None:
    from tests.fixtures.dists import valid_wheel

    path = valid_wheel(tmp_path)
    lookup = {confusable_key("dem0"): "dem0"}.get
    with pytest.raises(DistributionRejected) as caught:
        validate_distribution(path, filename=path.name, similar_project=lookup)
    (problem,) = caught.value.problems
    assert (problem.code, problem.field) == ("dist.name.confusable", "name")
    assert problem.message == "The name 'demo' is too similar to the existing project 'dem0'."
    assert validate_distribution(path, filename=path.name, similar_project={}.get)
