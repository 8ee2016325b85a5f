#!/usr/bin/env python3
"""Which WSGI server should run bastion? gunicorn, pyuwsgi and granian side by side, on the
same data, against nginx serving a static copy of the same page bytes (issue 12).

    .venv/bin/python bench/servers.py                          # full run (see the README)
    .venv/bin/python bench/servers.py --quick                  # smoke test: 200 files, 2 s runs
    .venv/bin/python bench/servers.py --files 1000 --duration 8 --rounds 3 --warmup 2

What it does, all on 127.0.0.1, every load run bounded in time:

1. creates (once) a venv, ``/tmp/anchors/venv-servers`` (``$BENCH_SERVERS_VENV``), with
   ``pip install -e <repo> pyuwsgi granian requests``, and re-runs itself with that venv's
   Python so that every server, and ``bastion`` itself, come from one set of packages;
2. prepares ONE data directory (SQLite + local files) with the functions of
   ``bench/simple_page.py``: migrate, user ``bench`` (``--no-limits``), a token, ``--files``
   distributions of ``acme-telemetry-client`` uploaded through ``POST /legacy/`` to a temporary
   ``bastion serve``; then saves the HTML and PEP 691 JSON of ``/simple/<project>/`` for nginx;
3. serves that data directory, one server at a time, each on a fresh free port:
     gunicorn  ``bastion serve --no-migrate --workers W`` (bastion.server.ReadableFirstThreadWorker,
               4 threads per worker);
     pyuwsgi   ``uwsgi --master --http11-socket ... --module bastion.wsgi:application
               --processes W --threads 4 --lazy-apps --die-on-term`` (``--http11-socket`` is
               uWSGI's keep-alive HTTP socket in the workers themselves; a thread keeps its
               connection between requests, so at most W x 4 connections are served at once);
     pyuwsgi-router  the same workers behind uWSGI's HTTP router (``--http ... --http-keepalive
               --socket <unix socket>``: one more, event-driven, process and a hop per request;
               ``--http-keepalive`` is an option of that router only);
     granian   ``granian --interface wsgi --workers W --blocking-threads 4
               bastion.wsgi:application``;
     nginx     W worker processes serving the saved bytes, choosing the file by ``Accept`` like
               the shared harness's nginx adapter (``map $http_accept``);
   the environment is the one ``bastion serve`` runs with: ``DJANGO_SETTINGS_MODULE`` and the
   same ``BASTION_DATA_DIR`` / ``BASTION_BASE_URL`` for all (the base URL's port is the one the
   data was uploaded through: the host check ignores ports, and so every server renders the
   same bytes, which is checked);
4. opens 32 keep-alive connections at once (Python threads, 3 s) to see whether every one is
   answered (wrk counts only completed requests); then loads each server with wrk (``-t1 -c1``
   / ``-t2 -c32``, ``--latency``): HTML 200 at c1 and c32, JSON 200 at c32, HTML 304 at c32
   (``If-None-Match`` with that server's ETag), each after an unrecorded warm-up; records
   req/s, p50/p99 and the server's CPU time per request (utime+stime of its process tree from
   /proc, as simple_page.py does). ``--rounds N`` repeats the whole sequence (rotating the
   server order) and reports medians;
5. for each Python server, POSTs to ``/legacy/`` twice with ``http.client``: without
   credentials (401) and a file whose name is taken with other content (400 "File already
   exists", what ``twine --skip-existing`` looks for), asking for JSON so the body says which
   reason bastion set; "kept" means the status line carried exactly that reason;
6. prints Markdown tables and writes them to ``bench/results/servers-<timestamp>.md``
   (git-ignored). Every server started is stopped (SIGTERM, SIGKILL after 20 s) in all cases,
   and the temporary directories removed (``--keep`` keeps them).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
VENV = Path(os.environ.get("BENCH_SERVERS_VENV", "/tmp/anchors/venv-servers"))
VENV_TOOLS = ("python", "bastion", "uwsgi", "granian")
HOST = "127.0.0.1"
PEP691 = "application/vnd.pypi.simple.v1+json"
THREADS = 4  # per worker process, as bastion.server.run configures gunicorn
SERVERS = ("nginx", "gunicorn", "pyuwsgi", "pyuwsgi-router", "granian")
PYTHON_SERVERS = SERVERS[1:]


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    accept: str | None
    conditional: bool
    conc: int


WORKLOADS = (
    Workload("html-c1", "HTML 200 c1", None, False, 1),
    Workload("html-c32", "HTML 200 c32", None, False, 32),
    Workload("json-c32", "JSON 200 c32", PEP691, False, 32),
    Workload("html304-c32", "HTML 304 c32", None, True, 32),
)


def say(*parts: object) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ the venv


def venv_ready() -> bool:
    if not all((VENV / "bin" / tool).exists() for tool in VENV_TOOLS):
        return False
    check = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", "import bastion, granian, pyuwsgi, requests"],
        capture_output=True, timeout=120,
    )
    return check.returncode == 0


def ensure_venv(reinstall: bool) -> None:
    if reinstall and VENV.exists():
        say(f"removing {VENV} (--reinstall)")
        shutil.rmtree(VENV)
    if venv_ready():
        return
    python = shutil.which("python3")
    if python is None:
        raise SystemExit("servers: no python3 on PATH to create the venv with")
    version = subprocess.run([python, "-c", "import sys; print(sys.version_info >= (3, 11))"],
                             capture_output=True, text=True, timeout=60).stdout.strip()
    if version != "True":
        raise SystemExit(f"servers: {python} is older than 3.11 (bastion needs 3.11+)")
    say(f"creating {VENV} (once; pip install -e {REPO} pyuwsgi granian requests)")
    VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([python, "-m", "venv", str(VENV)], check=True, timeout=300)
    pip = subprocess.run(
        [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", "-e", str(REPO),
         "pyuwsgi", "granian", "requests"],
        timeout=1800,
    )
    if pip.returncode != 0 or not venv_ready():
        raise SystemExit(f"servers: installing into {VENV} failed (exit {pip.returncode})")


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


# ------------------------------------------------------------------ servers

sys.path.insert(0, str(HERE))
try:  # bench/simple_page.py: data, upload, wrk, /proc accounting
    import simple_page as sp  # noqa: E402
except ImportError:  # no requests in this Python: main() re-runs in the venv, which has it
    sp = None


def venv_bin(tool: str) -> str:
    return str(VENV / "bin" / tool)


def tool_version(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (proc.stdout + proc.stderr).strip()
    return text.splitlines()[0] if text else "?"


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in ("bastion-index", "Django", "gunicorn", "pyuwsgi", "granian"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "?"
    out["nginx"] = tool_version(["nginx", "-v"]).replace("nginx version: ", "")
    out["wrk"] = tool_version(["wrk", "--version"]).split(" Copyright")[0]
    out["python"] = sys.version.split()[0]
    return out


class Proc(sp.Server if sp else object):  # type: ignore[misc]
    """Any server command, owned by pid; ``simple_page.Server``'s tree, log and stop (SIGTERM,
    then SIGKILL after 20 s, then SIGKILL for leftovers of its own process tree)."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], cwd: Path, port: int,
                 ready_path: str) -> None:
        super().__init__(env, cwd, port, 0)
        self.name, self.cmd, self.ready_path = name, cmd, ready_path
        self.log_path = cwd / f"{name}.log"

    def start(self, timeout: float = 90.0) -> None:
        say(f"starting {self.name}:", " ".join(self.cmd))
        with open(self.log_path, "ab") as logfile:
            self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=self.cwd,
                                         stdin=subprocess.DEVNULL, stdout=logfile, stderr=logfile,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                if sp.requests.get(self.base + self.ready_path.lstrip("/"),
                                   timeout=5).status_code == 200:
                    time.sleep(1.0)  # let every worker finish booting
                    self.pids = sp.proc_tree(self.proc.pid)
                    return
            except sp.requests.RequestException:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer {self.ready_path} in {timeout:.0f}s:\n"
                           f"{self.log_tail()}")


