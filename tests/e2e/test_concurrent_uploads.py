"""Several uploads at once through both server workers: the first files of a new project."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e._support import BuiltDist, LiveServer, upload_form

pytestmark = pytest.mark.e2e


def test_concurrent_first_uploads_of_a_new_project(
    server: LiveServer, sample_dists: dict[str, BuiltDist]
) -> None:
    dist = sample_dists["concurrent"]
    assert server.simple_json(dist.name) is None
    blobs_before = server.stored_blobs()
    authorization = "Basic " + base64.b64encode(f"__token__:{server.token}".encode()).decode()

    def upload(which: str) -> tuple[int, str]:
        data, files = upload_form(dist, which=which)
        # One session per thread: requests.Session is not thread-safe.
        with requests.Session() as session:
            session.trust_env = False
            response = session.post(
                server.upload_url,
                data=data,
                files=files,
                headers={"Authorization": authorization},
                timeout=120,
            )
        return response.status_code, f"{which}: {response.status_code} {response.reason}"

    # The wheel and the sdist, four times each: one of each is stored, the rest are identical
    # re-uploads (200, no-op), whatever order the two workers serve them in.
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(upload, ["wheel", "sdist"] * 4))
    assert [status for status, _ in answers] == [200] * 8, [line for _, line in answers]

    files = server.simple_files(dist.name)
    assert set(files) == {dist.wheel.name, dist.sdist.name}
    body = server.get(f"/pypi/{dist.normalized}/json").json()
    assert set(body["releases"]) == {"1.0"}
    assert len(body["releases"]["1.0"]) == 2
    new_blobs = server.stored_blobs() - blobs_before
    assert new_blobs == {dist.wheel.name, dist.sdist.name, dist.wheel.name + ".metadata"}, new_blobs
    assert server.spooled() == []
