#!/usr/bin/env python3
"""bastion against its peers in one run: the shared harness's workloads, one Markdown table.

    .venv/bin/python bench/peers.py                 # full run, 32-36 min on 2 cores
    .venv/bin/python bench/peers.py --quick         # smoke test: 1 rep, short runs (~8 min)
    .venv/bin/python bench/peers.py --only w1,w3 --reps 3 --run-id 20250101T000000

Servers (adapters of /work/shared/bench/bench.py, all on 127.0.0.1):
  nginx          the harness's nginx adapter serving a static snapshot of *bastion's* pages
                 (NGINX_SNAPSHOT_FROM=bench/adapters/bastion.sh), the reference of every ratio
  bastion        bench/adapters/bastion.sh: bastion serve --workers 2
  bastion-front  bench/adapters/bastion-front.sh: deploy/nginx/bastion.conf (TLS block served as
                 plain HTTP) in front of 1 node x 2 workers
  pypiserver     the harness's pypiserver adapter (README recipe, gunicorn -w4)

Steps (``--only`` takes any of these names, comma-separated):
  w1       W1 /simple/<project>/ (1,000 files): wrk c1 HTML, c32 HTML and PEP 691 JSON, each
           server paired with nginx in every repetition (bench.py wrk)
  w2       W2 /simple/ with 10,000 projects, c32 HTML (bench.py wrk)
  w2x100k  W2 with 100,000 projects: a separate BENCH_ROOT ($BENCH_ROOT/w2x100k) whose bastion
           data is a copy of W2's (10,000 projects uploaded through the API) plus 90,000
           projects added by bench/seed_projects.py; pypiserver gets W2's wheels plus one hard
           link of one of them per added name (it lists projects from file names); records
           under run id RUN.w2x100k
  w3       W3 twine uploads: 100 small files, then one 50 MB wheel, into an empty server;
           paired: --upload-reps repetitions, each uploading once into every server (order
           alternating)
  rss500   bastion alone: summed VmRSS of its process tree, sampled every 100 ms, during a twine
           upload of one 500 MB random-payload wheel (BASTION_MAX_FILE_SIZE = its size + 64 MiB,
           for this server only)
  w4       W4 cold installs of acme-webapp-stack (30 projects), paired: --pip-reps pip and
           --uv-runs uv repetitions, each installing once from every server (order alternating);
           then the "stall" row: --uv-runs uv installs in a row against one running server, for
           all four servers (records under run id RUN.inarow)

Every harness record goes to $BENCH_OUT/results.jsonl (default /tmp/anchors/results) under one
run id (BENCH_RUN_ID, --run-id, default a timestamp); the table is built from those records
only, printed, and written to bench/results/peers-RUN.md (the harness's own report next to it,
peers-RUN-harness.md). ``--report-only --run-id RUN`` prints the table of an earlier run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
ALONE = str(BENCH / "adapters" / "bastion.sh")
FRONT = str(BENCH / "adapters" / "bastion-front.sh")
SERVERS = ("nginx", "bastion", "bastion-front", "pypiserver")
SUTS = ("bastion", "bastion-front", "pypiserver")
ADAPTER = {"bastion": ALONE, "bastion-front": FRONT, "pypiserver": "pypiserver", "nginx": "nginx"}
STEPS = ("w1", "w2", "w2x100k", "w3", "rss500", "w4")
FRONT_BAR = 0.9  # issue 12: through the documented nginx front, ≥ 0.9× of nginx-static
PEP691 = "application/vnd.pypi.simple.v1+json"


def log(*a: object) -> None:
    print(time.strftime("%H:%M:%S"), "peers:", *a, file=sys.stderr, flush=True)


class Harness:
    """Runs /work/shared/bench/bench.py (read-only) with one environment per BENCH_ROOT."""

    def __init__(self, harness: Path, root: Path, out: Path, run_id: str) -> None:
        self.harness, self.root, self.out, self.run_id = harness, root, out, run_id
        self.python = shutil.which("python3") or sys.executable

    def env(
        self, root: Path | None = None, run_id: str | None = None, **extra: str
    ) -> dict[str, str]:
        root = root or self.root
        env = dict(os.environ)
        env.update(
            BENCH_ROOT=str(root),
            BENCH_DATA=str(root / "data"),
            BENCH_OUT=str(self.out),
            BENCH_RUN_ID=run_id or self.run_id,
            BENCH_TOOLS_VENV=str(self.root / "venv-tools"),
            NGINX_SNAPSHOT_FROM=ALONE,
        )
        env.update(extra)
        return env

    def __call__(
        self,
        *args: str,
        root: Path | None = None,
        run_id: str | None = None,
        check: bool = True,
        **extra: str,
    ) -> int:
        cmd = [self.python, str(self.harness / "bench.py"), *args]
        log(
            "$",
            " ".join(cmd[1:])
            .replace(str(self.harness) + "/", "")
            .replace(str(BENCH) + "/", "bench/"),
        )
        rc = subprocess.call(cmd, env=self.env(root, run_id, **extra))
        if rc and check:
            raise SystemExit(f"peers: bench.py {args[0]} failed with status {rc}")
        return rc


# ------------------------------------------------------------------------------------ steps


def ensure_ready(h: Harness) -> None:
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"peers: {tool} is missing: apt-get install -y wrk nginx")
    h("install", "pypiserver", "nginx", ALONE, FRONT)
    manifest = h.root / "data" / "manifest.json"
    have = json.loads(manifest.read_text()) if manifest.exists() else {}
    missing = [w for w in ("w1", "w2", "w3", "w4") if w not in have]
    if missing:
        # gen_dists.py directly: `bench.py gen` passes no options through (argparse REMAINDER)
        cmd = [
            h.python,
            str(h.harness / "gen_dists.py"),
            "--out",
            str(h.root / "data"),
            "--only",
            ",".join(missing),
        ]
        log("$", "gen_dists.py", *cmd[2:])
        subprocess.run(cmd, env=h.env(), check=True, stdout=sys.stderr)


def prepare(h: Harness, workload: str, force_bastion: bool, root: Path | None = None) -> None:
    """bastion's data (cached by the harness), then the front's copy of it and nginx's snapshot.

    nginx and the front are prepared again on every run: a cached snapshot might be of another
    server (the harness's marker does not say which), and the front copies bastion's data.
    """
    h("prepare", ALONE, workload, *(["--force"] if force_bastion else []), root=root)
    h("prepare", FRONT, workload, "--force", root=root)
    h("prepare", "nginx", workload, "--force", root=root)
    bastion_json_in_snapshot(h, workload, root or h.root)


def bastion_json_in_snapshot(h: Harness, workload: str, root: Path) -> None:
    """Replace the snapshot's index.json files by bastion's own PEP 691 answers.

    The harness's snapshot derives each index.json from the HTML page (fewer fields than
    bastion sends); nginx-static should serve a copy of bastion's own pages in both forms.
    """
    www = root / "state" / "nginx" / workload / "www"
    pages = sorted(www.rglob("index.json"))
    if not pages:
        return
    bench = load_harness_module(h, "bench")
    bench.ROOT, bench.DATA = str(root), str(root / "data")
    s = bench.Server(ALONE, workload)
    s.prepare()
    s.start()
    try:
        base = s.urls["SIMPLE_URL"]
        simple_path = (
            (www / ".simple_path").read_text().strip()
            if (www / ".simple_path").exists()
            else "/simple/"
        )
        for page in pages:
            rel = page.parent.relative_to(www).as_posix() + "/"
            url = base + rel[len(simple_path.lstrip("/")) :]
            status, ctype, body = bench.fetch(url, PEP691)
            if status != 200 or not ctype.startswith(PEP691):
                raise SystemExit(f"peers: {url} answered {status} {ctype} to a PEP 691 request")
            page.write_bytes(body)
        log(f"nginx snapshot of {workload}: {len(pages)} index.json replaced by bastion's own JSON")
    finally:
        s.stop()


def wrk_opts(a: argparse.Namespace) -> list[str]:
    return [
        "--reps",
        str(a.reps),
        "--duration",
        str(a.duration),
        "--warmup",
        str(a.warmup),
        "--pause",
        str(a.pause),
    ]


def wrk_vs_nginx(
    h: Harness,
    a: argparse.Namespace,
    sut: str,
    workload: str,
    conc: str,
    *extra: str,
    root: Path | None = None,
    run_id: str | None = None,
) -> None:
    """One harness wrk run of ``sut`` paired with nginx-static (the reference of every ratio)."""
    h(
        "wrk", "--server", ADAPTER[sut], "--ref", "nginx", "--workload", workload,
        "--conc", conc, *extra, *wrk_opts(a), root=root, run_id=run_id,
    )  # fmt: skip


def step_w1(h: Harness, a: argparse.Namespace) -> None:
    prepare(h, "w1", a.force_prepare)
    # Two harness runs per server: c1 HTML only, then c32 HTML and JSON (the table has no c1
    # JSON row; one run with --conc 1,32 would spend a quarter of W1's time on it).
    for sut in SUTS:
        wrk_vs_nginx(h, a, sut, "w1", "1", "--no-json")
        wrk_vs_nginx(h, a, sut, "w1", "32")


def step_w2(h: Harness, a: argparse.Namespace) -> None:
    prepare(h, "w2", a.force_prepare)
    for sut in SUTS:
        wrk_vs_nginx(h, a, sut, "w2", "32", "--no-json")


def step_w2x100k(h: Harness, a: argparse.Namespace) -> None:
    total = a.w2_projects
    root = h.root / "w2x100k"
    src_state = h.root / "state" / "bastion" / "w2"
    if not (src_state / ".prepared").exists() or a.force_prepare:
        h("prepare", ALONE, "w2", *(["--force"] if a.force_prepare else []))
    (root / "state" / "bastion").mkdir(parents=True, exist_ok=True)
    for venv in ("venv-pypiserver", "venv-tools", "venv-bastion"):  # adapters look under BENCH_ROOT
        link, target = root / venv, h.root / venv
        if target.exists() and not link.exists():
            link.symlink_to(target)
    dst_state = root / "state" / "bastion" / "w2"
    names_file = root / "seeded-names.txt"
    stamp = f"{(src_state / '.prepared').stat().st_mtime} {total}\n"
    if (
        (dst_state / ".seeded").exists()
        and (dst_state / ".seeded").read_text() == stamp
        and names_file.exists()
    ):
        log(f"w2x100k: bastion data with {total:,} projects already seeded")
    else:
        shutil.rmtree(dst_state, ignore_errors=True)
        (dst_state / "data").mkdir(parents=True)
        for item in (src_state / "data").iterdir():  # blobs (written once) hard-linked
            if item.is_dir():
                shutil.copytree(
                    item,
                    dst_state / "data" / item.name,
                    symlinks=True,
                    copy_function=os.link if item.name == "files" else shutil.copy2,
                )
            else:
                shutil.copy2(item, dst_state / "data" / item.name)
        shutil.copy2(src_state / "token", dst_state / "token")
        have = sum(1 for _ in (h.root / "data" / "w2").iterdir())
        add = max(0, total - have)
        log(f"w2x100k: copying bastion's W2 data ({have:,} projects) and adding {add:,}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
        env.update(
            BASTION_DATA_DIR=str(dst_state / "data"), DJANGO_SETTINGS_MODULE="bastion.settings"
        )
        subprocess.run(
            [
                sys.executable,
                str(BENCH / "seed_projects.py"),
                "--add",
                str(add),
                "--names-out",
                str(names_file),
            ],
            env=env,
            check=True,
            cwd=dst_state,
            stdout=sys.stderr,
        )
        (dst_state / ".prepared").write_text("seeded by bench/peers.py\n")
        (dst_state / ".seeded").write_text(stamp)
    # BENCH_DATA of this root only needs W2's manifest entry: bastion's data is seeded above,
    # nginx snapshots bastion, and pypiserver's package directory is made here (its adapter's
    # `cp -l DATA/w2/* ...` would exceed the argument-length limit with 100,000 files): W2's
    # wheels plus one hard link of one of them per added name, as pypiserver lists projects
    # from file names alone.
    data = root / "data"
    data.mkdir(exist_ok=True)
    manifest = json.loads((h.root / "data" / "manifest.json").read_text())
    (data / "manifest.json").write_text(json.dumps({"w2": manifest["w2"]}, indent=2))
    pstate = root / "state" / "pypiserver" / "w2"
    if not (pstate / ".seeded").exists() or (pstate / ".seeded").read_text() != stamp:
        shutil.rmtree(pstate, ignore_errors=True)
        packages = pstate / "packages"
        packages.mkdir(parents=True)
        wheels = sorted((h.root / "data" / "w2").iterdir())
        for f in wheels:
            os.link(f, packages / f.name)
        for i, name in enumerate(names_file.read_text().split()):  # < 65,000 links per inode
            os.link(
                wheels[i % len(wheels)],
                packages / f"{name.replace('-', '_')}-1.0.0-py3-none-any.whl",
            )
        (pstate / ".prepared").write_text("made by bench/peers.py\n")
        (pstate / ".seeded").write_text(stamp)
    run_id = h.run_id + ".w2x100k"
    h("prepare", FRONT, "w2", "--force", root=root, run_id=run_id)
    h("prepare", "nginx", "w2", "--force", root=root, run_id=run_id)
    for sut in SUTS:
        wrk_vs_nginx(h, a, sut, "w2", "32", "--no-json", root=root, run_id=run_id)


def step_w3(h: Harness, a: argparse.Namespace) -> None:
    """Paired like W4: every repetition uploads once into each server (each fresh), in an
    order that alternates. In blocks of one server, pypiserver's 100 small files took 0.74 s
    and 1.00 s in two repetitions back to back, which moved bastion's ratio by a third."""
    for rep in range(a.upload_reps):
        for sut in SUTS if rep % 2 == 0 else tuple(reversed(SUTS)):
            h("upload", "--server", ADAPTER[sut], "--reps", "1")


