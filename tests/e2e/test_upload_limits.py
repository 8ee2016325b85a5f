"""Upload API limits across two ``bastion serve`` processes sharing one database (issue 13).

Concurrent first uploads of new projects at the limit's boundary, spread over both nodes:
exactly the limit is admitted, the rest get 429 with Retry-After; uploads of new versions to an
existing project still succeed; a failed-credential flood seen by one node blocks the address
on the other.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.e2e._support import SERVER_STOP_GRACE, LiveServer, clean_environ, serve, wheel_form
from tests.pg import temporary_database
from tests.processes import free_ports, stop_process_group
from tests.unit.core.builders import make_wheel

LIMIT = 5


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def nodes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, LiveServer]]:
    backend: str = request.param
    with contextlib.ExitStack() as cleanup:
        data_dir = tmp_path_factory.mktemp(f"bastion-limits-{backend}")
        env = clean_environ()
        env["BASTION_DATA_DIR"] = str(data_dir)
        env["BASTION_SECRET_KEY"] = "e2e-" + secrets.token_urlsafe(40)
        env["BASTION_PROJECT_CREATE_LIMIT"] = f"{LIMIT}/hour"
        env["BASTION_FAILED_AUTH_LIMIT"] = "4/hour"
        if backend == "postgresql":
            env["BASTION_DATABASE_URL"] = cleanup.enter_context(
                temporary_database("bastion_e2e_limits")
            )
        ports = free_ports(2)
        env["BASTION_BASE_URL"] = f"http://127.0.0.1:{ports[0]}"
        servers = []
        for number, port in enumerate(ports):
            live = LiveServer(
                backend=backend,
                base_url=f"http://127.0.0.1:{port}",
                data_dir=data_dir,
                env=dict(env),
                stderr_path=Path(data_dir) / f"server{number}.stderr.log",
            )
            extra = ("--no-migrate",) if number else ()
            process = serve(live, workers=2, timeout=60, extra=extra)
            cleanup.callback(stop_process_group, process, grace=SERVER_STOP_GRACE)
            cleanup.callback(live.close)
            servers.append(live)
        servers[0].cli_ok("user", "create", "lena", "--email", "lena@example.com")
        servers[0].token = servers[1].token = servers[0].cli_ok("token", "create", "lena")
        yield servers[0], servers[1]


def _upload(server: LiveServer, path: Path, token: str) -> requests.Response:
    fields, files = wheel_form(path)
    auth = "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()
    with requests.Session() as session:
        session.trust_env = False
        return session.post(
            server.upload_url,
            data=fields,
            files=files,
            headers={"Authorization": auth},
            timeout=120,
        )


def _wheel(tmp_path: Path, name: str, version: str = "1.0") -> Path:
    folder = tmp_path / f"{name}-{version}"
    folder.mkdir()
    return make_wheel(folder, name=name, version=version)


def test_concurrent_creations_at_the_boundary_admit_exactly_the_limit(
    nodes: tuple[LiveServer, LiveServer], tmp_path: Path
) -> None:
    first, second = nodes
    wheels = [_wheel(tmp_path, f"burst{number}") for number in range(3 * LIMIT)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(
            pool.map(
                lambda item: _upload(nodes[item[0] % 2], item[1], first.token),
                enumerate(wheels),
            )
        )
    statuses = [answer.status_code for answer in answers]
    assert statuses.count(200) == LIMIT, statuses
    assert statuses.count(429) == 2 * LIMIT, statuses
    refused = [answer for answer in answers if answer.status_code == 429]
    assert all(int(answer.headers["Retry-After"]) > 0 for answer in refused)
    assert all(answer.reason.startswith("Too many new projects") for answer in refused)
    created = [path for path, status in zip(wheels, statuses, strict=True) if status == 200]
    # a new version of an existing project still uploads, through either node
    name = created[0].name.split("-")[0]
    for node, version in ((first, "2.0"), (second, "3.0")):
        assert _upload(node, _wheel(tmp_path, name, version), first.token).status_code == 200
    # and one more new project is still refused, on both nodes
    for number, node in enumerate(nodes):
        late = _upload(node, _wheel(tmp_path, f"late{number}"), first.token)
        assert late.status_code == 429


def test_failed_credentials_on_one_node_block_the_address_on_the_other(
    nodes: tuple[LiveServer, LiveServer], tmp_path: Path
) -> None:
    first, second = nodes
    path = _wheel(tmp_path, "flood")
    forged = first.token[:-5] + ("A" if first.token[-5] != "A" else "B") + first.token[-4:]
    statuses = [_upload(nodes[n % 2], path, forged).status_code for n in range(6)]
    assert statuses[:4] == [403] * 4 and statuses[4:] == [429, 429], statuses
    blocked = _upload(second, path, first.token)  # even the real token, from this address
    assert blocked.status_code == 429 and blocked.headers["Retry-After"]
