"""Property tests: whatever the bytes or the name, validation answers with a verdict -- a
validated distribution or a ``DistributionRejected`` -- and never with another exception."""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.core.dists import DistributionRejected, parse_filename, validate_distribution
from tests.fixtures.dists import valid_sdist, valid_wheel

with tempfile.TemporaryDirectory() as _directory:
    WHEEL_BYTES = valid_wheel(Path(_directory)).read_bytes()
    SDIST_BYTES = valid_sdist(Path(_directory)).read_bytes()
TAR_BYTES = gzip.decompress(SDIST_BYTES)


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """The original with a few bytes changed, a slice removed or bytes inserted."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[position] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[position : position + draw(st.integers(1, 64))]
        else:
            data[position:position] = draw(st.binary(min_size=1, max_size=64))
    return bytes(data)


def verdict(content: bytes, filename: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / filename
        path.write_bytes(content)
        try:
            validate_distribution(path, filename=filename)
        except DistributionRejected as rejected:
            assert rejected.problems
            assert all("\n" not in problem.message for problem in rejected.problems)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(WHEEL_BYTES))
def test_mutated_wheels_get_a_verdict(content: bytes) -> None:
    verdict(content, "demo-1.0-py3-none-any.whl")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(SDIST_BYTES))
def test_mutated_sdists_get_a_verdict(content: bytes) -> None:
    verdict(content, "demo-1.0.tar.gz")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(TAR_BYTES))
def test_mutated_tars_inside_valid_gzip_get_a_verdict(content: bytes) -> None:
    # Mutating the tar itself (not the gzip layer) reaches the header and member rules.
    verdict(gzip.compress(content), "demo-1.0.tar.gz")


@settings(max_examples=500)
@given(st.text(max_size=300))
def test_any_filename_parses_or_is_rejected(filename: str) -> None:
    try:
        parsed = parse_filename(filename)
    except DistributionRejected as rejected:
        assert rejected.problems
    else:
        assert filename.endswith((".whl", ".tar.gz"))
        assert parsed.name == parsed.name.lower()
