"""The documented nginx front (deploy/nginx/bastion.conf, rendered as is) before two nodes.

TLS terminates at nginx (a throw-away certificate for localhost); both nodes share one data
directory and BASTION_BASE_URL, and trust X-Forwarded-Proto only because nginx overwrites it.
twine publishes and pip installs through the front; plain http redirects to the base URL; a
foreign Host is refused by the nodes; a body over the limit is refused by nginx itself. Simple
pages are served by nginx itself from the tree the nodes keep (BASTION_FRONT_PAGES_DIR), with
the nodes' own headers, ETags and 304s, even with both nodes frozen; they are never stale after
an upload returns; any other Accept still reaches a node (its access log says which).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
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
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
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
            "BASTION_FRONT_PAGES_DIR": str(work / "pages"),
        }
    )
    processes: list[subprocess.Popen[bytes]] = []
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
            processes.append(process)
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
                "pages_dir": str(work / "pages"),
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
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        cleanup.callback(stop_process_group, nginx, grace=5)
        live = LiveServer(
            backend="sqlite",
            base_url=base_url,
            data_dir=work / "data",
            env=dict(env),
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
        live.node_processes = processes  # type: ignore[attr-defined]
        live.pages = work / "pages"  # type: ignore[attr-defined]
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
        [
            os.sys.executable,
            "-m",
            "twine",
            "upload",
            "--repository-url",
            front.upload_url,
            "-u",
            "__token__",
            "-p",
            front.token,
            "--cert",
            cert,
            "--non-interactive",
            "--disable-progress-bar",
            *map(str, dist.files),
        ],
        env=env,
        timeout=180,
    )
    assert published.returncode == 0, describe(published)
    files = front.http.get(front.simple_url + dist.normalized + "/", timeout=30)
    assert files.status_code == 200
    # every link is relative to, or on, the base URL (never a node's own address)
    assert "127.0.0.1" not in files.text
    target = tmp_path / "venv"
    run([str(Path(os.sys.executable)), "-m", "venv", str(target)], env=client_environ())
    installed = run(
        [
            str(target / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--cert",
            cert,
            "--index-url",
            front.simple_url,
            dist.name,
        ],
        env=env,
        timeout=180,
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
    "Content-Type",
    "Content-Length",
    "ETag",
    "Vary",
    "Cache-Control",
    "X-PyPI-Last-Serial",
    "Access-Control-Allow-Origin",
    "Access-Control-Expose-Headers",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "Content-Security-Policy",
    "Strict-Transport-Security",
)
ACCEPTS = (
    "text/html",
    "application/vnd.pypi.simple.v1+json",
    "application/vnd.pypi.simple.v1+html",
)


def _from_node(front: LiveServer, port: int, path: str, accept: str) -> requests.Response:
    """The node's own answer, asked as nginx asks it (Host of the base URL, https forwarded)."""
    return requests.get(
        f"http://127.0.0.1:{port}{path}",
        headers={
            "Host": front.base_url.split("://", 1)[1],
            "X-Forwarded-Proto": "https",
            "Accept": accept,
        },
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


@contextlib.contextmanager
def _frozen(front: LiveServer) -> Iterator[None]:
    """Both nodes stopped (SIGSTOP): whatever answers now is nginx alone."""
    processes = front.node_processes  # type: ignore[attr-defined]
    for process in processes:
        os.killpg(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGCONT)


PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)


