#!/usr/bin/env python3
"""Benchmark distribution validation against simply reading and hashing the file.

Issue 3's goal: ``validate_distribution`` runs at >= 50% of the speed of reading the file once
and hashing it (sha256 + blake2b-256 + md5, 1 MiB chunks), i.e. validation takes at most twice
as long, and its memory stays bounded whatever the file's size.

What it does (stdlib + bastion only, everything in a temporary directory):

1. writes, deterministically (seeded), these wheels, each with a correct RECORD:
   * ``big-stored``: one ``--big-mb`` MB random-payload member stored, plus a few small ones;
   * ``big-deflated``: the same, with every member deflated (random data does not shrink,
     so inflating it is pure cost);
   * ``small-stored``: as ``big-stored`` with ``--small-mb`` MB, to compare memory with;
   * ``many``: ``--members`` small deflated modules;
2. for each, best of ``--repeat`` interleaved runs of (a) read + hash, (b)
   ``validate_distribution`` with ``hashes=None`` (so it hashes too), the same with the hashes
   given (the upload path, which hashes while spooling), and the "member floor": opening the
   zip with ``zipfile`` and inflating + sha256-ing every member, the least any RECORD check in
   Python does (for 20,000 tiny members it costs far more than reading the file once);
3. measures the peak memory of one validation in a fresh process per wheel: tracemalloc's
   peak, the peak RSS growth (Linux VmHWM, reset just before validating) and the ru_maxrss
   delta (which only shows growth above the size the process inherited at fork);
4. prints a Markdown table and appends one JSON line per wheel to
   ``bench/results/validate.jsonl``.

Usage:
    .venv/bin/python bench/validate.py [--repeat 5] [--big-mb 50] [--small-mb 10]
                                       [--members 20000] [--seed 3]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
REPO = HERE.parent
if str(REPO / "src") not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO / "src"))

from bastion.core.dists import (  # noqa: E402
    DistributionRejected,
    Hashes,
    validate_distribution,
)

MB = 1_000_000
MiB = 1024 * 1024
CHUNK = MiB
ZIP_DATE = (2024, 1, 1, 0, 0, 0)
VERSION = "1.0.0"


# -- writing the wheels -----------------------------------------------------------------------


def _record_hash(digest: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class WheelWriter:
    """Writes a wheel member by member, keeping the RECORD lines; ``close`` adds RECORD."""

    def __init__(self, path: Path, name: str, compression: int) -> None:
        self.name = name
        self.dist_info = f"{name}-{VERSION}.dist-info"
        self.compression = compression
        self.record: list[str] = []
        self.members = 0
        self._zip = zipfile.ZipFile(path, "w")

    def _info(self, arcname: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(arcname, date_time=ZIP_DATE)
        info.compress_type = self.compression
        info.external_attr = 0o644 << 16
        return info

    def add(self, arcname: str, data: bytes) -> None:
        self._zip.writestr(self._info(arcname), data)
        self.record.append(f"{arcname},{_record_hash(hashlib.sha256(data).digest())},{len(data)}")
        self.members += 1

    def add_stream(self, arcname: str, chunks: Iterator[bytes]) -> None:
        """A large member, written chunk by chunk (never whole in memory)."""
        sha256, size = hashlib.sha256(), 0
        with self._zip.open(self._info(arcname), "w", force_zip64=True) as stream:
            for chunk in chunks:
                stream.write(chunk)
                sha256.update(chunk)
                size += len(chunk)
        self.record.append(f"{arcname},{_record_hash(sha256.digest())},{size}")
        self.members += 1

    def close(self, summary: str) -> None:
        metadata = (
            "Metadata-Version: 2.4\n"
            f"Name: {self.name}\n"
            f"Version: {VERSION}\n"
            f"Summary: {summary}\n"
            "License-Expression: MIT\n"
            "License-File: LICENSE\n"
            "Requires-Python: >=3.9\n"
            "Description-Content-Type: text/markdown\n"
            "\n"
            f"# {self.name}\n\nA generated wheel for bench/validate.py.\n"
        )
        wheel = (
            "Wheel-Version: 1.0\n"
            "Generator: bench/validate.py\n"
            "Root-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        )
        self.add(f"{self.dist_info}/licenses/LICENSE", b"MIT License\n")
        entry_points = f"[console_scripts]\n{self.name} = {self.name}:main\n"
        self.add(f"{self.dist_info}/entry_points.txt", entry_points.encode())
        self.add(f"{self.dist_info}/WHEEL", wheel.encode())
        self.add(f"{self.dist_info}/METADATA", metadata.encode())
        self.record.append(f"{self.dist_info}/RECORD,,")
        record = "\n".join(self.record) + "\n"
        self._zip.writestr(self._info(f"{self.dist_info}/RECORD"), record.encode())
        self.members += 1
        self._zip.close()


def _random_chunks(total: int, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    left = total
    while left > 0:
        size = min(CHUNK, left)
        yield rng.randbytes(size)
        left -= size


def _module_source(index: int) -> bytes:
    return (
        f'"""Generated module {index}."""\n\n'
        f"VALUE = {index}\n\n\n"
        f"def f{index}(x: int) -> int:\n"
        f"    return x * {index % 97 + 1} + VALUE\n"
    ).encode()


def write_payload_wheel(
    directory: Path, label: str, megabytes: int, compression: int, seed: int
) -> Path:
    name = f"bench_{label.replace('-', '_')}"
    path = directory / f"{name}-{VERSION}-py3-none-any.whl"
    writer = WheelWriter(path, name, compression)
    writer.add(f"{name}/__init__.py", b"def main() -> int:\n    return 0\n")
    for index in range(4):
        writer.add(f"{name}/small_{index}.py", _module_source(index))
    writer.add_stream(f"{name}/data/payload.bin", _random_chunks(megabytes * MB, seed))
    writer.close(f"{megabytes} MB random payload")
    return path


def write_many_member_wheel(directory: Path, members: int) -> Path:
    name = "bench_many"
    path = directory / f"{name}-{VERSION}-py3-none-any.whl"
    writer = WheelWriter(path, name, zipfile.ZIP_DEFLATED)
    writer.add(f"{name}/__init__.py", b"def main() -> int:\n    return 0\n")
    # Leave room for __init__.py and the 5 dist-info files, so the total is ``members``.
    for index in range(max(0, members - 6)):
        writer.add(f"{name}/pkg{index // 1000:03d}/m{index:05d}.py", _module_source(index))
    writer.close(f"{members} members")
    return path


# -- measuring --------------------------------------------------------------------------------


def read_and_hash(path: Path) -> None:
    """Baseline (a): one pass over the file, three digests, 1 MiB chunks."""
    sha256 = hashlib.sha256()
    blake2b = hashlib.blake2b(digest_size=32)
    md5 = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            sha256.update(chunk)
            blake2b.update(chunk)
            md5.update(chunk)
    sha256.hexdigest(), blake2b.hexdigest(), md5.hexdigest()


def read_every_member(path: Path) -> None:
    """Floor for RECORD verification in Python: open the zip, inflate and sha256 each member.

    Any validator that checks RECORD does at least this; for a wheel of many small members it
    costs far more than reading the file, which is why it is reported next to baseline (a).
    """
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            digest = hashlib.sha256()
            with archive.open(info) as stream:
                while chunk := stream.read(CHUNK):
                    digest.update(chunk)


def _proc_status_mib(field: str) -> float | None:
    """A ``VmRSS``/``VmHWM`` figure of this process in MiB (Linux), else ``None``."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: ``5`` to ``/proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def memory_probe(path: Path) -> dict[str, float | str | None]:
    """Run in a fresh process: peak memory of one validation of ``path``.

    ru_maxrss is a high-water mark that a child inherits from its parent's size at fork/exec,
    so its delta only shows growth above that; the Linux peak-RSS counter (VmHWM), reset just
    before validating, gives the validation's own peak RSS growth.
    """
    read_and_hash(path)  # the page cache, outside the measurement
    rss_before = _proc_status_mib("VmRSS")
    reset = _reset_peak_rss()
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    tracemalloc.start()
    try:
        validate_distribution(path, filename=path.name)
        rejected = ""
    except DistributionRejected as error:
        rejected = ", ".join(error.codes)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_rss = _proc_status_mib("VmHWM") if reset else None
    return {
        "tracemalloc_peak_mib": peak / MiB,
        "maxrss_delta_mib": (maxrss_after - maxrss_before) / 1024,
        "rss_before_mib": rss_before,
        "rss_peak_growth_mib": (
            peak_rss - rss_before if peak_rss is not None and rss_before is not None else None
        ),
        "rejected": rejected,
    }