def server_command(name: str, port: int, workers: int, nginx_dir: Path) -> list[str]:
    if name == "gunicorn":
        return [venv_bin("bastion"), "serve", "--no-migrate", "--host", HOST, "--port", str(port),
                "--workers", str(workers)]
    if name == "pyuwsgi":
        return [venv_bin("uwsgi"), "--master", "--http11-socket", f"{HOST}:{port}",
                "--module", "bastion.wsgi:application", "--processes", str(workers),
                "--threads", str(THREADS), "--lazy-apps", "--need-app", "--die-on-term",
                "--disable-logging", "--buffer-size", "8192", "--ignore-sigpipe",
                "--ignore-write-errors", "--disable-write-exception"]
    if name == "pyuwsgi-router":
        # uWSGI's HTTP router (an event-driven process of its own, keep-alive with clients)
        # in front of the same workers, which it reaches over a uwsgi-protocol unix socket.
        sock = nginx_dir / "uwsgi.sock"  # a scratch directory of this run
        return [venv_bin("uwsgi"), "--master", "--http", f"{HOST}:{port}", "--http-keepalive",
                "--http-auto-chunked", "--socket", str(sock), "--chmod-socket=600",
                "--module", "bastion.wsgi:application", "--processes", str(workers),
                "--threads", str(THREADS), "--lazy-apps", "--need-app", "--die-on-term",
                "--disable-logging", "--buffer-size", "8192", "--ignore-sigpipe",
                "--ignore-write-errors", "--disable-write-exception", "--vacuum"]
    if name == "granian":
        return [venv_bin("granian"), "--interface", "wsgi", "--host", HOST, "--port", str(port),
                "--workers", str(workers), "--blocking-threads", str(THREADS), "--no-ws",
                "--no-access-log", "--log-level", "warning", "--workers-kill-timeout", "10",
                "bastion.wsgi:application"]
    if name == "nginx":
        conf = write_nginx_conf(nginx_dir, port, workers)
        return ["nginx", "-p", str(nginx_dir), "-e", str(nginx_dir / "error.log"), "-c", str(conf),
                "-g", "daemon off;"]
    raise ValueError(name)