@pytest.mark.parametrize("path", ["/simple/front-cached/", "/simple/"])
def test_simple_pages_are_served_by_nginx_with_the_nodes_headers(
    front: LiveServer, tmp_path: Path, path: str
) -> None:
    _upload(front, tmp_path, "front-cached", "1.0")
    accepts = (*ACCEPTS, PIP_ACCEPT, None)
    first = {}
    for accept in accepts:  # the first request of each reaches a node, which publishes the page
        headers = {"Accept": accept} if accept else {}
        first[accept] = front.http.get(front.base_url + path, headers=headers, timeout=30)
        assert first[accept].status_code == 200
    with _frozen(front):
        for accept in accepts:
            headers = {"Accept": accept} if accept else {}
            again = front.http.get(front.base_url + path, headers=headers, timeout=10)
            assert again.status_code == 200, accept
            assert again.content == first[accept].content, accept
            for name in PAGE_HEADERS:
                assert again.headers.get(name) == first[accept].headers.get(name), (accept, name)
            assert "Last-Modified" not in again.headers
            assert "X-Accel-Expires" not in again.headers
            # A client's own revalidation: a 304 with the same ETag, and only for that ETag.
            etag = again.headers["ETag"]
            for if_none_match, status in (
                (etag, 304), (f'"x", {etag}', 304), ("*", 304), ('"x"', 200),
                (etag.replace('"', ""), 200),
            ):  # fmt: skip
                answer = front.http.get(
                    front.base_url + path,
                    headers={**headers, "If-None-Match": if_none_match},
                    timeout=10,
                )
                assert answer.status_code == status, (accept, if_none_match)
                assert answer.headers["ETag"] == etag
                assert answer.headers["X-PyPI-Last-Serial"] == again.headers["X-PyPI-Last-Serial"]
            head = front.http.head(front.base_url + path, headers=headers, timeout=10)
            assert head.status_code == 200 and head.headers["ETag"] == etag
    # The nodes' own answers, asked directly, are the same.
    for accept in ACCEPTS:
        for port in front.nodes:  # type: ignore[attr-defined]
            node = _from_node(front, port, path, accept)
            assert node.content == first[accept].content, (accept, port)
            for name in PAGE_HEADERS:
                assert first[accept].headers.get(name) == node.headers.get(name), (accept, name)


def test_other_requests_for_pages_reach_a_node(front: LiveServer, tmp_path: Path) -> None:
    _upload(front, tmp_path, "front-other", "1.0")
    path = "/simple/front-other/"
    front.http.get(front.base_url + path, timeout=30)  # published
    assert (front.pages / "simple" / "front-other").is_symlink()  # type: ignore[attr-defined]
    unmapped = front.http.get(
        front.base_url + path,
        headers={"Accept": "application/vnd.pypi.simple.latest+json"},
        timeout=30,
    )
    assert unmapped.status_code == 200  # negotiated by a node
    assert unmapped.headers["Content-Type"] == "application/vnd.pypi.simple.v1+json"
    refused = front.http.get(front.base_url + path, headers={"Accept": "image/png"}, timeout=30)
    assert refused.status_code == 406
    query = front.http.get(
        front.base_url + path + "?format=application/vnd.pypi.simple.v1+json", timeout=30
    )
    assert query.headers["Content-Type"] == "application/vnd.pypi.simple.v1+json"
    assert front.http.get(front.base_url + "/_bastion_page", timeout=30).status_code == 404
    assert (
        front.http.get(
            front.base_url + "/simple/Front_Other/", timeout=30, allow_redirects=False
        ).status_code
        == 301
    )
    assert (
        front.http.get(front.base_url + "/simple/no-such-project/", timeout=30).status_code == 404
    )
    statuses = _cache_statuses(front, path + "?format=application/vnd.pypi.simple.v1+json")
    assert statuses and statuses[0] != "-"  # went through a node (nginx's page cache)


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


def test_a_link_that_is_not_a_page_goes_to_a_node(front: LiveServer, tmp_path: Path) -> None:
    """nginx takes the serial and the ETags from the name of the link's target; a target of any
    other form is never served, whatever it holds."""
    _upload(front, tmp_path, "front-odd", "1.0")
    path = "/simple/front-odd/"
    real = front.http.get(front.base_url + path, timeout=30)  # published
    pages = front.pages  # type: ignore[attr-defined]
    for target in ("1.notanetag.x", "junk", "7." + "a" * 40):
        odd = pages / "pages" / "front-odd" / target
        odd.mkdir(parents=True)
        for name in ("index.html", "index.json", "index.v1html"):
            (odd / name).write_text("WRONG")
        link = pages / "simple" / "front-odd"
        link.unlink()
        link.symlink_to(Path("..") / "pages" / "front-odd" / target)
        answer = front.http.get(front.base_url + path, timeout=30)
        assert answer.status_code == 200, target
        assert answer.content == real.content, target
        assert answer.headers["ETag"] == real.headers["ETag"], target
