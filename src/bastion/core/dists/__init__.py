"""Distribution validation: ``validate_distribution`` and the values it takes and returns.

The pipeline (``pipeline.py``) runs small steps, each in its own module: ``filenames`` and
``policy`` -> ``archives`` (framing: ``zipframing``, ``tarframing``) -> ``contents`` (``wheel``
with ``record``, ``sdist``) -> ``metadata`` (with ``metadata_rules``) -> ``declared`` (with
``form_fields``) -> ``policy`` (new project names). Limits are the fields of :class:`Limits`,
index rules the fields of :class:`Policy`; problems are :class:`DistProblem` with stable codes
(see ``errors``).
"""

from bastion.core.dists.errors import KNOWN_CODES, DistProblem, DistributionRejected
from bastion.core.dists.filenames import ParsedFilename, parse_filename
from bastion.core.dists.limits import Limits
from bastion.core.dists.metadata import SUPPORTED_METADATA_VERSIONS
from bastion.core.dists.model import (
    DeclaredFields,
    FileHasher,
    Hashes,
    PackageType,
    ReleaseMetadata,
    ValidatedDistribution,
)
from bastion.core.dists.pipeline import validate_distribution
from bastion.core.dists.policy import Policy, check_new_project_name, is_pypi_platform_tag

__all__ = [
    "KNOWN_CODES",
    "SUPPORTED_METADATA_VERSIONS",
    "DeclaredFields",
    "DistProblem",
    "DistributionRejected",
    "FileHasher",
    "Hashes",
    "Limits",
    "PackageType",
    "ParsedFilename",
    "Policy",
    "ReleaseMetadata",
    "ValidatedDistribution",
    "check_new_project_name",
    "is_pypi_platform_tag",
    "parse_filename",
    "validate_distribution",
]