def write_nginx_conf(root: Path, port: int, workers: int) -> Path:
    """The shared harness's nginx adapter, with ``workers`` worker processes."""
    (root / "tmp").mkdir(exist_ok=True)
    conf = root / "nginx.conf"
    conf.write_text(f"""worker_processes {workers};
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    types {{
        text/html html;
        application/vnd.pypi.simple.v1+json json;
    }}
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    map $http_accept $simple_index {{
        default index.html;
        "~application/vnd\\.pypi\\.simple\\.v1\\+json" index.json;
    }}
    server {{
        listen {HOST}:{port};
        root {root}/www;
        index $simple_index;
        location / {{ }}
    }}
}}
""")
    return conf


# ------------------------------------------------------------------ checks


def get(port: int, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes, bool]:
    """One GET on a fresh connection, then a second on the same one: (status, headers, body,
    whether the connection was kept alive for the second request)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        status, head = response.status, {k.lower(): v for k, v in response.getheaders()}
        kept = False
        if not response.will_close:
            try:
                conn.request("GET", path, headers=headers)
                again = conn.getresponse()
                again.read()
                kept = again.status == status
            except (OSError, http.client.HTTPException):
                kept = False
        return status, head, body, kept
    finally:
        conn.close()


def post_raw(port: int, body: bytes, content_type: str, auth: str | None) -> dict[str, object]:
    headers = {"Content-Type": content_type, "Content-Length": str(len(body)),
               "Accept": "application/json", "User-Agent": "bastion-bench-servers/1"}
    if auth:
        headers["Authorization"] = auth
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        conn.request("POST", "/legacy/", body=body, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        version = {10: "HTTP/1.0", 11: "HTTP/1.1"}.get(response.version, str(response.version))
        try:
            title = json.loads(raw).get("title", "")
        except ValueError:
            title = ""
        return {"status": response.status, "reason": response.reason, "expected_reason": title,
                "status_line": f"{version} {response.status} {response.reason}",
                "kept": bool(title) and response.reason == title}
    finally:
        conn.close()


def reason_checks(port: int, token: str, sample: Path) -> list[dict[str, object]]:
    """Two refusals bastion gives a specific reason phrase (uploads/views.error_response)."""
    import base64

    url = f"http://{HOST}:{port}/legacy/"
    out = []
    # 1. No credentials: 401 with bastion's "Invalid or non-existent authentication ..." reason.
    prepared = sp.requests.Request(
        "POST", url, data=sp.upload_fields(sample),
        files={"content": (sample.name, sample.read_bytes(), "application/octet-stream")},
    ).prepare()
    out.append({"check": "401 no credentials",
                **post_raw(port, prepared.body, prepared.headers["Content-Type"], None)})
    # 2. The name of an uploaded file with other bytes: 400 "File already exists (...)", the
    #    phrase twine --skip-existing looks for. Refused before validation, nothing is stored.
    data = sample.read_bytes() + b"\0" * 16
    fields = [(k, v) for k, v in sp.upload_fields(sample)
              if k not in ("sha256_digest", "blake2_256_digest")]
    fields += [("sha256_digest", hashlib.sha256(data).hexdigest()),
               ("blake2_256_digest", hashlib.blake2b(data, digest_size=32).hexdigest())]
    prepared = sp.requests.Request(
        "POST", url, data=fields,
        files={"content": (sample.name, data, "application/octet-stream")},
    ).prepare()
    auth = "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()
    out.append({"check": "400 file exists",
                **post_raw(port, prepared.body, prepared.headers["Content-Type"], auth)})
    return out


def answered_connections(port: int, path: str, conc: int, seconds: float) -> dict[str, object]:
    """``conc`` keep-alive connections, each sending requests back to back for ``seconds``: how
    many got an answer during that time, and the longest wait for a first one. wrk reports only
    the requests that completed, so a server that holds a thread per keep-alive connection (and
    leaves the other connections unaccepted) still shows a short p99; this shows it."""
    counts = [0] * conc
    first = [float("inf")] * conc
    gate = threading.Barrier(conc + 1)
    began = [0.0]

    def client(i: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=seconds + 2)
        try:
            conn.connect()
            gate.wait()
            deadline = began[0] + seconds
            while time.perf_counter() < deadline:
                conn.request("GET", path)
                conn.getresponse().read()
                if not counts[i]:
                    first[i] = time.perf_counter() - began[0]
                counts[i] += 1
        except (OSError, http.client.HTTPException, threading.BrokenBarrierError):
            pass
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(conc)]
    for thread in threads:
        thread.start()
    began[0] = time.perf_counter()
    try:
        gate.wait(timeout=30)
    except threading.BrokenBarrierError:
        pass
    for thread in threads:
        thread.join(timeout=seconds + 10)
    waits = [f for f in first if f != float("inf")]
    return {"conc": conc, "seconds": seconds,
            "answered": sum(1 for f in first if f <= seconds),  # during the run
            "slowest_first_ms": round(1000 * max(waits), 1) if len(waits) == conc else None,
            "min_requests": min(counts), "max_requests": max(counts)}


# ------------------------------------------------------------------ measuring


@dataclass
class Context:
    args: argparse.Namespace
    tmp: Path
    nginx_dir: Path
    env: dict[str, str]
    token: str
    sample: Path
    path: str  # /simple/<project>/
    reference: dict[str, str]  # kind -> sha256 of bastion's page bytes
    rows: list[dict[str, object]] = field(default_factory=list)
    info: dict[str, dict[str, object]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def measure_server(ctx: Context, name: str, round_no: int) -> None:
    args = ctx.args
    port = sp.free_port()
    cmd = server_command(name, port, args.workers, ctx.nginx_dir)
    ready = ctx.path if name == "nginx" else "/healthz"
    server = Proc(name, cmd, ctx.env, ctx.tmp, port, ready)
    info = ctx.info.setdefault(name, {"cmd": " ".join(cmd), "keepalive": {}, "same_bytes": {}})
    try:
        server.start()
        etags: dict[str, str] = {}
        for kind, accept in (("html", None), ("json", PEP691)):
            headers = {"Accept": accept} if accept else {}
            status, head, body, kept = get(port, ctx.path, headers)
            if status != 200:
                raise RuntimeError(f"{name}: GET {ctx.path} ({kind}) answered {status}")
            etags[kind] = head.get("etag", "")
            info["same_bytes"][kind] = hashlib.sha256(body).hexdigest() == ctx.reference[kind]
            info["keepalive"][f"{kind} 200"] = kept
            info.setdefault("bytes", {})[kind] = len(body)
            info.setdefault("content_type", {})[kind] = head.get("content-type", "")
        if not etags["html"]:
            raise RuntimeError(f"{name}: no ETag on the HTML page")
        status, _head, _body, kept = get(port, ctx.path, {"If-None-Match": etags["html"]})
        info["keepalive"]["html 304"] = kept
        if status != 304:
            raise RuntimeError(f"{name}: If-None-Match {etags['html']} answered {status}, not 304")
        if name in PYTHON_SERVERS and "reasons" not in info:
            info["reasons"] = reason_checks(port, ctx.token, ctx.sample)
        if "fairness" not in info:
            info["fairness"] = answered_connections(port, ctx.path, 32, 3.0)
            say(f"{name}: {info['fairness']}")
        url = f"http://{HOST}:{port}{ctx.path}"
        for load in WORKLOADS:
            headers = {"Accept": load.accept} if load.accept else {}
            expected = 200
            if load.conditional:
                headers["If-None-Match"] = etags["json" if load.accept else "html"]
                expected = 304
            sp.run_wrk(url, 4, args.warmup, headers)  # warm-up, not recorded
            cpu0 = sp.cpu_seconds(server.tree())
            res = sp.run_wrk(url, load.conc, args.duration, headers)
            cpu = sp.cpu_seconds(server.tree()) - cpu0
            after = get(port, ctx.path, headers)[0]
            done = int(res.get("requests") or 0)
            unexpected = int(res.get("socket_errors") or 0)
            if expected == 200:  # wrk counts a 304 as "Non-2xx or 3xx": the probe checks it
                unexpected += int(res.get("non2xx3xx") or 0)
            if after != expected:
                unexpected += 1
                ctx.notes.append(f"{name} {load.title} round {round_no}: status after the run "
                                 f"{after}, expected {expected}")
            if "error" in res:
                ctx.notes.append(f"{name} {load.title} round {round_no}: wrk: "
                                 f"{str(res['error'])[-300:]}")
            row = {"round": round_no, "server": name, "workload": load.key,
                   "rps": res.get("rps"), "p50_ms": res.get("p50_ms"), "p99_ms": res.get("p99_ms"),
                   "requests": done, "cpu_s": round(cpu, 3),
                   "cpu_ms_per_req": round(1000 * cpu / done, 4) if done else None,
                   "unexpected": unexpected}
            ctx.rows.append(row)
            say(f"{name} {load.title}: {row['rps']} req/s p99={row['p99_ms']} ms "
                f"cpu={row['cpu_ms_per_req']} ms/req unexpected={unexpected}")
            time.sleep(0.5)
    except Exception as exc:  # noqa: BLE001 - one server failing must not hide the others
        ctx.notes.append(f"{name} round {round_no}: {type(exc).__name__}: {exc}"[:3000])
        say(f"{name} FAILED: {exc}")
    finally:
        server.stop()
        try:
            text = server.log_path.read_text(errors="replace")
        except OSError:
            text = ""
        if "Traceback" in text:
            ctx.notes.append(f"{name} round {round_no}: a traceback in its log:\n"
                             + "\n".join("    " + line for line in text.splitlines()[-15:]))
        server.log_path.unlink(missing_ok=True)  # one log per start


def prepare(ctx_args: argparse.Namespace, tmp: Path, nginx_dir: Path) -> Context:
    """One data directory, filled through the upload API; nginx's copy of the page bytes."""
    base_port = sp.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env.update(BASTION_DATA_DIR=str(tmp / "data"), BASTION_BASE_URL=f"http://{HOST}:{base_port}",
               DJANGO_SETTINGS_MODULE="bastion.settings")
    sp.bastion(env, tmp, "migrate")
    sp.bastion(env, tmp, "user", "create", "bench", "--email", "bench@example.invalid",
               "--no-limits")
    token = sp.bastion(env, tmp, "token", "create", "bench", "--name", "bench").splitlines()[-1]
    t0 = time.perf_counter()
    paths = sp.generate(tmp / "dists", ctx_args.files, sp.PROJECT)
    say(f"generated {len(paths)} files in {time.perf_counter() - t0:.1f}s")
    slug = sp.dist_name(sp.PROJECT).replace("_", "-")
    path = f"/simple/{slug}/"
    loader = Proc("prepare", server_command("gunicorn", base_port, 2, nginx_dir), env, tmp,
                  base_port, "/healthz")
    reference: dict[str, str] = {}
    www = nginx_dir / "www" / path.strip("/")
    www.mkdir(parents=True)
    try:
        loader.start()
        up = sp.upload_all(loader.base, token, paths, threads=ctx_args.upload_threads)
        say(f"uploaded {up['files']} files in {up['seconds']}s ({up['files_per_s']} files/s)")
        for kind, accept, filename in (("html", None, "index.html"),
                                       ("json", PEP691, "index.json")):
            headers = {"Accept": accept} if accept else {}
            response = sp.probe(loader.base + path.lstrip("/"), headers)
            if response.status_code != 200:
                raise SystemExit(f"GET {path} ({kind}): HTTP {response.status_code}")
            listed = (len(response.json()["files"]) if kind == "json"
                      else response.text.count("<a "))
            if listed != len(paths):
                raise SystemExit(f"{kind} page lists {listed} files, expected {len(paths)}")
            (www / filename).write_bytes(response.content)
            (www / filename).chmod(0o644)
            reference[kind] = hashlib.sha256(response.content).hexdigest()
            say(f"{kind}: {len(response.content)} bytes, {listed} files")
    except sp.UploadFailed as exc:
        raise SystemExit(f"{exc}\nserver log:\n{loader.log_tail()}") from None
    finally:
        loader.stop()
    directory = www
    while True:  # nginx's workers run as an unprivileged user: they must reach the files
        directory.chmod(0o755)
        if directory == nginx_dir:
            break
        directory = directory.parent
    # any uploaded file does for the reason checks
    sample = sorted(paths, key=lambda p: p.name)[0]
    return Context(ctx_args, tmp, nginx_dir, env, token, sample, path, reference)


