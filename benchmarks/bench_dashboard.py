"""Dashboard speed: a 300-step run page in the browser, and server time with 5,000 runs in the store.

    .nox/dashboard/bin/python benchmarks/bench_dashboard.py [--repeat N]

Targets (issue 14): a generated 300-step pipeline's run page shows its DAG
within 2 s of navigation (measured in Chromium, driven by Playwright); with
5,000 runs in the store, the first runs page and the 300-step run page each
take under 300 ms of server time (the ``Server-Timing`` header each page
carries: the handler's time, queries and rendering included).

The store is real: the 300-step pipeline runs once on the local
orchestrator, then 4,999 more runs (three step runs each) are written into
its SQLite file, and ``conveyor ui`` serves it on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

WIDE = """
from conveyor import pipeline, step


@step
def source(i: int) -> int:
    return i


@step
def combine(a: int, b: int) -> int:
    return a + b


@pipeline(name="wide", enable_cache=False)
def wide(layers: int = 30, width: int = 10) -> None:
    row = [source(i) for i in range(width)]
    for _ in range(layers - 1):
        row = [combine(row[i], row[(i + 1) % width]) for i in range(width)]


if __name__ == "__main__":
    wide()
"""

CHROMIUM = os.environ.get("CONVEYOR_CHROMIUM", "/usr/bin/chromium")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fill_runs(db: Path, total: int) -> tuple[str, str]:
    """Copy the one real run into ``total - 1`` more (3 step runs each); returns the real run's name and a step of it."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{db}")
    meta = sa.MetaData()
    runs = sa.Table("pipeline_runs", meta, autoload_with=engine)
    steps = sa.Table("step_runs", meta, autoload_with=engine)
    with engine.begin() as conn:
        real = conn.execute(sa.select(runs)).mappings().one()
        some_steps = conn.execute(sa.select(steps).where(steps.c.run_id == real["id"]).limit(3)).mappings().all()
        middle = conn.execute(
            sa.select(steps.c.step_id)
            .where(steps.c.run_id == real["id"])
            .order_by(steps.c.started)
            .offset(150)
            .limit(1)
        ).scalar_one()
        new_runs, new_steps = [], []
        for n in range(total - 1):
            run_id = f"{n:032x}"
            created = real["created"] - __import__("datetime").timedelta(minutes=n + 1)
            statuses = ("completed", "failed", "completed", "stopped")
            new_runs.append(
                {
                    **real,
                    "id": run_id,
                    "name": f"wide-copy-{n}",
                    "run_key": None,
                    "created": created,
                    "status": statuses[n % 4],
                    "extra": {"tags": ["nightly"] if n % 3 == 0 else []},
                }
            )
            for k, s in enumerate(some_steps):
                new_steps.append({**s, "id": f"{n:028x}{k:04x}", "run_id": run_id})
        conn.execute(runs.insert(), new_runs)
        conn.execute(steps.insert(), new_steps)
    engine.dispose()
    return str(real["name"]), str(middle)


def _server_ms(url: str) -> float:
    with urllib.request.urlopen(url, timeout=30) as r:
        r.read()
        timing = r.headers.get("Server-Timing", "")
    found = re.search(r"dur=([0-9.]+)", timing)
    if not found:
        raise SystemExit(f"{url} sent no Server-Timing header")
    return float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="measurements per figure (median and worst shown)")
    parser.add_argument("--runs", type=int, default=5000, help="runs in the store")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="conveyor-bench-dash-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(CONVEYOR_REPOSITORY=str(tmp), CONVEYOR_CONFIG_DIR=str(tmp / "config"))
    proc = None
    try:
        (tmp / "wide.py").write_text(WIDE)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "wide.py"], cwd=tmp, env=env, check=True, capture_output=True)
        print(f"300-step pipeline ran locally in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        run_name, middle_step = _fill_runs(tmp / ".conveyor" / "conveyor.db", args.runs)
        print(f"{args.runs} runs in the store (filled in {time.perf_counter() - t0:.1f} s)")

        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        log = open(tmp / "ui.log", "wb")  # noqa: SIM115 - closed with the process below
        proc = subprocess.Popen(
            [sys.executable, "-m", "conveyor.cli", "ui", "--port", str(port), "--no-browser"],
            cwd=tmp,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/runs", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit((tmp / "ui.log").read_text()) from None
                time.sleep(0.1)

        pages = {
            "first runs page (5,000 runs)": base + "/runs",
            "runs page filtered by status and tag": base + "/runs?status=completed&tag=nightly",
            "300-step run page": f"{base}/runs/{run_name}",
            "300-step run page with a step open": f"{base}/runs/{run_name}?step={middle_step}",
        }
        print(f"\nServer time (Server-Timing), {args.repeat} requests each after one warm-up; target < 300 ms")
        for label, url in pages.items():
            _server_ms(url)
            times = [_server_ms(url) for _ in range(args.repeat)]
            print(f"  {label:<40} median {statistics.median(times):6.1f} ms   worst {max(times):6.1f} ms")

        from playwright.sync_api import sync_playwright

        print(f"\nIn Chromium: navigation to all 300 DAG nodes visible, {args.repeat} loads; target < 2 s")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            loads = []
            for i in range(args.repeat + 1):
                t0 = time.perf_counter()
                page.goto(f"{base}/runs/{run_name}", wait_until="commit")
                page.locator("svg.dag g.node").nth(299).wait_for(state="attached")
                page.locator("svg.dag").wait_for(state="visible")
                elapsed = time.perf_counter() - t0
                assert page.locator("svg.dag g.node").count() == 300
                if i:
                    loads.append(elapsed)
                page.goto("about:blank")
            browser.close()
        print(
            f"  {'300-step run page, DAG visible':<40} median {statistics.median(loads):6.2f} s    worst {max(loads):6.2f} s"
        )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
