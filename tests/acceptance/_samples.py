"""The sample projects of ``test_built_distributions``: their files, and what their artifacts'
core metadata must say. Each one is a small, real project of one build backend's kind."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

from packaging.version import Version

README_MD = """\
# {title}

A *sample* project for bastion's acceptance tests: café, naïve, 日本語, ☕.

| column | value |
| ------ | ----- |
| a      | `1`   |

```python
import {module}
```
"""

README_RST = """\
{underline}
{title}
{underline}

A *sample* project for bastion's acceptance tests: café, naïve, 日本語, ☕.

.. code-block:: python

   import {module}

* item one
* item ``two``
"""

MODULE = '''\
"""{summary}"""

__version__ = "{version}"


def main() -> int:
    return 0
'''


@dataclass(frozen=True)
class Sample:
    """A project to build, and what its artifacts' core metadata must say."""

    id: str
    #: "build" (python -m build --no-isolation), "uv" (uv build --no-build-isolation) or
    #: "uv-isolated" (uv build, fetching the backend from the package registry).
    tool: str
    #: Importable module of the backend (skipped with a message if missing, failed in CI).
    backend_module: str
    files: dict[str, str]
    name: str  # normalized project name
    display_name: str  # as written in the project (the form's ``name`` when uploaded by twine)
    version: str  # normalized version
    #: Exact Metadata-Version, or None for "whatever this backend emits" (at least ``min_...``).
    metadata_version: str | None
    min_metadata_version: str
    license_expression: str = ""
    license: str = ""
    license_files: tuple[str, ...] = ()
    provides_extra: tuple[str, ...] = ()
    description_content_type: str = ""
    #: Text the description must contain (from the readme or the module docstring).
    description_marker: str = "café, naïve, 日本語, ☕"
    requires_python: str = ">=3.9"
    #: Entry-point group and name the wheel's entry_points.txt must contain.
    entry_points: tuple[tuple[str, str], ...] = ()
    extra_checks: dict[str, str] = field(default_factory=dict)


def _module(version: str, summary: str = "A sample project.") -> str:
    return MODULE.format(summary=summary, version=version)


def _readme(kind: str, title: str, module: str) -> str:
    if kind == "md":
        return README_MD.format(title=title, module=module)
    return README_RST.format(title=title, underline="=" * len(title), module=module)


# -- setuptools -------------------------------------------------------------------------------


def _setuptools_pep639() -> Sample:
    """pyproject.toml [project] with a PEP 639 expression and globbed license files."""
    pyproject = """\
        [build-system]
        requires = ["setuptools>=77"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "St.Demo"
        version = "2024.01.05"
        description = "setuptools with PEP 639 licensing"
        readme = "README.md"
        license = "MIT OR Apache-2.0"
        license-files = ["LICENSE-*", "licenses/*.txt"]
        requires-python = ">=3.9"
        dependencies = ["packaging>=20", "tomli>=1.1; python_version < '3.11'"]
        keywords = ["demo", "acceptance"]
        classifiers = [
            "Programming Language :: Python :: 3",
            "Operating System :: OS Independent",
        ]

        [project.optional-dependencies]
        Fast_Mode = ["ujson>=5; python_version < '3.12'"]
        all = ["st.demo[fast-mode]"]

        [project.urls]
        Homepage = "https://example.org/st-demo"
        "Issue Tracker" = "https://example.org/st-demo/issues"

        [project.scripts]
        st-demo = "st_demo:main"

        [project.entry-points."st_demo.plugins"]
        default = "st_demo:main"
    """
    return Sample(
        id="setuptools-pep639",
        tool="build",
        backend_module="setuptools",
        files={
            "pyproject.toml": textwrap.dedent(pyproject),
            "README.md": _readme("md", "St.Demo", "st_demo"),
            "LICENSE-MIT": "MIT License\n",
            "LICENSE-APACHE": "Apache License 2.0\n",
            "licenses/THIRD-PARTY.txt": "Bundled code notices\n",
            "src/st_demo/__init__.py": _module("2024.01.05"),
        },
        name="st-demo",
        display_name="St.Demo",
        version="2024.1.5",
        metadata_version=None,
        min_metadata_version="2.4",
        license_expression="MIT OR Apache-2.0",
        license_files=("LICENSE-APACHE", "LICENSE-MIT", "licenses/THIRD-PARTY.txt"),
        provides_extra=("fast-mode", "all"),
        description_content_type="text/markdown",
        entry_points=(("console_scripts", "st-demo"), ("st_demo.plugins", "default")),
    )