# ------------------------------------------------------------------ report


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value: float | None, nd: int) -> str:
    return "–" if value is None else f"{value:,.{nd}f}"


def report(ctx: Context, meta: dict[str, object]) -> str:
    args = ctx.args
    agg: dict[tuple[str, str], dict[str, float | None]] = {}
    for name in SERVERS:
        for load in WORKLOADS:
            rows = [r for r in ctx.rows if r["server"] == name and r["workload"] == load.key]
            agg[(name, load.key)] = {
                key: median([r[key] for r in rows])  # type: ignore[misc]
                for key in ("rps", "p50_ms", "p99_ms", "cpu_ms_per_req")
            } | {"n": len([r for r in rows if r["rps"] is not None]),
                 "unexpected": sum(int(r["unexpected"]) for r in rows)}  # type: ignore[arg-type]
    lines = [
        f"# WSGI servers side by side: `GET /simple/{sp.PROJECT}/`, {args.files} files",
        "",
        f"Run {meta['run_id']}: {meta['versions']}. `--workers {args.workers}` "
        f"({THREADS} threads each for the Python servers), wrk `-t1 -c1` / `-t2 -c32`, "
        f"{args.duration} s per run after a {args.warmup} s warm-up, median of {args.rounds} "
        f"round(s); machine: {os.cpu_count()} CPUs, load average before the run "
        f"{meta['loadavg']}. Wall time {meta['wall_s']:.0f} s.",
        "",
        "Cells: req/s (× nginx), p99 ms, server CPU ms per request (its process tree).",
        "",
    ]
    head = "| server |"
    sep = "|---|"
    for load in WORKLOADS:
        head += f" {load.title} req/s (× nginx) | p99 ms | CPU ms/req |"
        sep += "---|---|---|"
    head += " c32 connections answered | reason phrase kept |"
    sep += "---|---|"
    lines += [head, sep]
    for name in SERVERS:
        cells = [name]
        for load in WORKLOADS:
            a = agg[(name, load.key)]
            ref = agg[("nginx", load.key)]["rps"]
            rps = a["rps"]
            ratio = f" ({rps / ref:.2f}×)" if rps is not None and ref else ""
            flag = " ⚠" if a["unexpected"] else ""
            cells += [f"{fmt(rps, 0)}{ratio}{flag}", fmt(a["p99_ms"], 2),
                      fmt(a["cpu_ms_per_req"], 3)]
        fair = ctx.info.get(name, {}).get("fairness") or {}
        cells.append(f"{fair['answered']}/{fair['conc']}" if fair else "–")
        reasons = ctx.info.get(name, {}).get("reasons")
        if name == "nginx":
            cells.append("n/a (static)")
        elif not reasons:
            cells.append("–")
        else:
            cells.append("yes" if all(r["kept"] for r in reasons) else "no")
        lines.append("| " + " | ".join(cells) + " |")
    if any(a["unexpected"] for a in agg.values()):
        lines += ["", "⚠: socket errors or unexpected statuses in that workload (see the notes)."]

    lines += ["", "## Status lines the client received (`http.client`, `response.reason`)", "",
              "| server | refusal | status line received | reason bastion set | kept |",
              "|---|---|---|---|---|"]
    for name in PYTHON_SERVERS:
        for check in ctx.info.get(name, {}).get("reasons", []) or []:
            expected = str(check["expected_reason"])
            short = expected if len(expected) <= 90 else expected[:87] + "..."
            got = str(check["status_line"])
            got = got if len(got) <= 110 else got[:107] + "..."
            lines.append(f"| {name} | {check['check']} | `{got}` | {short} | "
                         f"{'yes' if check['kept'] else 'no'} |")

    lines += ["", "## Same bytes, keep-alive, every connection answered", "",
              "Connections answered: 32 keep-alive connections (Python threads) sending HTML "
              "requests back to back for a few seconds; how many got an answer during that time, "
              "the longest wait for a first answer (after the end when some waited past it), and "
              "the fewest/most requests one connection got through. wrk's numbers count only "
              "completed requests: a server that leaves connections waiting still shows a short "
              "p99.",
              "",
              "| server | HTML bytes | JSON bytes | same bytes as bastion's | "
              "keep-alive HTML 200 / JSON 200 / HTML 304 | connections answered | "
              "slowest first answer ms | requests per connection min/max |",
              "|---|---|---|---|---|---|---|---|"]
    for name in SERVERS:
        info = ctx.info.get(name)
        if not info or "bytes" not in info:
            lines.append(f"| {name} | – | – | – | – | – | – | – |")
            continue
        fair = info.get("fairness") or {}
        same = info["same_bytes"]
        ka = info["keepalive"]
        lines.append(
            f"| {name} | {info['bytes']['html']:,} | {info['bytes']['json']:,} | "
            f"{'yes' if all(same.values()) else 'no: ' + str(same)} | "
            + " / ".join("yes" if ka.get(k) else "no" for k in ("html 200", "json 200", "html 304"))
            + f" | {fair.get('answered', '–')}/{fair.get('conc', '–')} | "
            f"{fmt(fair.get('slowest_first_ms'), 1)} | "
            f"{fair.get('min_requests', '–')}/{fair.get('max_requests', '–')} |")

    lines += ["", "## Commands", ""]
    for name in SERVERS:
        if name in ctx.info:
            lines.append(f"- {name}: `{ctx.info[name]['cmd']}`")
    lines.append(f"- environment: `DJANGO_SETTINGS_MODULE=bastion.settings "
                 f"BASTION_DATA_DIR=<one data dir> BASTION_BASE_URL={ctx.env['BASTION_BASE_URL']}`")
    if args.rounds > 1:
        lines += ["", "## Every run", "", "| round | server | workload | req/s | p50 ms | p99 ms | "
                  "CPU ms/req | unexpected |", "|---|---|---|---|---|---|---|---|"]
        for r in ctx.rows:
            lines.append(f"| {r['round']} | {r['server']} | {r['workload']} | {fmt(r['rps'], 0)} | "
                         f"{fmt(r['p50_ms'], 2)} | {fmt(r['p99_ms'], 2)} | "
                         f"{fmt(r['cpu_ms_per_req'], 3)} | {r['unexpected']} |")
    if ctx.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in ctx.notes]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ main


