"""The documented nginx front (deploy/nginx/bastion.conf, rendered as is) before two nodes.

TLS terminates at nginx (a throw-away certificate for localhost); both nodes share one data
directory and BASTION_BASE_URL, and trust X-Forwarded-Proto only because nginx overwrites it.
twine publishes and pip installs through the front; plain http redirects to the base URL; a
foreign Host is refused by the nodes; a body over the limit is refused by nginx itself. Simple
pages come out of nginx's cache, revalidated with a node on every hit (its access log says
which), with the nodes' own headers, and are never stale after an upload returns.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e._support import (
    SERVER_STOP_GRACE,
    BuiltDist,
    LiveServer,
    clean_environ,
    client_environ,
    describe,
    run,
    serve,
    wheel_form,
)
from tests.processes import free_ports, stop_process_group
from tests.unit.core.builders import make_wheel

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "deploy" / "nginx" / "bastion.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def _require_nginx() -> None:
    if Path(NGINX).exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail("nginx is not installed (scripts/ensure-services.sh installs it as root)")
    pytest.skip("nginx is not installed; run `make test` as root to install it")


def _certificate(where: Path) -> tuple[Path, Path]:
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def _render(values: dict[str, str]) -> str:
    """The sample with its placeholders filled in (comment lines, which name them, left as is)."""
    lines = []
    for line in SAMPLE.read_text().splitlines():
        if not line.lstrip().startswith("#"):
            for name, value in values.items():
                line = line.replace("{{" + name + "}}", value)
            assert "{{" not in line, f"a placeholder was left unrendered: {line}"
        lines.append(line)
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    _require_nginx()
    work = tmp_path_factory.mktemp("front")
    https_port, http_port, node_a, node_b = free_ports(4)
    base_url = f"https://localhost:{https_port}"
    cert, key = _certificate(work)
    env = clean_environ()
    env.update(
        {
            "BASTION_DATA_DIR": str(work / "data"),
            "BASTION_BASE_URL": base_url,
            "BASTION_PROXY_SSL_HEADER": "X-Forwarded-Proto",
            "BASTION_SECRET_KEY": "front-test-secret-" + "f" * 40,
        }
    )
    with contextlib.ExitStack() as cleanup:
        for number, port in enumerate((node_a, node_b)):
            node = LiveServer(
                backend="sqlite",
                base_url=f"http://127.0.0.1:{port}",
                data_dir=work / "data",
                env=dict(env),
                stderr_path=work / f"node{number}.log",
            )
            process = serve(node, workers=1, timeout=60, extra=("--no-migrate",) if number else ())
            cleanup.callback(stop_process_group, process, grace=SERVER_STOP_GRACE)
            cleanup.callback(node.close)
        servers = "\n    ".join(
            f"server 127.0.0.1:{port} max_fails=2 fail_timeout=10s;" for port in (node_a, node_b)
        )
        site = _render(
            {
                "server_name": "localhost",
                "https_listen": f"127.0.0.1:{https_port}",
                "http_listen": f"127.0.0.1:{http_port}",
                "certificate": str(cert),
                "certificate_key": str(key),
                "upstream_servers": servers,
                "base_url": base_url,
                "cache_dir": str(work / "page-cache"),
            }
        )
        (work / "site.conf").write_text(site)
        temp = work / "nginx-temp"
        temp.mkdir()
        (work / "nginx.conf").write_text(
            f"daemon off;\nworker_processes 1;\npid {work}/nginx.pid;\n"
            f"error_log {work}/nginx-error.log warn;\nuser root;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            "  log_format cache '$upstream_cache_status $status $request_method $request_uri';\n"
            f"  access_log {work}/access.log cache;\n  client_body_temp_path {temp}/body;\n"
            f"  proxy_temp_path {temp}/proxy;\n  fastcgi_temp_path {temp}/fastcgi;\n"
            f"  uwsgi_temp_path {temp}/uwsgi;\n  scgi_temp_path {temp}/scgi;\n"
            f"  include {work}/site.conf;\n}}\n"
        )
        nginx = subprocess.Popen(
            [NGINX, "-c", str(work / "nginx.conf"), "-p", str(work)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        cleanup.callback(stop_process_group, nginx, grace=5)
        live = LiveServer(
            backend="sqlite", base_url=base_url, data_dir=work / "data", env=dict(env),
            stderr_path=work / "node0.log",
        )
        live.http.verify = str(cert)
        deadline = time.monotonic() + 20
        while True:
            try:
                if live.http.get(base_url + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert nginx.poll() is None, (work / "nginx-error.log").read_text()
            assert time.monotonic() < deadline, "nginx did not answer"
            time.sleep(0.2)
        live.cli_ok("user", "create", "frank", "--email", "frank@example.com")
        live.token = live.cli_ok("token", "create", "frank", "--name", "front")
        live.cert = cert  # type: ignore[attr-defined]
        live.http_port = http_port  # type: ignore[attr-defined]
        live.access_log = work / "access.log"  # type: ignore[attr-defined]
        live.nodes = (node_a, node_b)  # type: ignore[attr-defined]
        yield live
        live.close()


def test_publish_and_install_through_the_front(
    front: LiveServer, sample_dists: dict[str, BuiltDist], tmp_path: Path
) -> None:
    dist = sample_dists["front"]
    cert = str(front.cert)  # type: ignore[attr-defined]
    env = client_environ()
    # requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE (set on this machine) win over twine's
    # --cert, and pip reads PIP_CERT: point them all at the front's certificate.
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "PIP_CERT"):
        env[name] = cert
    published = run(
        [os.sys.executable, "-m", "twine", "upload", "--repository-url", front.upload_url,
         "-u", "__token__", "-p", front.token, "--cert", cert, "--non-interactive",
         "--disable-progress-bar", *map(str, dist.files)],
        env=env, timeout=180,
    )
    assert published.returncode == 0, describe(published)
    files = front.http.get(front.simple_url + dist.normalized + "/", timeout=30)
    assert files.status_code == 200
    # every link is relative to, or on, the base URL (never a node's own address)
    assert "127.0.0.1" not in files.text
    target = tmp_path / "venv"
    run([str(Path(os.sys.executable)), "-m", "venv", str(target)], env=client_environ())
    installed = run(
        [str(target / "bin" / "python"), "-m", "pip", "install", "--cert", cert,
         "--index-url", front.simple_url, dist.name],
        env=env, timeout=180,
    )
    assert installed.returncode == 0, describe(installed)


def test_plain_http_redirects_to_the_base_url(front: LiveServer) -> None:
    port = front.http_port  # type: ignore[attr-defined]
    response = requests.get(
        f"http://localhost:{port}/simple/?x=1", allow_redirects=False, timeout=10
    )
    assert response.status_code == 301
    assert response.headers["Location"] == front.base_url + "/simple/?x=1"


def test_the_nodes_see_https_and_send_hsts(front: LiveServer) -> None:
    response = front.http.get(front.base_url + "/account/login/", timeout=30)
    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Secure" in response.headers.get("Set-Cookie", "Secure")


def test_a_forged_forwarded_proto_or_host_does_not_reach_the_nodes(front: LiveServer) -> None:
    forged = front.http.get(
        front.base_url + "/healthz",
        headers={"X-Forwarded-Proto": "gopher", "X-Forwarded-Host": "evil.example"},
        timeout=30,
    )
    assert forged.status_code == 200
    foreign = front.http.get(
        front.base_url + "/simple/", headers={"Host": "evil.example"}, timeout=30
    )
    assert foreign.status_code == 400 and "evil" not in foreign.text


def test_a_body_over_the_limit_is_refused_by_nginx(front: LiveServer) -> None:
    too_big = front.http.post(
        front.upload_url,
        data=b"\0" * (121 * 1024 * 1024),
        headers={"Content-Type": "application/octet-stream"},
        timeout=60,
    )
    assert too_big.status_code == 413


# What a node says about a page and the front must say alike (X-Accel-Expires is for nginx only).
PAGE_HEADERS = (
    "Content-Type", "Content-Length", "ETag", "Vary", "Cache-Control", "X-PyPI-Last-Serial",
    "Access-Control-Allow-Origin", "Access-Control-Expose-Headers", "X-Content-Type-Options",
    "X-Frame-Options", "Content-Security-Policy", "Strict-Transport-Security",
)
ACCEPTS = (
    "text/html", "application/vnd.pypi.simple.v1+json", "application/vnd.pypi.simple.v1+html"
)


def _from_node(front: LiveServer, port: int, path: str, accept: str) -> requests.Response:
    """The node's own answer, asked as nginx asks it (Host of the base URL, https forwarded)."""
    return requests.get(
        f"http://127.0.0.1:{port}{path}",
        headers={"Host": front.base_url.split("://", 1)[1], "X-Forwarded-Proto": "https",
                 "Accept": accept},
        timeout=30,
    )


