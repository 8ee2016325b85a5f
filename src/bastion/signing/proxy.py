"""``bastion tuf proxy``: a local index for pip and uv that serves only what TUF verified.

The trust decision is python-tuf's ``ngclient`` (TUF spec 5: root, timestamp, snapshot, targets,
the hash bin): the proxy fetches a simple page or a file from the index, checks its length and
hashes against the signed target, and serves it, or answers ``409`` with a one-line reason on
the status line (fail closed; not 502, which pip retries and then reports without the reason,
nor 403, which uv skips on an index page).
A refused project page is the exception for pip, which hides any error answer to an index page
(see ``_Handler._refuse``). Every refusal is also written to the proxy's stderr.
Core metadata files (PEP 658) are not TUF targets: they are served only when their sha256
matches the one a verified simple page announced.

Standard library HTTP server, no Django: it runs on a user's machine with only the root of trust.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import requests
from tuf.api.exceptions import DownloadHTTPError, RepositoryError
from tuf.api.metadata import TargetFile
from tuf.ngclient import Updater

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "text/html; charset=utf-8"
_PROJECT = re.compile(r"\A/simple/([a-z0-9]+(?:-[a-z0-9]+)*)/\Z")
_FILE = re.compile(r"\A/files/([0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{60}/[^/]+)\Z")
_HTML_METADATA = re.compile(
    r'href="\.\./\.\./files/([^"#]+)(?:#[^"]*)?"[^>]*data-(?:dist-info-)?(?:core-)?metadata="sha256=([0-9a-f]{64})"'
)
# Not 502: pip and uv retry 5xx answers and then report only "too many 502 error responses";
# a 4xx is shown at once with its reason phrase, which carries the proxy's one-line reason.
# Not 401, 403 or 404 either: uv takes those from an index page for "not here" and goes on to
# the next index (--extra-index-url) instead of failing; other 4xx stop it, reason shown.
REFUSED = 409
REFRESH_EVERY = 2.0  # seconds a verified view of the repository is reused


class VerificationFailed(Exception):
    """What could not be verified, in one line."""


class Verifier:
    """ngclient against ``<index>/tuf/``, its trusted state kept in ``cache_dir`` (rollback
    protection across requests and restarts)."""

    def __init__(self, *, root: Path, index: str, cache_dir: Path) -> None:
        self.index = index.rstrip("/")
        self.metadata_dir = cache_dir / "metadata"
        self.targets_dir = cache_dir / "targets"
        self.metadata_dir.mkdir(parents=True, exist_ok=True)
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.root = root.read_bytes()
        except OSError as exc:
            raise VerificationFailed(
                f"cannot read the root of trust {root}: {exc.strerror}"
            ) from None
        self._lock = threading.Lock()
        self._updater: Updater | None = None
        self._refreshed = 0.0
        self.metadata_hashes: dict[str, str] = {}  # file path -> sha256 of its .metadata

    def _current(self) -> Updater:
        if self._updater is None or time.monotonic() - self._refreshed > REFRESH_EVERY:
            updater = Updater(
                metadata_dir=str(self.metadata_dir),
                metadata_base_url=f"{self.index}/tuf/",
                target_dir=str(self.targets_dir),
                target_base_url=f"{self.index}/files/",
                bootstrap=self.root,
            )
            updater.refresh()
            self._updater, self._refreshed = updater, time.monotonic()
        return self._updater

    def target(self, path: str) -> TargetFile:
        with self._lock:
            try:
                info = self._current().get_targetinfo(path)
            except (RepositoryError, DownloadHTTPError, OSError) as exc:
                self._updater = None
                raise VerificationFailed(_reason(exc)) from None
        if info is None:
            raise VerificationFailed(f"{path} is not signed by the index")
        return info

    def check(self, path: str, data: bytes) -> None:
        try:
            self.target(path).verify_length_and_hashes(data)
        except RepositoryError as exc:
            raise VerificationFailed(f"{path}: {_reason(exc)}") from None

    def download(self, path: str) -> Path:
        info = self.target(path)
        with self._lock:
            try:
                assert self._updater is not None
                cached = self._updater.find_cached_target(info)
                return Path(cached or self._updater.download_target(info))
            except (RepositoryError, DownloadHTTPError, OSError) as exc:
                raise VerificationFailed(f"{path}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


def _remember_metadata_hashes(verifier: Verifier, body: bytes, json_page: bool) -> None:
    if json_page:
        for entry in json.loads(body).get("files", []):
            digest = entry.get("core-metadata") or entry.get("dist-info-metadata") or {}
            if isinstance(digest, dict) and "sha256" in digest:
                path = entry["url"].split("#")[0].split("/files/", 1)[-1]
                verifier.metadata_hashes[path] = digest["sha256"]
        return
    for path, digest in _HTML_METADATA.findall(body.decode("utf-8", "replace")):
        verifier.metadata_hashes[path] = digest


class _Handler(BaseHTTPRequestHandler):
    verifier: Verifier
    server_version = "bastion-tuf-proxy"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        sys.stderr.write("bastion tuf proxy: " + (format % args) + "\n")

    def _send(self, status: int, body: bytes, content_type: str, reason: str | None = None) -> None:
        self.send_response(status, reason)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _refuse(self, status: int, message: str) -> None:
        # One line of ASCII: it goes on the status line and in a header (latin-1 only).
        line = " ".join(message.split())[:400].encode("ascii", "backslashreplace").decode()
        body = (line + "\n").encode()
        if status != REFUSED:
            self._send(status, body, "text/plain; charset=utf-8", reason=line)
            return
        # Also where the person running the proxy sees it, whatever the installer shows.
        self.log_message("refused %s: %s", urlsplit(self.path).path, line)
        user_agent = self.headers.get("User-Agent", "")
        if user_agent.startswith("pip/") and _PROJECT.match(urlsplit(self.path).path):
            # pip logs an index page answered 4xx (or 5xx, after retries) only with -v, and then
            # says "no matching distribution". The one warning it prints with the server's words
            # names an unsupported Content-Type: so pip is told the reason there, and still
            # finds no version here (fails closed).
            quoted = line.replace("\\", "/").replace('"', "'")
            self._send(200, body, f'text/plain; charset=utf-8; reason="{quoted}"')
            return
        self._send(status, body, "text/plain; charset=utf-8", reason=line)

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        try:
            if path in ("/simple/", "/"):
                self._refuse(404, "this proxy serves project pages only: /simple/<project>/")
            elif (match := _PROJECT.match(path)) is not None:
                self._project_page(match.group(1))
            elif path.startswith("/simple/"):
                name = re.sub(r"[-_.]+", "-", path.split("/")[2]).lower()
                self.send_response(301)
                self.send_header("Location", f"/simple/{name}/")
                self.end_headers()
            elif path.endswith(".metadata") and _FILE.match(path.removesuffix(".metadata")):
                self._core_metadata(path.removeprefix("/files/").removesuffix(".metadata"))
            elif (match := _FILE.match(path)) is not None:
                self._file(match.group(1))
            else:
                self._refuse(404, "not found")
        except VerificationFailed as exc:
            self._refuse(REFUSED, f"TUF verification failed: {exc}")

    def _fetch(self, url: str, accept: str) -> bytes:
        try:
            response = requests.get(url, headers={"Accept": accept}, timeout=60)
        except requests.RequestException as exc:
            raise VerificationFailed(f"cannot reach the index: {_reason(exc)}") from None
        if response.status_code == 404:
            raise _NotFound()
        if response.status_code != 200:
            raise VerificationFailed(f"the index answered {response.status_code} for {url}")
        return response.content

    def _project_page(self, project: str) -> None:
        accept = self.headers.get("Accept", "")
        json_page = "application/vnd.pypi.simple.v1+json" in accept
        content_type = JSON_TYPE if json_page else HTML_TYPE
        try:
            body = self._fetch(f"{self.verifier.index}/simple/{project}/", content_type)
        except _NotFound:
            self._refuse(404, f"no project named {project!r} on the index")
            return
        self.verifier.check(f"simple/{project}/index.{'json' if json_page else 'html'}", body)
        _remember_metadata_hashes(self.verifier, body, json_page)
        self._send(200, body, content_type)

    def _core_metadata(self, path: str) -> None:
        expected = self.verifier.metadata_hashes.get(path)
        if expected is None:
            raise VerificationFailed(f"{path}.metadata: no verified page announced it")
        try:
            body = self._fetch(f"{self.verifier.index}/files/{path}.metadata", "*/*")
        except _NotFound:
            self._refuse(404, "not found")
            return
        if hashlib.sha256(body).hexdigest() != expected:
            raise VerificationFailed(f"{path}.metadata does not match the signed page's sha256")
        self._send(200, body, "application/octet-stream")

    def _file(self, path: str) -> None:
        verified = self.verifier.download(path)
        size = verified.stat().st_size
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if self.command != "HEAD":
            with verified.open("rb") as handle:
                shutil.copyfileobj(handle, self.wfile)


class _NotFound(Exception):
    pass


def make_server(
    *, root: Path, index: str, host: str, port: int, cache_dir: Path
) -> ThreadingHTTPServer:
    verifier = Verifier(root=root, index=index, cache_dir=cache_dir)
    handler = type("Handler", (_Handler,), {"verifier": verifier})
    return ThreadingHTTPServer((host, port), handler)


def serve(*, root: Path, index: str, host: str, port: int, cache_dir: Path | None) -> None:
    where = cache_dir or Path(tempfile.mkdtemp(prefix="bastion-tuf-proxy-"))
    server = make_server(root=root, index=index, host=host, port=port, cache_dir=where)
    print(
        f"bastion tuf proxy: verifying {index} with root {root}; point pip or uv at "
        f"http://{host}:{server.server_address[1]}/simple/",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()


def verify_file(path: Path, *, root: Path, index: str, target: str | None) -> str:
    """Verify a downloaded distribution: its target path is its content address (blake2b)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise VerificationFailed(f"cannot read {path}: {exc.strerror}") from None
    if target is None:
        digest = hashlib.blake2b(data, digest_size=32).hexdigest()
        target = f"{digest[:2]}/{digest[2:4]}/{digest[4:]}/{path.name}"
    with tempfile.TemporaryDirectory(prefix="bastion-tuf-verify-") as cache:
        verifier = Verifier(root=root, index=index, cache_dir=Path(cache))
        verifier.check(target, data)
    return f"{path.name}: verified (target {target}, signed by {index.rstrip('/')}/tuf/)"
