#!/usr/bin/env python3
"""Benchmark bastion's project page, ``GET /simple/<project>/``, for one large project.

What it does, all on 127.0.0.1 and with every loop bounded in time:

1. creates a temporary data directory, applies the migrations, creates a user and an
   upload token with the ``bastion`` command;
2. writes ``--files`` small, valid distributions of one project (per version: one sdist and
   four wheels tagged manylinux_2_17_x86_64, macosx_11_0_arm64, win_amd64 and py3-none-any);
3. starts ``bastion serve`` on a free loopback port and uploads every file through
   ``POST /legacy/`` (multipart, as twine sends it) from a few threads;
4. loads the project page for ``--duration`` seconds at each ``--concurrency``, as HTML, as
   PEP 691 JSON, and as a conditional request answered with 304 (``If-None-Match`` with the
   page's ETag), with ``wrk`` if it is on PATH, otherwise with a bounded Python load loop;
5. prints a Markdown table and appends one JSON line per measurement to
   ``bench/results/simple_page.jsonl``; stops the server (SIGTERM, then SIGKILL) in any case.

Usage:
    .venv/bin/python bench/simple_page.py [--files 1000] [--duration 10] [--workers 2]
                                          [--concurrency 1,32] [--loader auto|wrk|python]

The same upload code feeds the shared harness's adapter (``bench/adapters/bastion.sh``):
    simple_page.py --upload-only DIR --index-url http://127.0.0.1:PORT/
with the token in the environment variable ``BENCH_UPLOAD_TOKEN``.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import gzip
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse
import zipfile
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
HOST = "127.0.0.1"
PEP691 = "application/vnd.pypi.simple.v1+json"
ACCEPTS = {"html": None, "json": PEP691}
PROJECT = "acme-telemetry-client"
WHEEL_TAGS = (
    "cp312-cp312-manylinux_2_17_x86_64",
    "cp312-cp312-macosx_11_0_arm64",
    "cp312-cp312-win_amd64",
    "py3-none-any",
)
ZIP_DATE = (2024, 1, 1, 0, 0, 0)
TAR_MTIME = 1704067200


def log(*parts: object) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


def loopback_only(url: str) -> str:
    host = urllib.parse.urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing to target non-loopback URL {url}")
    return url


# ------------------------------------------------------------------ distributions


def dist_name(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def _metadata(name: str, version: str) -> bytes:
    return (
        "Metadata-Version: 2.1\n"
        f"Name: {name}\n"
        f"Version: {version}\n"
        f"Summary: Benchmark distribution {version} of {name}\n"
        "Author-email: Bench <bench@example.invalid>\n"
        "License: MIT\n"
        "Classifier: Programming Language :: Python :: 3\n"
        "Requires-Python: >=3.9\n"
        "Requires-Dist: requests>=2.20\n"
        "Description-Content-Type: text/markdown\n"
        "\n"
        f"# {name}\n\nRelease {version}, generated for a benchmark.\n"
    ).encode()


def write_wheel(outdir: Path, name: str, version: str, tag: str) -> Path:
    base = f"{dist_name(name)}-{version}"
    distinfo = f"{base}.dist-info"
    module = dist_name(name)
    pure = tag.endswith("-none-any")
    members = [
        (f"{module}/__init__.py", f'__version__ = "{version}"\nBUILD_TAG = "{tag}"\n'.encode()),
        (f"{distinfo}/METADATA", _metadata(name, version)),
        (
            f"{distinfo}/WHEEL",
            (
                "Wheel-Version: 1.0\nGenerator: bastion-bench\n"
                f"Root-Is-Purelib: {'true' if pure else 'false'}\nTag: {tag}\n\n"
            ).encode(),
        ),
    ]
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in members)
    record += f"{distinfo}/RECORD,,\n"
    members.append((f"{distinfo}/RECORD", record.encode()))
    path = outdir / f"{base}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members:
            info = zipfile.ZipInfo(member, date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return path


def write_sdist(outdir: Path, name: str, version: str) -> Path:
    base = f"{dist_name(name)}-{version}"
    members = [
        (f"{base}/PKG-INFO", _metadata(name, version)),
        (
            f"{base}/pyproject.toml",
            (
                '[build-system]\nrequires = ["setuptools>=61"]\n'
                'build-backend = "setuptools.build_meta"\n\n'
                f'[project]\nname = "{name}"\nversion = "{version}"\n'
            ).encode(),
        ),
        (f"{base}/src/{dist_name(name)}/__init__.py", f'__version__ = "{version}"\n'.encode()),
    ]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for member, data in members:
            info = tarfile.TarInfo(member)
            info.size, info.mtime, info.mode = len(data), TAR_MTIME, 0o644
            archive.addfile(info, io.BytesIO(data))
    path = outdir / f"{base}.tar.gz"
    with open(path, "wb") as handle:
        with gzip.GzipFile(fileobj=handle, mode="wb", mtime=TAR_MTIME) as gz:
            gz.write(raw.getvalue())
    return path


def generate(outdir: Path, count: int, name: str = PROJECT) -> list[Path]:
    """``count`` files: per version an sdist and the four wheels, versions 1.0.0, 1.0.1, ..."""
    outdir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    i = 0
    while len(paths) < count:
        version = f"{1 + i // 100}.{(i // 10) % 10}.{i % 10}"
        i += 1
        paths.append(write_sdist(outdir, name, version))
        for tag in WHEEL_TAGS:
            if len(paths) < count:
                paths.append(write_wheel(outdir, name, version, tag))
    return paths


def upload_fields(path: Path) -> list[tuple[str, str]]:
    """The form fields twine sends for ``path``, read from the file's own metadata."""
    filename = path.name
    if filename.endswith(".whl"):
        with zipfile.ZipFile(path) as archive:
            meta_name = next(
                n for n in archive.namelist()
                if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
            )
            raw = archive.read(meta_name)
        filetype, pyversion = "bdist_wheel", filename[:-4].split("-")[-3]
    elif filename.endswith(".tar.gz"):
        with tarfile.open(path) as archive:
            member = next(
                m for m in archive.getmembers()
                if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO")
            )
            raw = archive.extractfile(member).read()  # type: ignore[union-attr]
        filetype, pyversion = "sdist", "source"
    else:
        raise ValueError(f"{filename}: not a wheel or sdist")
    headers: dict[str, list[str]] = {}
    for line in raw.decode("utf-8").split("\n\n", 1)[0].splitlines():
        if ": " in line and not line.startswith((" ", "\t")):
            key, value = line.split(": ", 1)
            headers.setdefault(key.lower(), []).append(value)
    data = path.read_bytes()
    fields = [
        (":action", "file_upload"),
        ("protocol_version", "1"),
        ("metadata_version", headers["metadata-version"][0]),
        ("name", headers["name"][0]),
        ("version", headers["version"][0]),
        ("filetype", filetype),
        ("pyversion", pyversion),
        ("sha256_digest", hashlib.sha256(data).hexdigest()),
        ("blake2_256_digest", hashlib.blake2b(data, digest_size=32).hexdigest()),
    ]
    for key, field in (("summary", "summary"), ("requires-python", "requires_python")):
        if key in headers:
            fields.append((field, headers[key][0]))
    fields += [("requires_dist", value) for value in headers.get("requires-dist", [])]
    return fields