def probe_in_subprocess(path: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, __file__, "--memory-probe", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if result.returncode != 0:
        raise SystemExit(f"memory probe of {path.name} failed:\n{result.stderr}")
    probe: dict[str, Any] = json.loads(result.stdout)
    return probe


@dataclass
class Row:
    wheel: str
    filename: str
    size_mb: float
    members: int
    #: Best-of-N seconds.
    read_hash_s: float
    member_floor_s: float
    validate_s: float
    validate_with_hashes_s: float
    tracemalloc_peak_mib: float
    maxrss_delta_mib: float
    rss_before_mib: float | None
    rss_peak_growth_mib: float | None
    rejected: str

    @property
    def ratio(self) -> float:
        """Validation time over read+hash time; the goal is <= 2."""
        return self.validate_s / self.read_hash_s

    @property
    def ratio_with_hashes(self) -> float:
        return self.validate_with_hashes_s / self.read_hash_s

    @property
    def ratio_to_floor(self) -> float:
        return self.validate_s / self.member_floor_s


def measure(label: str, path: Path, members: int, repeat: int) -> Row:
    rejected = ""
    try:
        validate_distribution(path, filename=path.name)  # warm-up, and the verdict
    except DistributionRejected as error:
        rejected = "; ".join(f"{problem.code}: {problem.message}" for problem in error.problems)
    hashes = Hashes.of_file(path)

    def validate(given: Hashes | None) -> None:
        try:
            validate_distribution(path, filename=path.name, hashes=given)
        except DistributionRejected:
            pass

    runs: dict[str, Callable[[], object]] = {
        "read_hash": lambda: read_and_hash(path),
        "floor": lambda: read_every_member(path),
        "validate": lambda: validate(None),
        "validate_hashed": lambda: validate(hashes),
    }
    # Interleaved, so drift on a shared machine hits every measurement alike; best of N.
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeat):
        for key, function in runs.items():
            start = time.perf_counter()
            function()
            best[key] = min(best[key], time.perf_counter() - start)
    memory = probe_in_subprocess(path)
    return Row(
        wheel=label,
        filename=path.name,
        size_mb=path.stat().st_size / MB,
        members=members,
        read_hash_s=best["read_hash"],
        member_floor_s=best["floor"],
        validate_s=best["validate"],
        validate_with_hashes_s=best["validate_hashed"],
        tracemalloc_peak_mib=memory["tracemalloc_peak_mib"],
        maxrss_delta_mib=memory["maxrss_delta_mib"],
        rss_before_mib=memory["rss_before_mib"],
        rss_peak_growth_mib=memory["rss_peak_growth_mib"],
        rejected=rejected,
    )