def _setuptools_setup_cfg() -> Sample:
    """A declarative setup.cfg + setup.py project, as most long-lived projects still are."""
    setup_cfg = """\
        [metadata]
        name = legacy.demo
        version = 3.1.0-beta.2
        description = A setup.cfg project with an rst readme
        long_description = file: README.rst
        long_description_content_type = text/x-rst
        author = Ada Lovelace
        author_email = ada@example.org
        url = https://example.org/legacy-demo
        license = BSD
        license_files = COPYING
        classifiers =
            Programming Language :: Python :: 3
            Operating System :: OS Independent

        [options]
        packages = legacy_demo
        python_requires = >=3.8
        install_requires =
            packaging>=20

        [options.extras_require]
        Speed-Ups =
            cython>=3; platform_python_implementation == "CPython"
        docs =
            sphinx

        [options.entry_points]
        console_scripts =
            legacy-demo = legacy_demo:main
        gui_scripts =
            legacy-demo-gui = legacy_demo:main
    """
    return Sample(
        id="setuptools-setup-cfg",
        tool="build",
        backend_module="setuptools",
        files={
            "pyproject.toml": textwrap.dedent("""\
                [build-system]
                requires = ["setuptools"]
                build-backend = "setuptools.build_meta"
            """),
            "setup.cfg": textwrap.dedent(setup_cfg),
            "setup.py": "from setuptools import setup\n\nsetup()\n",
            "README.rst": _readme("rst", "legacy.demo", "legacy_demo"),
            "COPYING": "BSD 3-Clause License\n",
            "legacy_demo/__init__.py": _module("3.1.0b2"),
        },
        name="legacy-demo",
        display_name="legacy.demo",
        version="3.1.0b2",
        metadata_version=None,
        min_metadata_version="2.1",
        license="BSD",
        license_files=("COPYING",),
        provides_extra=("speed-ups", "docs"),
        description_content_type="text/x-rst",
        requires_python=">=3.8",
        entry_points=(("console_scripts", "legacy-demo"), ("gui_scripts", "legacy-demo-gui")),
    )


# -- hatchling: one sample per core metadata version ------------------------------------------

HATCHLING_METADATA_VERSIONS = ("2.1", "2.2", "2.3", "2.4", "2.5")


def _hatchling(metadata_version: str, *, tool: str = "build") -> Sample:
    """hatchling pins the core metadata version it writes, so each version 2.1+ is covered."""
    readme = "md" if metadata_version in ("2.1", "2.3", "2.5") else "rst"
    readme_file = "README.md" if readme == "md" else "README.rst"
    pyproject = f"""\
        [build-system]
        requires = ["hatchling>=1.27"]
        build-backend = "hatchling.build"

        [project]
        name = "Hatch_Demo"
        version = "1.2.3"
        description = "hatchling writing core metadata {metadata_version}"
        readme = "{readme_file}"
        license = "MIT"
        license-files = ["LICENSE.txt", "LICENSES/*"]
        requires-python = ">=3.9"
        authors = [{{ name = "Zoë Example", email = "zoe@example.org" }}]
        dependencies = ["packaging>=20", "importlib-metadata>=6; python_version < '3.10'"]

        [project.optional-dependencies]
        CLI = ["click>=8"]
        Test_Suite = ["pytest>=8", "hatch-demo[cli]"]

        [project.scripts]
        hatch-demo = "hatch_demo:main"

        [project.gui-scripts]
        hatch-demo-gui = "hatch_demo:main"

        [project.entry-points."hatch_demo.plugins"]
        "fast.path" = "hatch_demo:main"

        [project.urls]
        Documentation = "https://example.org/hatch-demo/docs"

        [tool.hatch.build.targets.wheel]
        core-metadata-version = "{metadata_version}"
        packages = ["src/hatch_demo"]

        [tool.hatch.build.targets.sdist]
        core-metadata-version = "{metadata_version}"
    """
    pep639 = Version(metadata_version) >= Version("2.4")
    return Sample(
        id=("" if tool == "build" else "uv-") + f"hatchling-{metadata_version}",
        tool=tool,
        backend_module="hatchling",
        files={
            "pyproject.toml": textwrap.dedent(pyproject),
            readme_file: _readme(readme, "Hatch_Demo", "hatch_demo"),
            "LICENSE.txt": "MIT License\n",
            "LICENSES/vendored-BSD.txt": "BSD License of vendored code\n",
            "src/hatch_demo/__init__.py": _module("1.2.3"),
        },
        name="hatch-demo",
        display_name="Hatch_Demo",
        version="1.2.3",
        metadata_version=metadata_version,
        min_metadata_version=metadata_version,
        # Before 2.4 there is no License-Expression: hatchling writes the classic field.
        license_expression="MIT" if pep639 else "",
        license="" if pep639 else "MIT",
        license_files=("LICENSE.txt", "LICENSES/vendored-BSD.txt") if pep639 else (),
        provides_extra=("cli", "test-suite"),
        description_content_type="text/markdown" if readme == "md" else "text/x-rst",
        entry_points=(
            ("console_scripts", "hatch-demo"),
            ("gui_scripts", "hatch-demo-gui"),
            ("hatch_demo.plugins", "fast.path"),
        ),
    )