class UploadFailed(Exception):
    pass


def upload_all(index_url: str, token: str, paths: list[Path], threads: int = 4,
               timeout: float = 120.0) -> dict[str, float]:
    """POST every file to ``{index_url}legacy/``; the first alone (it creates the project)."""
    url = loopback_only(index_url.rstrip("/") + "/legacy/")
    local = threading.local()

    def post(path: Path) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.auth = ("__token__", token)
            session.headers["User-Agent"] = "bastion-bench/1"
        with open(path, "rb") as handle:
            response = session.post(
                url,
                data=upload_fields(path),
                files={"content": (path.name, handle, "application/octet-stream")},
                timeout=timeout,
            )
        if response.status_code != 200:
            raise UploadFailed(
                f"{path.name}: HTTP {response.status_code} {response.reason!r}; "
                f"X-Bastion-Error={response.headers.get('X-Bastion-Error')!r}; "
                f"body={response.text[:2000]!r}"
            )

    started = time.perf_counter()
    ordered = sorted(paths, key=lambda p: p.name)
    if ordered:
        post(ordered[0])
    errors: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        futures = [pool.submit(post, p) for p in ordered[1:]]
        for future in concurrent.futures.as_completed(futures):
            exc = future.exception()
            if exc is not None:
                errors.append(str(exc))
                if len(errors) >= 5:
                    for other in futures:
                        other.cancel()
                    break
    if errors:
        raise UploadFailed("upload failed:\n  " + "\n  ".join(errors))
    elapsed = time.perf_counter() - started
    return {"files": len(ordered), "seconds": round(elapsed, 2),
            "files_per_s": round(len(ordered) / elapsed, 1) if elapsed else 0.0}


