"""Distribution validation: ``validate_distribution`` and the values it takes and returns.

The pipeline (``pipeline.py``) runs small steps, each in its own module: ``filenames`` ->
``archives`` (framing) -> ``contents`` -> ``metadata`` -> ``declared``. Limits are the fields
of :class:`Limits`; problems are :class:`DistProblem` with stable codes (see ``errors``).
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
    "ReleaseMetadata",
    "ValidatedDistribution",
    "parse_filename",
    "validate_distribution",
]