# -- flit_core, pdm-backend, poetry-core, uv_build --------------------------------------------


def _flit() -> Sample:
    """flit_core takes version and summary from the module (dynamic), readme in rst."""
    pyproject = """\
        [build-system]
        requires = ["flit_core>=3.12,<5"]
        build-backend = "flit_core.buildapi"

        [project]
        name = "flit-demo"
        dynamic = ["version", "description"]
        readme = "README.rst"
        license = "Apache-2.0"
        license-files = ["LICENSE"]
        requires-python = ">=3.9"
        dependencies = ["packaging>=20"]

        [project.optional-dependencies]
        test = ["pytest>=8"]
        Dev-Tools = ["ruff; sys_platform != 'win32'"]

        [project.scripts]
        flit-demo = "flit_demo:main"
    """
    return Sample(
        id="flit-core",
        tool="build",
        backend_module="flit_core",
        files={
            "pyproject.toml": textwrap.dedent(pyproject),
            "README.rst": _readme("rst", "flit-demo", "flit_demo"),
            "LICENSE": "Apache License 2.0\n",
            "flit_demo/__init__.py": _module("0.9.post1", "The flit demo."),
        },
        name="flit-demo",
        display_name="flit-demo",
        version="0.9.post1",
        metadata_version=None,
        min_metadata_version="2.4",
        license_expression="Apache-2.0",
        license_files=("LICENSE",),
        provides_extra=("test", "dev-tools"),
        description_content_type="text/x-rst",
        entry_points=(("console_scripts", "flit-demo"),),
        extra_checks={"summary": "The flit demo."},
    )


def _pdm() -> Sample:
    """pdm-backend with a GFM Markdown readme declared with its full content type."""
    pyproject = """\
        [build-system]
        requires = ["pdm-backend>=2.4"]
        build-backend = "pdm.backend"

        [project]
        name = "pdm_demo"
        version = "0.3.0rc1"
        description = "pdm-backend demo"
        readme = { file = "README.md", content-type = "text/markdown; charset=UTF-8; variant=GFM" }
        license = "BSD-3-Clause"
        license-files = ["LICENSE"]
        requires-python = ">=3.9"
        dependencies = ["packaging>=20"]

        [project.optional-dependencies]
        docs = ["sphinx>=7"]

        [project.scripts]
        pdm-demo = "pdm_demo:main"
    """
    return Sample(
        id="pdm-backend",
        tool="build",
        backend_module="pdm.backend",
        files={
            "pyproject.toml": textwrap.dedent(pyproject),
            "README.md": _readme("md", "pdm_demo", "pdm_demo"),
            "LICENSE": "BSD 3-Clause License\n",
            "src/pdm_demo/__init__.py": _module("0.3.0rc1"),
        },
        name="pdm-demo",
        display_name="pdm_demo",
        version="0.3.0rc1",
        metadata_version=None,
        min_metadata_version="2.4",
        license_expression="BSD-3-Clause",
        license_files=("LICENSE",),
        provides_extra=("docs",),
        description_content_type="text/markdown; charset=UTF-8; variant=GFM",
        entry_points=(("console_scripts", "pdm-demo"),),
    )