# ------------------------------------------------------------------ the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def bastion_bin() -> str:
    candidate = Path(sys.executable).with_name("bastion")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("bastion")
    if not found:
        raise SystemExit("no `bastion` command next to this Python or on PATH")
    return found


def proc_children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    stat = handle.read()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    return children


def proc_tree(root: int) -> list[int]:
    children, out, todo = proc_children(), [], [root]
    while todo:
        pid = todo.pop()
        if os.path.exists(f"/proc/{pid}"):
            out.append(pid)
            todo.extend(children.get(pid, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                rest = handle.read().rsplit(")", 1)[1].split()
            ticks += int(rest[11]) + int(rest[12])
        except (OSError, IndexError, ValueError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


class Server:
    """``bastion serve`` in the foreground, owned by pid; stopped with SIGTERM then SIGKILL."""

    def __init__(self, env: dict[str, str], cwd: Path, port: int, workers: int) -> None:
        self.env, self.cwd, self.port, self.workers = env, cwd, port, workers
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = cwd / "server.log"
        self.pids: list[int] = []

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def start(self, timeout: float = 90.0) -> None:
        cmd = [bastion_bin(), "serve", "--no-migrate", "--host", HOST, "--port", str(self.port),
               "--workers", str(self.workers)]
        log("starting", " ".join(cmd))
        with open(self.log_path, "ab") as logfile:
            self.proc = subprocess.Popen(cmd, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                         stdout=logfile, stderr=logfile, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"bastion serve exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                if requests.get(self.base + "healthz", timeout=5).status_code == 200:
                    time.sleep(0.5)  # let every worker finish booting
                    self.pids = proc_tree(self.proc.pid)
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        raise SystemExit(
            f"bastion serve did not answer /healthz in {timeout:.0f}s:\n{self.log_tail()}"
        )

    def tree(self) -> list[int]:
        if self.proc is None:
            return []
        self.pids = sorted(set(self.pids) | set(proc_tree(self.proc.pid)))
        return self.pids

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def stop(self) -> None:
        if self.proc is None:
            return
        pids = self.tree()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for pid in pids:  # leftovers of our own tree only, one by one
            if pid != self.proc.pid and os.path.exists(f"/proc/{pid}"):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        log("server stopped")
        self.proc = None


# ------------------------------------------------------------------ load generation


def parse_duration_ms(text: str) -> float:
    for unit, factor in (("us", 1e-3), ("ms", 1.0), ("s", 1000.0), ("m", 60000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def run_wrk(url: str, conc: int, duration: int, headers: dict[str, str]) -> dict[str, object]:
    threads = max(1, min(conc, 2))
    cmd = ["wrk", f"-t{threads}", f"-c{conc}", f"-d{duration}s", "--timeout", "30s", "--latency"]
    for key, value in headers.items():
        cmd += ["-H", f"{key}: {value}"]
    cmd.append(loopback_only(url))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    out: dict[str, object] = {"loader": "wrk", "non2xx3xx": 0, "socket_errors": 0,
                              "cmd": " ".join(cmd)}
    for line in proc.stdout.splitlines():
        parts = line.split()
        stripped = line.strip()
        if line.startswith("Requests/sec:"):
            out["rps"] = float(parts[1])
        elif stripped.startswith("50%"):
            out["p50_ms"] = parse_duration_ms(parts[1])
        elif stripped.startswith("99%"):
            out["p99_ms"] = parse_duration_ms(parts[1])
        elif " requests in " in line:
            out["requests"] = int(parts[0])
        elif "Non-2xx or 3xx responses" in line:
            out["non2xx3xx"] = int(parts[-1])
        elif stripped.startswith("Socket errors"):
            out["socket_errors"] = sum(int(x.strip(",")) for x in parts[3::2])
    if "rps" not in out:
        out["error"] = (proc.stdout + proc.stderr)[-2000:]
    return out


def run_python(url: str, conc: int, duration: int, headers: dict[str, str]) -> dict[str, object]:
    """Threads with one keep-alive http.client connection each, until the deadline."""
    parts = urllib.parse.urlsplit(loopback_only(url))
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    latencies: list[list[float]] = [[] for _ in range(conc)]
    statuses: list[dict[int, int]] = [{} for _ in range(conc)]
    errors = [0] * conc
    start_gate = threading.Barrier(conc + 1)
    deadline_box: list[float] = [0.0]

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        start_gate.wait()
        deadline = deadline_box[0]
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                errors[i] += 1
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
                continue
            latencies[i].append(time.perf_counter() - t0)
            statuses[i][response.status] = statuses[i].get(response.status, 0) + 1
            if response.will_close:
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        conn.close()

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(conc)]
    for thread in workers:
        thread.start()
    began = time.perf_counter()
    deadline_box[0] = began + duration
    start_gate.wait()
    for thread in workers:
        thread.join(timeout=duration + 40)
    elapsed = time.perf_counter() - began
    merged = sorted(x for lst in latencies for x in lst)
    counts: dict[int, int] = {}
    for per in statuses:
        for code, n in per.items():
            counts[code] = counts.get(code, 0) + n
    out: dict[str, object] = {"loader": f"python-threads({conc})", "requests": len(merged),
                              "socket_errors": sum(errors),
                              "non2xx3xx": sum(n for c, n in counts.items() if c >= 400),
                              "statuses": {str(k): v for k, v in sorted(counts.items())}}
    if merged:
        out["rps"] = round(len(merged) / elapsed, 1)
        out["p50_ms"] = round(1000 * merged[len(merged) // 2], 3)
        out["p99_ms"] = round(1000 * merged[min(len(merged) - 1, int(len(merged) * 0.99))], 3)
    else:
        out["error"] = "no request completed"
    return out


def probe(url: str, headers: dict[str, str]) -> requests.Response:
    return requests.get(loopback_only(url), headers=headers, timeout=60)


# ------------------------------------------------------------------ main


def bastion(env: dict[str, str], cwd: Path, *args: str) -> str:
    proc = subprocess.run([bastion_bin(), *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)
    if proc.returncode != 0:
        raise SystemExit(f"bastion {' '.join(args)} failed ({proc.returncode}):\n"
                         f"{proc.stdout}{proc.stderr}")
    return proc.stdout.strip()


def bastion_version() -> str:
    from importlib import metadata

    out = []
    for dist in ("bastion-index", "Django", "gunicorn"):
        try:
            out.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(out)


def measure(args: argparse.Namespace) -> int:
    loader = args.loader
    if loader == "auto":
        loader = "wrk" if shutil.which("wrk") else "python"
    if loader == "wrk" and not shutil.which("wrk"):
        raise SystemExit("--loader wrk but no wrk on PATH")
    run = run_wrk if loader == "wrk" else run_python
    concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]

    tmp = Path(tempfile.mkdtemp(prefix="bastion-bench-"))
    env = dict(os.environ)
    for key in list(env):
        if key.startswith("BASTION_"):
            del env[key]
    port = free_port()
    env.update(BASTION_DATA_DIR=str(tmp / "data"), BASTION_BASE_URL=f"http://{HOST}:{port}")
    server = Server(env, tmp, port, args.workers)
    rows: list[dict[str, object]] = []
    run_id = time.strftime("%Y%m%dT%H%M%S")
    common = {"run_id": run_id, "files": args.files, "workers": args.workers,
              "version": bastion_version(), "duration_s": args.duration}
    try:
        log(f"data dir {tmp}")
        bastion(env, tmp, "migrate")
        # --no-limits: a benchmark uploads far more than the per-token default allows
        bastion(
            env, tmp, "user", "create", "bench", "--email", "bench@example.invalid", "--no-limits"
        )
        token = bastion(env, tmp, "token", "create", "bench", "--name", "bench").splitlines()[-1]
        t0 = time.perf_counter()
        paths = generate(tmp / "dists", args.files, args.project)
        log(f"generated {len(paths)} files in {time.perf_counter() - t0:.1f}s")
        server.start()
        try:
            up = upload_all(server.base, token, paths, threads=args.upload_threads)
        except UploadFailed as exc:
            raise SystemExit(f"{exc}\nserver log:\n{server.log_tail()}") from None
        log(f"uploaded {up['files']} files in {up['seconds']}s ({up['files_per_s']} files/s)")
        common["upload"] = up

        url = f"{server.base}simple/{dist_name(args.project).replace('_', '-')}/"
        etags: dict[str, str] = {}
        for kind, accept in ACCEPTS.items():
            headers = {"Accept": accept} if accept else {}
            response = probe(url, headers)
            if response.status_code != 200:
                raise SystemExit(
                    f"GET {url} ({kind}): HTTP {response.status_code}\n{response.text[:2000]}"
                )
            if kind == "json":
                if not response.headers.get("Content-Type", "").startswith(PEP691):
                    raise SystemExit(f"JSON not negotiated: {response.headers.get('Content-Type')}")
                listed = len(response.json()["files"])
            else:
                listed = response.text.count("<a ")
            if listed != len(paths):
                raise SystemExit(f"{kind} page lists {listed} files, expected {len(paths)}")
            etags[kind] = response.headers.get("ETag", "")
            common[f"{kind}_bytes"] = len(response.content)
            log(f"{kind}: {len(response.content)} bytes, {listed} files, ETag {etags[kind]}")

        confs = []
        for kind, accept in ACCEPTS.items():
            base_headers = {"Accept": accept} if accept else {}
            confs.append((kind, base_headers, 200))
        for kind, accept in ACCEPTS.items():
            if etags[kind]:
                headers = ({"Accept": accept} if accept else {}) | {"If-None-Match": etags[kind]}
                confs.append((f"{kind}-304", headers, 304))
        for label, headers, expected in confs:
            status = probe(url, headers).status_code
            if status != expected:
                raise SystemExit(f"{label}: expected HTTP {expected}, got {status}")
            run(url, 4, args.warmup, headers)  # warm-up, not recorded
            for conc in concurrency:
                pids = server.tree()
                cpu0 = cpu_seconds(pids)
                res = run(url, conc, args.duration, headers)
                cpu = cpu_seconds(server.tree()) - cpu0
                after = probe(url, headers).status_code
                requests_done = int(res.get("requests") or 0)
                kind = label.split("-")[0]
                row = {"kind": "simple_page", "variant": label, "conc": conc,
                       "expected_status": expected, "status_after": after,
                       "body_bytes": 0 if expected == 304 else common[f"{kind}_bytes"],
                       "server_cpu_s": round(cpu, 2),
                       "server_cpu_ms_per_req":
                           round(1000 * cpu / requests_done, 3) if requests_done else None,
                       **res}
                if "statuses" in row:  # python loader: every status is known
                    row["unexpected"] = int(row["socket_errors"]) + sum(
                        n for code, n in row["statuses"].items() if int(code) != expected)
                elif expected == 304:
                    # wrk counts every 3xx as "Non-2xx or 3xx"; the probes check the status.
                    row["unexpected"] = row["socket_errors"]
                else:
                    row["unexpected"] = int(row["socket_errors"]) + int(row["non2xx3xx"])
                rows.append(row)
                log(f"{label} c{conc}: {res.get('rps')} req/s p50={res.get('p50_ms')}ms "
                    f"p99={res.get('p99_ms')}ms unexpected={row['unexpected']} "
                    f"{res.get('error', '')}")
                time.sleep(0.5)
    finally:
        server.stop()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    RESULTS.mkdir(exist_ok=True)
    ignore = RESULTS / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    with open(RESULTS / "simple_page.jsonl", "a") as handle:
        for row in rows:
            handle.write(json.dumps({**common, **row, "ts": time.time()}) + "\n")

    print(f"\n`GET /simple/{args.project}/` on bastion ({common['version']}), {args.files} files, "
          f"`--workers {args.workers}`, {args.duration}s per run, loader {loader}; "
          f"upload of {common['upload']['files']} files: {common['upload']['seconds']} s "
          f"({common['upload']['files_per_s']} files/s, {args.upload_threads} threads)\n")
    print("| representation | conc | req/s | p50 ms | p99 ms | body bytes | "
          "server CPU ms/req | errors |")
    print("|---|---|---|---|---|---|---|---|")

    def num(row: dict[str, object], key: str, nd: int) -> str:
        value = row.get(key)
        return "–" if value is None else f"{float(value):,.{nd}f}"  # type: ignore[arg-type]

    for row in rows:
        print(f"| {row['variant']} | {row['conc']} | {num(row, 'rps', 1)} | "
              f"{num(row, 'p50_ms', 2)} | {num(row, 'p99_ms', 2)} | {row['body_bytes']:,} | "
              f"{num(row, 'server_cpu_ms_per_req', 3)} | {row['unexpected']} |")
    print(f"\nappended {len(rows)} records to {RESULTS / 'simple_page.jsonl'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per load run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unrecorded warm-up")
    parser.add_argument("--workers", type=int, default=2, help="bastion serve --workers")
    parser.add_argument("--concurrency", default="1,32")
    parser.add_argument("--loader", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--upload-threads", type=int, default=4)
    parser.add_argument("--project", default=PROJECT)
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    parser.add_argument("--upload-only", metavar="DIR", type=Path,
                        help="only upload every .whl/.tar.gz in DIR (token in $BENCH_UPLOAD_TOKEN)")
    parser.add_argument("--index-url", help="with --upload-only: http://127.0.0.1:PORT/")
    args = parser.parse_args(argv)
    if args.upload_only:
        token = os.environ.get("BENCH_UPLOAD_TOKEN")
        if not token or not args.index_url:
            parser.error("--upload-only needs --index-url and $BENCH_UPLOAD_TOKEN")
        paths = [p for p in sorted(args.upload_only.iterdir())
                 if p.name.endswith((".whl", ".tar.gz"))]
        try:
            up = upload_all(args.index_url, token, paths, threads=args.upload_threads)
        except UploadFailed as exc:
            print(str(exc), file=sys.stderr)
            return 1
        log(f"uploaded {up['files']} files in {up['seconds']}s ({up['files_per_s']} files/s)")
        return 0
    if args.files < 1 or args.duration < 1 or args.workers < 1:
        parser.error("--files, --duration and --workers must be positive")
    return measure(args)


if __name__ == "__main__":
    sys.exit(main())
