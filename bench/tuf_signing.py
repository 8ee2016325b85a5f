#!/usr/bin/env python3
"""What signing (TUF, PEP 458) adds to an upload, and whether it grows with the repository.

For each repository size (10, 10,000, 100,000 targets spread over the hash bins by their path,
as uploads would), measures the signing step of one upload in process: under the index lock, one
new target in its bin, plus the two bins of the project's simple pages (three bins in all), then
snapshot, then timestamp, stored in the database. Page rendering and the upload itself are not
included: this is the cost the signing hook adds.

    .venv/bin/python bench/tuf_signing.py [--bins 1024] [--rounds 30] [--database-url URL]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time

from _inprocess import setup_django  # bench/ is on sys.path when run


def setup(database_url: str | None) -> None:
    setup_django("bastion-bench-tuf-", database_url)


def fake_target(number: int) -> tuple[str, int, str, str]:
    digest = hashlib.blake2b(str(number).encode(), digest_size=32).hexdigest()
    path = f"{digest[:2]}/{digest[2:4]}/{digest[4:]}/project{number}-1.0-py3-none-any.whl"
    return path, 10_000 + number, hashlib.sha256(path.encode()).hexdigest(), digest


def grow_to(count: int, have: int, succinct) -> None:  # type: ignore[no-untyped-def]
    from bastion.signing.models import Target
    from bastion.signing.repository import bin_index

    rows = []
    for number in range(have, count):
        path, length, sha256, blake2 = fake_target(number)
        rows.append(
            Target(
                path=path,
                project=f"project{number}",
                length=length,
                sha256=sha256,
                blake2b_256=blake2,
                bin=bin_index(succinct.get_role_for_target(path)),
            )
        )
    Target.objects.bulk_create(rows, batch_size=5000)


def measure(rounds: int, offset: int, succinct) -> list[float]:  # type: ignore[no-untyped-def]
    from django.db import transaction

    from bastion.projects.services import lock_index
    from bastion.signing import services
    from bastion.signing.models import Target
    from bastion.signing.repository import bin_index

    timings = []
    for round_number in range(rounds):
        path, length, sha256, blake2 = fake_target(10_000_000 + offset + round_number)
        index = bin_index(succinct.get_role_for_target(path))
        page_bins = {
            bin_index(succinct.get_role_for_target(f"simple/new{offset + round_number}/{page}"))
            for page in ("index.html", "index.json")
        }
        start = time.perf_counter()
        with transaction.atomic():
            lock_index()
            Target.objects.create(
                path=path,
                project="new",
                length=length,
                sha256=sha256,
                blake2b_256=blake2,
                bin=index,
            )
            repository = services._online_repository(services.timezone.now())
            services._publish(repository, succinct, {index, *page_bins})
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bins", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--sizes", default="10,10000,100000")
    parser.add_argument("--database-url")
    args = parser.parse_args()
    setup(args.database_url)
    from securesystemslib.signer import CryptoSigner

    from bastion.signing import services

    keys = [CryptoSigner.generate_ed25519() for _ in range(3)]
    online = keys[2]
    services._online_signer = lambda: online  # in-memory key: measure signing, not file reads
    started = time.perf_counter()
    services.initialize(
        root=[keys[0]], root_threshold=1, targets=keys[1], online=online, bins=args.bins
    )
    print(f"bins: {args.bins}; repository created in {time.perf_counter() - started:.2f} s")
    succinct = services._current_bins()
    have = 0
    print(f"{'targets':>9} {'per bin':>8} {'median ms':>10} {'p90 ms':>8} {'max ms':>8}")
    for size in (int(text) for text in args.sizes.split(",")):
        grow_to(size, have, succinct)
        have = size
        measure(5, size + 5_000_000, succinct)  # warm-up: caches, the database's pages
        timings = sorted(measure(args.rounds, size, succinct))
        p90 = timings[int(len(timings) * 0.9) - 1]
        print(
            f"{size:>9} {size / args.bins:>8.1f} {statistics.median(timings):>10.1f} "
            f"{p90:>8.1f} {timings[-1]:>8.1f}"
        )


if __name__ == "__main__":
    main()