def _poetry() -> Sample:
    """poetry-core: parenthesised requirement versions and generated Python classifiers."""
    pyproject = """\
        [build-system]
        requires = ["poetry-core>=2"]
        build-backend = "poetry.core.masonry.api"

        [project]
        name = "Poetry-Demo"
        version = "0.4.0"
        description = "poetry-core demo"
        readme = "README.md"
        license = "MIT"
        license-files = ["LICENSE"]
        requires-python = ">=3.9"
        dependencies = ["packaging>=20"]

        [project.optional-dependencies]
        socks = ["PySocks>=1.5.6,!=1.5.7"]

        [project.scripts]
        poetry-demo = "poetry_demo:main"

        [tool.poetry]
        packages = [{ include = "poetry_demo", from = "src" }]
    """
    return Sample(
        id="poetry-core",
        tool="build",
        backend_module="poetry.core",
        files={
            "pyproject.toml": textwrap.dedent(pyproject),
            "README.md": _readme("md", "Poetry-Demo", "poetry_demo"),
            "LICENSE": "MIT License\n",
            "src/poetry_demo/__init__.py": _module("0.4.0"),
        },
        name="poetry-demo",
        display_name="Poetry-Demo",
        version="0.4.0",
        metadata_version=None,
        min_metadata_version="2.4",
        license_expression="MIT",
        license_files=("LICENSE",),
        provides_extra=("socks",),
        description_content_type="text/markdown",
        entry_points=(("console_scripts", "poetry-demo"),),
    )


def _uv_build() -> Sample:
    """uv's own backend, fetched by ``uv build`` from the package registry (build isolation)."""
    pyproject = """\
        [build-system]
        requires = ["uv_build>=0.9,<0.15"]
        build-backend = "uv_build"

        [project]
        name = "uv.build-Demo"
        version = "0.5.0.dev3"
        description = "uv_build demo"
        readme = "README.rst"
        license = "MIT AND (Apache-2.0 OR BSD-2-Clause)"
        license-files = ["LICENSE", "third_party/**/LICENSE*"]
        requires-python = ">=3.9"
        dependencies = ["packaging>=20"]

        [project.optional-dependencies]
        YAML = ["pyyaml>=6"]

        [project.scripts]
        uv-build-demo = "uv_build_demo:main"
    """
    return Sample(
        id="uv-build-backend",
        tool="uv-isolated",
        backend_module="",
        files={
            "pyproject.toml": textwrap.dedent(pyproject),
            "README.rst": _readme("rst", "uv.build-Demo", "uv_build_demo"),
            "LICENSE": "MIT License\n",
            "third_party/vendored/LICENSE.txt": "Apache License 2.0 or BSD-2-Clause\n",
            "src/uv_build_demo/__init__.py": _module("0.5.0.dev3"),
        },
        name="uv-build-demo",
        display_name="uv.build-Demo",
        version="0.5.0.dev3",
        metadata_version=None,
        min_metadata_version="2.4",
        license_expression="MIT AND (Apache-2.0 OR BSD-2-Clause)",
        license_files=("LICENSE", "third_party/vendored/LICENSE.txt"),
        provides_extra=("yaml",),
        description_content_type="text/x-rst",
        entry_points=(("console_scripts", "uv-build-demo"),),
    )


SAMPLES: dict[str, Sample] = {
    sample.id: sample
    for sample in (
        _setuptools_pep639(),
        _setuptools_setup_cfg(),
        *(_hatchling(version) for version in HATCHLING_METADATA_VERSIONS),
        _flit(),
        _pdm(),
        _poetry(),
        _hatchling("2.4", tool="uv"),
        _uv_build(),
    )
}