def markdown(rows: list[Row]) -> str:
    columns = (
        "wheel",
        "size MB",
        "members",
        "(a) read+hash s (MB/s)",
        "(b) validate s (MB/s)",
        "(b)/(a)",
        "speed vs (a)",
        "validate, hashes given s",
        "/(a)",
        "member floor s",
        "(b)/floor",
        "tracemalloc peak MiB",
        "RSS peak growth MiB",
        "ru_maxrss +MiB",
        "verdict",
    )
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = (
            row.wheel,
            f"{row.size_mb:.1f}",
            str(row.members),
            f"{row.read_hash_s:.3f} ({row.size_mb / row.read_hash_s:.0f})",
            f"{row.validate_s:.3f} ({row.size_mb / row.validate_s:.0f})",
            f"{row.ratio:.2f}",
            f"{100 / row.ratio:.0f}%",
            f"{row.validate_with_hashes_s:.3f}",
            f"{row.ratio_with_hashes:.2f}",
            f"{row.member_floor_s:.3f}",
            f"{row.ratio_to_floor:.2f}",
            f"{row.tracemalloc_peak_mib:.1f}",
            "n/a" if row.rss_peak_growth_mib is None else f"{row.rss_peak_growth_mib:.1f}",
            f"{row.maxrss_delta_mib:.1f}",
            "REJECTED: " + row.rejected if row.rejected else "accepted",
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (best of)")
    parser.add_argument("--big-mb", type=int, default=50, help="payload of the big wheels, MB")
    parser.add_argument("--small-mb", type=int, default=10, help="payload to compare memory with")
    parser.add_argument("--members", type=int, default=20_000, help="members of the many wheel")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--memory-probe", metavar="WHEEL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_probe:
        print(json.dumps(memory_probe(Path(args.memory_probe))))
        return 0
    if args.repeat < 1 or args.big_mb < 1 or args.small_mb < 1 or args.members < 10:
        parser.error("--repeat, --big-mb and --small-mb must be >= 1, --members >= 10")

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bastion-bench-validate-") as scratch:
        directory = Path(scratch)
        start = time.perf_counter()
        payloads = (
            ("big-stored", args.big_mb, zipfile.ZIP_STORED),
            ("big-deflated", args.big_mb, zipfile.ZIP_DEFLATED),
            ("small-stored", args.small_mb, zipfile.ZIP_STORED),
        )
        wheels = [
            (label, write_payload_wheel(directory, label, size, compression, args.seed))
            for label, size, compression in payloads
        ]
        wheels.append(("many", write_many_member_wheel(directory, args.members)))
        print(f"wrote {len(wheels)} wheels in {time.perf_counter() - start:.1f}s", file=sys.stderr)
        for label, path in wheels:
            with zipfile.ZipFile(path) as archive:
                members = len(archive.infolist())
            rows.append(measure(label, path, members, args.repeat))
            print(f"measured {label}", file=sys.stderr)

    print(markdown(rows))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    context = {
        "timestamp": stamp,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "repeat": args.repeat,
        "seed": args.seed,
    }
    with (RESULTS / "validate.jsonl").open("a", encoding="utf-8") as results:
        for row in rows:
            record = {
                **context,
                **asdict(row),
                "ratio": row.ratio,
                "ratio_with_hashes": row.ratio_with_hashes,
                "ratio_to_floor": row.ratio_to_floor,
            }
            results.write(json.dumps(record) + "\n")
    return 1 if any(row.rejected for row in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