def step_w4(h: Harness, a: argparse.Namespace) -> None:
    """Paired, as W1 is: every repetition installs once from each server, in an order that
    alternates, so a drift of the machine weighs on all servers alike (installs in blocks of
    one server gave uv ratios from 1.1x to 1.3x for the same code). Then the stall check:
    uv installs in a row against one running server, under run id RUN.inarow."""
    prepare(h, "w4", a.force_prepare)
    h("prepare", "pypiserver", "w4")
    for tool, reps in (("pip", a.pip_reps), ("uv", a.uv_runs)):
        for rep in range(reps):
            for srv in SERVERS if rep % 2 == 0 else tuple(reversed(SERVERS)):
                h("pipinstall", "--server", ADAPTER[srv], "--tools", tool, "--reps", "1")
    for srv in SERVERS:
        h(
            "pipinstall",
            "--server",
            ADAPTER[srv],
            "--tools",
            "uv",
            "--reps",
            str(a.uv_runs),
            run_id=f"{h.run_id}.inarow",
        )


def load_harness_module(h: Harness, name: str):
    for k, v in h.env().items():
        if k.startswith("BENCH_"):
            os.environ[k] = v
    spec = importlib.util.spec_from_file_location(name, h.harness / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def step_rss500(h: Harness, a: argparse.Namespace) -> None:
    bench = load_harness_module(h, "bench")
    gen = load_harness_module(h, "gen_dists")
    mb = a.upload_mb
    big_dir = h.root / "data-extra" / f"big{mb}"
    wheels = sorted(big_dir.glob("*.whl")) if big_dir.exists() else []
    if not wheels:
        log(f"rss500: writing a {mb} MB random-payload wheel to {big_dir}")
        big_dir.mkdir(parents=True, exist_ok=True)
        import random

        chunks = random.Random(mb)  # randbytes of 500 MB at once overflows: 1 MB at a time
        payload = b"".join(chunks.randbytes(1024 * 1024) for _ in range(mb))
        gen.build_wheel(
            str(big_dir),
            "bigdata-rss-probe",
            "1.0.0",
            "Wheel with a large incompressible payload",
            payload=("payload.bin", payload),
        )
        del payload
        wheels = sorted(big_dir.glob("*.whl"))
    wheel = wheels[0]
    size = wheel.stat().st_size
    os.environ["BASTION_MAX_FILE_SIZE"] = str(size + 64 * 1024 * 1024)  # this run only
    try:
        s = bench.Server(ALONE, "w3")
        s.prepare(force=True)
        s.start()
    finally:
        del os.environ["BASTION_MAX_FILE_SIZE"]
    try:
        info = s.info()
        bench.fetch(s.urls["SIMPLE_URL"])  # one request per worker path warms the app
        bench.fetch(s.urls["SIMPLE_URL"])
        pid = s.proc.pid

        def tree_rss() -> int:
            return sum(bench.status_kb(p, "VmRSS") for p in bench.proc_tree(pid))

        time.sleep(1.0)
        before = [tree_rss()]
        for _ in range(9):
            time.sleep(0.1)
            before.append(tree_rss())
        baseline = max(before)
        samples: list[tuple[float, int]] = []
        stop = threading.Event()

        def sample() -> None:
            t0 = time.time()
            while not stop.is_set():
                samples.append((time.time() - t0, tree_rss()))
                stop.wait(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        twine = str(h.root / "venv-tools" / "bin" / "twine")
        cmd = [
            twine,
            "upload",
            "--disable-progress-bar",
            "--repository-url",
            s.urls["UPLOAD_URL"],
            "-u",
            s.urls["UPLOAD_USER"],
            "-p",
            s.urls["UPLOAD_PASS"],
            str(wheel),
        ]
        sampler.start()
        t = time.time()
        r = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=1800,
            env=dict(os.environ, TWINE_NON_INTERACTIVE="1"),
        )
        dt = time.time() - t
        time.sleep(0.5)
        stop.set()
        sampler.join()
        peak = max(v for _, v in samples)
        _, _, body = bench.fetch(s.urls["SIMPLE_URL"])
        listed = "bigdata-rss-probe" in body.decode()
        rec = bench.record(
            {
                "kind": "rss_upload",
                "server": s.name,
                "bytes": size,
                "seconds": round(dt, 2),
                "rc": r.returncode,
                "listed_after": listed,
                "rss_baseline_kb": baseline,
                "rss_peak_kb": peak,
                "rss_growth_kb": peak - baseline,
                "samples": len(samples),
                "max_file_size": size + 64 * 1024 * 1024,
                **info,
                **({"err": (r.stdout + r.stderr)[-1500:]} if r.returncode else {}),
            }
        )
        log(
            f"rss500: {size / 2**20:.0f} MB in {dt:.1f}s rc={r.returncode} listed={listed} "
            f"RSS {baseline / 1024:.0f} -> {peak / 1024:.0f} MiB "
            f"(+{rec['rss_growth_kb'] / 1024:.1f})"
        )
    finally:
        s.stop()


# ------------------------------------------------------------------------------------ table


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def load(out: Path, run_ids: set[str]) -> list[dict]:
    path = out / "results.jsonl"
    rows = []
    if path.exists():
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                if r.get("run_id") in run_ids:
                    rows.append(r)
    return rows


def wrk_cell(rows, run_id, workload, conc, accept, server):
    """Median req/s, p99, CPU ms/req, max RSS; ratio = median of per-rep ratios to nginx."""
    wrk = [
        r
        for r in rows
        if r["kind"] == "wrk"
        and "rps" in r
        and r["run_id"] == run_id
        and r["workload"] == workload
        and r["conc"] == conc
        and r["accept"] == accept
    ]
    if server == "nginx":
        mine = [r for r in wrk if r["role"] == "ref"]
        ratios = [1.0] if mine else []
    else:
        mine = [r for r in wrk if r["role"] == "sut" and r["server"] == server]
        ratios = []
        for r in mine:  # the reference run of the same repetition (nearest in time if repeated)
            refs = [
                x
                for x in wrk
                if x["role"] == "ref" and x["pair"] == server and x["rep"] == r["rep"]
            ]
            if refs:
                ref = min(refs, key=lambda x: abs(x["ts"] - r["ts"]))
                ratios.append(r["rps"] / ref["rps"])
    if not mine:
        return None
    return {
        "n": len(mine),
        "rps": med([r["rps"] for r in mine]),
        "p99": med([r.get("p99_ms") for r in mine]),
        "cpu": med([r.get("server_cpu_ms_per_req") for r in mine]),
        "rss": max(r.get("rss_peak_sampled_kb", 0) for r in mine) / 1024,
        "ratio": med(ratios),
        "errors": sum(r.get("socket_errors", 0) + r.get("non2xx", 0) for r in mine),
    }


def probe_json(rows, run_id, server):
    ps = [
        r
        for r in rows
        if r["kind"] == "probe"
        and r["run_id"] == run_id
        and r["server"] == server
        and r["workload"] == "w1"
    ]
    return ps[-1]["pep691"] if ps else None


def f_rps(x):
    if x == 0:
        return "0 req/s: no response completed within a run"
    return f"{x:,.0f} req/s" if x >= 100 else f"{x:,.1f} req/s"


def fmt_ratio(r):
    return f"{r:.2f}×" if r >= 0.095 else f"{r:.2g}×"


def fmt_wrk(c, *, p99=False, rss=False, ratio=True):
    if c is None:
        return "–"
    parts = [f_rps(c["rps"])]
    if p99 and c["p99"]:
        parts.append(f"p99 {c['p99']:.1f} ms")
    if rss:
        parts.append(f"RSS {c['rss']:.0f} MiB")
    if c["errors"]:
        parts.append(f"{c['errors']} errors")
    head = (
        (fmt_ratio(c["ratio"]) if c["ratio"] is not None and c["ratio"] != 1.0 else "1")
        if ratio
        else ""
    )
    return f"{head} ({', '.join(parts)})" if head else ", ".join(parts)


def mark(ok):
    return "–" if ok is None else ("yes" if ok else "**no**")


def build_table(rows: list[dict], run_id: str, meta: dict) -> str:
    x100 = run_id + ".w2x100k"
    md = []
    md.append(
        f"bastion vs peers, run `{run_id}` ({meta.get('mode', '')}). Ratios: median over "
        "repetitions of (server req/s / nginx-static req/s in the same repetition); "
        "nginx-static serves a static snapshot of bastion's own pages."
    )
    md.append("")
    md.append(
        "| workload | nginx-static | bastion alone | bastion behind front | pypiserver | goal "
        "| met (alone / front) |"
    )
    md.append("|---|---|---|---|---|---|---|")

    def row(label, cells, goal, met):
        md.append(f"| {label} | " + " | ".join(cells) + f" | {goal} | {met} |")

    def ratio_ok(c, limit=0.5):
        return None if c is None or c["ratio"] is None else c["ratio"] >= limit

    # W1 HTML c1
    cs = {s: wrk_cell(rows, run_id, "w1", 1, "html", s) for s in SERVERS}
    row(
        "W1 `/simple/<p>/`, 1,000 files, HTML, c1",
        [fmt_wrk(cs[s]) for s in SERVERS],
        "≥ 0.5× alone; front ≥ 0.9×",
        f"{mark(ratio_ok(cs['bastion']))} / {mark(ratio_ok(cs['bastion-front'], FRONT_BAR))}",
    )
    # W1 HTML c32 + p99
    cs32 = {s: wrk_cell(rows, run_id, "w1", 32, "html", s) for s in SERVERS}
    a, fr = cs32["bastion"], cs32["bastion-front"]
    front_vs_alone = (fr["ratio"] / a["ratio"]) if a and fr and a["ratio"] and fr["ratio"] else None
    cells = [fmt_wrk(cs32[s], p99=True) for s in SERVERS]
    if front_vs_alone is not None:
        cells[2] += f"; {front_vs_alone:.2f}× alone"
    ok_alone = None if a is None else (a["ratio"] >= 0.5 and (a["p99"] or 1e9) <= 25)
    # The front's bar is issue 12's: ≥ 0.9× of nginx-static (not of bastion alone).
    ok_front = None if fr is None else (fr["ratio"] >= FRONT_BAR and (fr["p99"] or 1e9) <= 25)
    row(
        "W1 same, c32 (+ p99 latency)",
        cells,
        "≥ 0.5× alone; p99 ≤ 25 ms; front ≥ 0.9×",
        f"{mark(ok_alone)} / {mark(ok_front)}",
    )
    # W1 JSON c32
    cj = {s: wrk_cell(rows, run_id, "w1", 32, "json", s) for s in SERVERS}
    cells = []
    for s in SERVERS:
        if cj[s] is None and s != "nginx" and probe_json(rows, run_id, s) is False:
            cells.append("not served")
        else:
            cells.append(fmt_wrk(cj[s]))
    row(
        "W1 JSON, c32",
        cells,
        "≥ 0.5× alone; front ≥ 0.9×",
        f"{mark(ratio_ok(cj['bastion']))} / {mark(ratio_ok(cj['bastion-front'], FRONT_BAR))}",
    )
    # CPU per request, W1 c32 HTML
    cells = [
        ("–" if cs32[s] is None or cs32[s]["cpu"] is None else f"{cs32[s]['cpu']:.3f}")
        for s in SERVERS
    ]
    cpu = lambda s: None if cs32[s] is None or cs32[s]["cpu"] is None else cs32[s]["cpu"] <= 0.5  # noqa: E731
    row(
        "server CPU per request (W1, c32), ms",
        cells,
        "≤ 0.5 ms",
        f"{mark(cpu('bastion'))} / {mark(cpu('bastion-front'))}",
    )
    # Peak RSS under W1
    peak = {}
    for s in SERVERS:
        w1 = [
            r
            for r in rows
            if r["kind"] == "wrk"
            and r["run_id"] == run_id
            and r["workload"] == "w1"
            and (r["role"] == "ref" if s == "nginx" else (r["role"] == "sut" and r["server"] == s))
        ]
        peak[s] = (
            (
                max(r.get("rss_peak_sampled_kb", 0) for r in w1) / 1024,
                max(r.get("nprocs", 0) for r in w1),
            )
            if w1
            else None
        )
    cells = [
        "–" if peak[s] is None else f"{peak[s][0]:.0f} MiB ({peak[s][1]} processes)"
        for s in SERVERS
    ]
    pp = peak["pypiserver"][0] if peak["pypiserver"] else None
    rss_ok = lambda s: None if peak[s] is None or pp is None else peak[s][0] <= pp  # noqa: E731
    row(
        "peak RSS under the W1 read load (summed VmRSS of the tree)",
        cells,
        "≤ pypiserver's",
        f"{mark(rss_ok('bastion'))} / {mark(rss_ok('bastion-front'))}",
    )
    # W2 10k and 100k
    c10 = {s: wrk_cell(rows, run_id, "w2", 32, "html", s) for s in SERVERS}
    row(
        f"W2 `/simple/`, {meta.get('w2_projects_small', 10000):,} projects, c32",
        [fmt_wrk(c10[s], rss=True) for s in SERVERS],
        "≥ 0.5× alone; front ≥ 0.9×",
        f"{mark(ratio_ok(c10['bastion']))} / {mark(ratio_ok(c10['bastion-front'], FRONT_BAR))}",
    )
    c100 = {s: wrk_cell(rows, x100, "w2", 32, "html", s) for s in SERVERS}

    def indep(s):
        if c10[s] is None or c100[s] is None:
            return None
        return c100[s]["rss"] <= 1.2 * c10[s]["rss"]

    def ok100(s):
        r, i = ratio_ok(c100[s], FRONT_BAR if s == "bastion-front" else 0.5), indep(s)
        return None if r is None or i is None else (r and i)

    cells = [fmt_wrk(c100[s], rss=True) for s in SERVERS]
    for i, s in enumerate(SERVERS):
        if c10[s] and c100[s] and c10[s]["rss"]:
            cells[i] += f"; RSS {c100[s]['rss'] / c10[s]['rss']:.2f}× the 10,000-project run"
    row(
        f"W2 `/simple/`, {meta.get('w2_projects', 100000):,} projects, c32",
        cells,
        "≥ 0.5× alone (front ≥ 0.9×), memory independent of count (taken as: peak RSS ≤ 1.2× W2 "
        "at 10,000)",
        f"{mark(ok100('bastion'))} / {mark(ok100('bastion-front'))}",
    )
    # W4
    ins = [r for r in rows if r["kind"] == "install" and r["run_id"] == run_id]

    def inst(s, tool):
        rs = [r for r in ins if r["server"] == s and r["tool"] == tool]
        ok = [r["seconds"] for r in rs if r["rc"] == 0 and r["installed"] == r["expected"]]
        return (med(ok), len(rs), len(rs) - len(ok)) if rs else None

    base = {t: inst("nginx", t) for t in ("pip", "uv")}
    cells, oks = [], {}
    for s in SERVERS:
        parts, ok = [], True
        for t in ("pip", "uv"):
            v = inst(s, t)
            if v is None or v[0] is None:
                parts.append(f"{t} –" + (f" ({v[2]} failed)" if v else ""))
                ok = None
                continue
            b = base[t][0] if base[t] else None
            ratio = v[0] / b if b else None
            parts.append(
                f"{t} {v[0]:.2f} s"
                + (f" ({ratio:.2f}×)" if ratio and s != "nginx" else " (1)" if s == "nginx" else "")
                + (f" [{v[2]} of {v[1]} failed]" if v[2] else "")
            )
            if ok is not None and ratio is not None:
                ok = ok and ratio <= 1.1 and not v[2]
        cells.append(" / ".join(parts))
        oks[s] = ok
    row(
        "W4 cold install of 30 packages, pip / uv (median time of paired runs, ratio to nginx)",
        cells,
        "≤ 1.1×",
        f"{mark(oks['bastion'])} / {mark(oks['bastion-front'])}",
    )
    # uv runs in a row (one server process each)
    inarow = [r for r in rows if r["kind"] == "install" and r["run_id"] == run_id + ".inarow"]
    cells, stall = [], {}
    for s in SERVERS:
        rs = sorted(
            (r for r in inarow if r["server"] == s and r["tool"] == "uv"), key=lambda r: r["ts"]
        )
        times = [r["seconds"] for r in rs]
        if not times:
            cells.append("–")
            stall[s] = None
            continue
        m = statistics.median(times)
        flagged = [i for i, t in enumerate(times) if t > 3 * m]
        failed = [i for i, r in enumerate(rs) if r["rc"] != 0 or r["installed"] != r["expected"]]
        stall[s] = not flagged and not failed
        txt = ", ".join(f"**{t:.2f}**" if i in flagged else f"{t:.2f}" for i, t in enumerate(times))
        cells.append(
            f"{txt} s; median {m:.2f}; "
            + (f"STALL: runs {[i + 1 for i in flagged]}" if flagged else "no stall")
            + (f"; failed: runs {[i + 1 for i in failed]}" if failed else "")
        )
    row(
        f"uv cold install, {meta.get('uv_runs', 10)} runs in a row "
        "(each time; > 3× median = stall)",
        cells,
        "no stall",
        f"{mark(stall['bastion'])} / {mark(stall['bastion-front'])}",
    )
    # W3
    up = [r for r in rows if r["kind"] == "upload" and r["run_id"] == run_id]

    def upl(s, key):
        rs = [r for r in up if r["server"] == s]
        if not rs:
            return None
        if not any(r.get("supported") for r in rs):
            return "unsupported"
        ok = [r[f"{key}_s"] for r in rs if r.get(f"{key}_rc") == 0]
        return (med(ok), len(rs), len(rs) - len(ok))

    for key, label, limit in (
        ("small100", "W3 upload of 100 small files", 1.5),
        ("big50mb", "W3 one 50 MB wheel", 2.0),
    ):
        pv = upl("pypiserver", key)
        pbase = pv[0] if isinstance(pv, tuple) else None
        cells, oks = [], {}
        for s in SERVERS:
            v = upl(s, key)
            if s == "nginx":
                cells.append("– (static)")
                continue
            if v is None or v == "unsupported" or v[0] is None:
                cells.append(
                    "–"
                    if v is None
                    else "not supported"
                    if v == "unsupported"
                    else f"failed ({v[2]} of {v[1]})"
                )
                oks[s] = None if v is None else False
                continue
            ratio = v[0] / pbase if pbase else None
            cells.append(
                f"{v[0]:.2f} s"
                + (" (1)" if s == "pypiserver" else f" ({ratio:.2f}×)" if ratio else "")
                + (f" [{v[2]} of {v[1]} failed]" if v[2] else "")
            )
            oks[s] = None if ratio is None else (ratio <= limit and not v[2])
        row(
            f"{label} (median time, ratio to pypiserver)",
            cells,
            f"≤ {limit:g}×",
            f"{mark(oks.get('bastion'))} / {mark(oks.get('bastion-front'))}",
        )
    # RSS growth during the big upload
    rr = [r for r in rows if r["kind"] == "rss_upload" and r["run_id"] == run_id]
    cells = ["–", "–", "–", "–"]
    ok = None
    if rr:
        r = rr[-1]
        g = r["rss_growth_kb"] / 1024
        cells[1] = (
            f"+{g:.1f} MiB ({r['rss_baseline_kb'] / 1024:.0f} → {r['rss_peak_kb'] / 1024:.0f} MiB; "
            f"{r['bytes'] / 2**20:.0f} MB in {r['seconds']:.1f} s"
            + ("" if r["rc"] == 0 and r["listed_after"] else "; UPLOAD FAILED")
            + ")"
        )
        ok = g <= 50 and r["rc"] == 0 and r["listed_after"]
    mb = round(rr[-1]["bytes"] / 2**20) if rr else meta.get("upload_mb", 500)
    row(f"server RSS growth during a {mb} MB upload (bastion)", cells, "≤ 50 MB", f"{mark(ok)} / –")
    md.append("")
    versions = {}
    for r in rows:
        if "version" in r and r.get("server"):
            versions[r["server"]] = (r["version"], r.get("describe", ""))
    if versions:
        md.append("| server | version | configuration |")
        md.append("|---|---|---|")
        for s in SERVERS:
            if s in versions:
                md.append(f"| {s} | {versions[s][0]} | {versions[s][1]} |")
        md.append("")
    if meta.get("settings"):
        md.append(meta["settings"])
    return "\n".join(md)


# ------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 1 rep, 3 s wrk runs, 1 upload/pip rep, 3 uv runs, "
        "30,000 projects for the large W2, a 200 MB upload",
    )
    ap.add_argument("--only", default=",".join(STEPS), help="subset of " + ",".join(STEPS))
    ap.add_argument("--reps", type=int, help="wrk repetitions of W1/W2 (default 5; quick 1)")
    ap.add_argument("--duration", type=int, help="seconds per wrk run (default 10; quick 3)")
    ap.add_argument("--warmup", type=int, help="seconds of wrk warm-up (default 3; quick 1)")
    ap.add_argument("--pause", type=float, default=1.0)
    ap.add_argument("--upload-reps", type=int, help="W3 repetitions (default 4; quick 1)")
    ap.add_argument("--pip-reps", type=int, help="W4 pip installs per server (default 3; quick 1)")
    ap.add_argument(
        "--uv-runs", type=int, help="uv installs in a row per server (default 10; quick 3)"
    )
    ap.add_argument(
        "--w2-projects", type=int, help="projects of the large W2 (default 100000; quick 30000)"
    )
    ap.add_argument("--upload-mb", type=int, help="size of the RSS upload (default 500; quick 200)")
    ap.add_argument(
        "--run-id", default=os.environ.get("BENCH_RUN_ID") or time.strftime("%Y%m%dT%H%M%S")
    )
    ap.add_argument(
        "--bench-root", type=Path, default=Path(os.environ.get("BENCH_ROOT", "/tmp/anchors"))
    )
    ap.add_argument(
        "--harness", type=Path, default=Path(os.environ.get("BENCH_HARNESS", "/work/shared/bench"))
    )
    ap.add_argument(
        "--force-prepare",
        action="store_true",
        help="load bastion's data again (after changing its storage or rendering)",
    )
    ap.add_argument("--report-only", action="store_true", help="only print the table of --run-id")
    a = ap.parse_args(argv)
    q = a.quick
    a.reps = a.reps or (1 if q else 5)
    a.duration = a.duration or (3 if q else 10)
    a.warmup = a.warmup if a.warmup is not None else (1 if q else 3)
    a.upload_reps = a.upload_reps or (1 if q else 4)
    a.pip_reps = a.pip_reps or (1 if q else 3)
    a.uv_runs = a.uv_runs or (3 if q else 10)
    a.w2_projects = a.w2_projects or (30_000 if q else 100_000)
    a.upload_mb = a.upload_mb or (200 if q else 500)
    steps = [s.strip().lower() for s in a.only.split(",") if s.strip()]
    unknown = set(steps) - set(STEPS)
    if unknown:
        ap.error(f"unknown step(s) {sorted(unknown)}; choose from {','.join(STEPS)}")
    root = a.bench_root.resolve()
    out = Path(os.environ.get("BENCH_OUT", root / "results"))
    h = Harness(a.harness, root, out, a.run_id)
    settings = (
        f"Settings: wrk {a.reps} rep(s) x {a.duration} s (warm-up {a.warmup} s), wrk -t1 at "
        f"c1 and -t2 at c32; W3 {a.upload_reps} rep(s); W4 {a.pip_reps} pip and {a.uv_runs} uv "
        "repetitions, each server once per repetition (order alternating), then uv "
        f"{a.uv_runs} runs in a row per server for the stall row; large W2: "
        f"{a.w2_projects:,} projects; RSS upload {a.upload_mb} MB; bastion-front = "
        "deploy/nginx/bastion.conf with its TLS block served as plain HTTP (its nodes and "
        "workers: the configuration table). Records: "
        f"{out}/results.jsonl, run ids `{a.run_id}` and `{a.run_id}.w2x100k`."
    )
    meta = {
        "mode": "quick" if q else "full",
        "w2_projects": a.w2_projects,
        "uv_runs": a.uv_runs,
        "upload_mb": a.upload_mb,
        "settings": settings,
    }
    started = time.time()
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    meta_file = results / f"peers-{a.run_id}.meta.json"
    if meta_file.exists():  # an earlier part of the same run (or --report-only)
        old = json.loads(meta_file.read_text())
        if a.report_only:
            meta = old
        else:
            meta["timings"] = old.get("timings", {})
    if not a.report_only:
        log(f"run id {a.run_id}; steps {','.join(steps)}; BENCH_ROOT={root}")
        ensure_ready(h)
        with open(h.root / "data" / "manifest.json") as f:
            meta["w2_projects_small"] = json.load(f)["w2"]["projects"]
        timings = meta.setdefault("timings", {})
        for step in STEPS:
            if step in steps:
                t = time.time()
                log(f"--- {step}")
                globals()[f"step_{step}"](h, a)
                timings[step] = time.time() - t
                log(f"--- {step} done in {timings[step] / 60:.1f} min")
                meta_file.write_text(json.dumps(meta, indent=2))
    if meta.get("timings"):
        meta["settings"] = (
            meta["settings"].split(" Step times:")[0]
            + " Step times: "
            + ", ".join(f"{k} {v / 60:.1f} min" for k, v in meta["timings"].items())
            + f"; total {sum(meta['timings'].values()) / 60:.1f} min."
        )
    rows = load(out, {a.run_id, a.run_id + ".w2x100k", a.run_id + ".inarow"})
    if not rows:
        raise SystemExit(f"peers: no records of run {a.run_id} in {out}/results.jsonl")
    table = build_table(rows, a.run_id, meta)
    print(table, flush=True)
    (results / f"peers-{a.run_id}.md").write_text(table + "\n")
    rep = subprocess.run(
        [
            h.python,
            str(h.harness / "bench.py"),
            "report",
            "--run-id",
            a.run_id,
            "--run-id",
            a.run_id + ".w2x100k",
        ],
        env=h.env(),
        capture_output=True,
        text=True,
    )
    if rep.returncode == 0:
        (results / f"peers-{a.run_id}-harness.md").write_text(rep.stdout)
    log(
        f"table: {results / f'peers-{a.run_id}.md'} (harness report: peers-{a.run_id}-harness.md); "
        f"{(time.time() - started) / 60:.1f} min"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
