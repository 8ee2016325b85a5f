#!/usr/bin/env python3
"""Render deploy/nginx/bastion.conf for the benchmark's "bastion behind the front" server.

Used by bench/adapters/bastion-front.sh each time it starts the front, so the file is always
read as it is now. Rendering follows tests/e2e/test_nginx_front.py: every ``{{placeholder}}``
outside comment lines is filled in, the site is written to ``OUT/site.conf`` and included
inside an ``http {}`` block of ``OUT/nginx.conf`` (``daemon off``, pid, error log and temp
paths under OUT, ``user root`` when run as root), so any ``http``-level directive the site file
needs is in effect exactly as in the test.

One deviation, for the benchmark only: the reference (nginx serving a static copy) and every
peer are measured over plain HTTP, so the TLS server block is served as plain HTTP too:
``listen ADDR ssl;`` becomes ``listen ADDR;``, every ``ssl_*`` directive is dropped, and the
port-80 redirect block gets a port of its own that nothing loads. Everything else (upstream
keep-alive, buffering, limits, headers) is the documented configuration.

    render_front.py --sample deploy/nginx/bastion.conf --out DIR --host 127.0.0.1 --port P \
        --nodes P1,P2 --http-port P3 --pages-dir DIR [--workers auto]

Prints the paths of the two files written.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

LISTEN_SSL = re.compile(r"^(\s*listen\s+[^;]*?)\s+ssl\b([^;]*;)")
SSL_DIRECTIVE = re.compile(r"^\s*ssl_[a-z_]+\s")


def render(sample: str, values: dict[str, str]) -> str:
    """The sample with its placeholders filled in (comment lines left as is), as the e2e test."""
    lines = []
    for number, line in enumerate(sample.splitlines(), 1):
        if not line.lstrip().startswith("#"):
            for name, value in values.items():
                line = line.replace("{{" + name + "}}", value)
            if "{{" in line:
                raise SystemExit(
                    f"render_front: placeholder left unrendered on line {number}: "
                    f"{line.strip()} (a new one? add it to bench/render_front.py)"
                )
        lines.append(line)
    return "\n".join(lines) + "\n"


def plain_http(site: str) -> tuple[str, list[str]]:
    """TLS block -> plain HTTP: ``listen X ssl;`` -> ``listen X;``, ``ssl_*`` lines dropped."""
    out, changed = [], []
    for line in site.splitlines():
        if line.lstrip().startswith("#"):
            out.append(line)
            continue
        new = LISTEN_SSL.sub(r"\1\2", line)
        if new != line:
            changed.append(f"- {line.strip()}\n+ {new.strip()}")
            line = new
        if SSL_DIRECTIVE.match(line):
            changed.append(f"- {line.strip()}")
            continue
        out.append(line)
    return "\n".join(out) + "\n", changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sample", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", required=True, type=int, help="the front's (plain HTTP) port")
    ap.add_argument(
        "--http-port", required=True, type=int, help="port of the redirect block (nothing loads it)"
    )
    ap.add_argument("--nodes", required=True, help="comma-separated ports of the bastion nodes")
    ap.add_argument(
        "--pages-dir", required=True, type=Path, help="the nodes' BASTION_FRONT_PAGES_DIR"
    )
    ap.add_argument("--workers", default="auto", help="nginx worker_processes")
    ap.add_argument("--worker-connections", type=int, default=1024)
    a = ap.parse_args(argv)
    if a.host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("render_front: loopback only")
    base_url = f"http://{a.host}:{a.port}"
    servers = "\n    ".join(
        f"server {a.host}:{port} max_fails=2 fail_timeout=10s;" for port in a.nodes.split(",")
    )
    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "temp").mkdir(exist_ok=True)
    site = render(
        a.sample.read_text(),
        {
            "server_name": a.host,
            "https_listen": f"{a.host}:{a.port}",
            "http_listen": f"{a.host}:{a.http_port}",
            # never read: the ssl_* directives are dropped below
            "certificate": str(out / "unused-cert.pem"),
            "certificate_key": str(out / "unused-key.pem"),
            "upstream_servers": servers,
            "base_url": base_url,
            # the front's page cache (proxy_cache_path), fresh at every start
            "cache_dir": str(out / "page-cache"),
            # the pages the nodes publish for nginx (BASTION_FRONT_PAGES_DIR)
            "pages_dir": str(a.pages_dir.resolve()),
        },
    )
    site, changed = plain_http(site)
    if not any(line.startswith("- listen") for line in changed):
        raise SystemExit(
            "render_front: no `listen ... ssl;` line found in the sample; "
            "update bench/render_front.py for its new form"
        )
    (out / "site.conf").write_text(site)
    (out / "plain-http.diff").write_text("\n".join(changed) + "\n")
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = out / "temp"
    (out / "nginx.conf").write_text(
        f"daemon off;\nworker_processes {a.workers};\npid {out}/nginx.pid;\n"
        f"error_log {out}/nginx-error.log warn;\n{user}"
        f"events {{ worker_connections {a.worker_connections}; }}\n"
        "http {\n"
        f"  access_log off;\n  client_body_temp_path {temp}/body;\n"
        f"  proxy_temp_path {temp}/proxy;\n  fastcgi_temp_path {temp}/fastcgi;\n"
        f"  uwsgi_temp_path {temp}/uwsgi;\n  scgi_temp_path {temp}/scgi;\n"
        f"  include {out}/site.conf;\n}}\n"
    )
    print(out / "nginx.conf")
    print(out / "site.conf")
    return 0


if __name__ == "__main__":
    sys.exit(main())