def _cache_statuses(front: LiveServer, path: str) -> list[str]:
    log = front.access_log.read_text()  # type: ignore[attr-defined]
    return [line.split()[0] for line in log.splitlines() if line.split()[3] == path]


def _upload(front: LiveServer, tmp_path: Path, name: str, version: str) -> None:
    wheel = make_wheel(tmp_path, name=name, version=version)
    fields, files = wheel_form(wheel)
    response = front.http.post(
        front.upload_url, data=fields, files=files, auth=("__token__", front.token), timeout=60
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", ["/simple/front-cached/", "/simple/"])
def test_simple_pages_come_from_the_cache_with_the_nodes_headers(
    front: LiveServer, tmp_path: Path, path: str
) -> None:
    _upload(front, tmp_path, "front-cached", "1.0")
    for accept in ACCEPTS:
        first = front.http.get(front.base_url + path, headers={"Accept": accept}, timeout=30)
        again = front.http.get(front.base_url + path, headers={"Accept": accept}, timeout=30)
        assert first.status_code == again.status_code == 200
        assert again.content == first.content
        for port in front.nodes:  # type: ignore[attr-defined]
            node = _from_node(front, port, path, accept)
            assert node.content == again.content, (accept, port)
            assert node.headers["X-Accel-Expires"] == "@1"
            for name in PAGE_HEADERS:
                assert again.headers.get(name) == node.headers.get(name), (accept, name)
        assert "X-Accel-Expires" not in again.headers
        # A client's own revalidation: nginx answers 304 from its copy, same ETag.
        not_modified = front.http.get(
            front.base_url + path,
            headers={"Accept": accept, "If-None-Match": again.headers["ETag"]},
            timeout=30,
        )
        assert not_modified.status_code == 304 and not_modified.content == b""
        assert not_modified.headers["ETag"] == again.headers["ETag"]
    statuses = _cache_statuses(front, path)
    # Every hit after the first of each Accept asked a node and got a 304: REVALIDATED.
    assert statuses.count("REVALIDATED") >= 2 * len(ACCEPTS), statuses
    assert "HIT" not in statuses  # never served without asking a node


def test_a_page_is_never_stale_once_an_upload_returns(front: LiveServer, tmp_path: Path) -> None:
    json_accept = {"Accept": "application/vnd.pypi.simple.v1+json"}
    for number in range(1, 9):
        version = f"1.{number}"
        # Alternate the nodes taking the upload; the front's cache is warm with the old page.
        front.http.get(front.base_url + "/simple/front-fresh/", headers=json_accept, timeout=30)
        _upload(front, tmp_path, "front-fresh", version)
        page = front.http.get(
            front.base_url + "/simple/front-fresh/", headers=json_accept, timeout=30
        )
        assert page.status_code == 200
        assert version in page.json()["versions"], (version, page.json()["versions"])
        html = front.http.get(front.base_url + "/simple/front-fresh/", timeout=30)
        assert f"front_fresh-{version}-py3-none-any.whl" in html.text
        root = front.http.get(front.base_url + "/simple/", timeout=30)
        assert "front-fresh" in root.text