def expected_seconds(args: argparse.Namespace) -> float:
    per_server = len(WORKLOADS) * (args.warmup + args.duration + 1.0) + 12.0  # start, checks, stop
    return args.rounds * len(SERVERS) * per_server


def run(args: argparse.Namespace) -> int:
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            raise SystemExit(f"servers: {tool} is missing (apt-get install -y wrk nginx)")
    started = time.time()
    meta: dict[str, object] = {
        "run_id": time.strftime("%Y%m%dT%H%M%S"),
        "versions": ", ".join(f"{k} {v}" for k, v in versions().items()),
        "loadavg": " ".join(open("/proc/loadavg").read().split()[:3]),
    }
    say(f"{meta['versions']}")
    say(f"measuring: about {expected_seconds(args) / 60:.1f} min after the data is uploaded")
    tmp = Path(tempfile.mkdtemp(prefix="bastion-servers-"))
    nginx_dir = Path(tempfile.mkdtemp(prefix="bastion-servers-nginx-"))
    try:
        ctx = prepare(args, tmp, nginx_dir)
        for round_no in range(1, args.rounds + 1):
            shift = (round_no - 1) % len(SERVERS)
            for name in SERVERS[shift:] + SERVERS[:shift]:
                measure_server(ctx, name, round_no)
    finally:
        if args.keep:
            say(f"kept {tmp} and {nginx_dir}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(nginx_dir, ignore_errors=True)
    meta["wall_s"] = time.time() - started
    text = report(ctx, meta)
    RESULTS.mkdir(exist_ok=True)
    ignore = RESULTS / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    out = RESULTS / f"servers-{meta['run_id']}.md"
    out.write_text(text)
    print(text)
    print(f"written to {out}")
    complete = all(r["rps"] is not None for r in ctx.rows) and len(ctx.rows) == (
        args.rounds * len(SERVERS) * len(WORKLOADS))
    return 0 if complete and not ctx.notes else 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--duration", type=int, default=8, help="seconds per load run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unrecorded warm-up")
    parser.add_argument("--rounds", type=int, default=3,
                        help="repeat every server this often (order rotated); medians reported")
    parser.add_argument("--workers", type=int, default=2,
                        help="worker processes of every server (nginx too)")
    parser.add_argument("--upload-threads", type=int, default=4)
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: --files 200 --duration 2 --warmup 1 --rounds 1")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    parser.add_argument("--reinstall", action="store_true", help=f"re-create {VENV}")
    args = parser.parse_args(argv)
    if args.quick:
        args.files, args.duration, args.warmup, args.rounds = 200, 2, 1, 1
    if min(args.files, args.duration, args.warmup, args.rounds, args.workers) < 1:
        parser.error("--files, --duration, --warmup, --rounds and --workers must be positive")
    if not in_venv():
        ensure_venv(args.reinstall)
        python = venv_bin("python")
        say(f"re-running with {python}")
        sys.stdout.flush()
        os.execv(python, [python, str(Path(__file__).resolve()),
                          *[a for a in argv if a != "--reinstall"]])
    # SIGTERM/SIGHUP end the run like Ctrl-C: the finally blocks stop every server started.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda s, _f: sys.exit(128 + s))
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
