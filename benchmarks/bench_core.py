"""Core speed: import, CLI, local orchestrator overhead, cached re-runs, parallelism, tracing.

Every figure is printed next to a baseline measured in the same run:

    python benchmarks/bench_core.py [--repeat N]

Targets (issue "Core"): `import conveyor` within 0.15 s of bare `python -c pass`;
`conveyor --help` and `conveyor stack list` under 0.4 s; local orchestrator
overhead under 5 ms per trivial step; a fully cached 100-step re-run under
0.5 s beyond import; 20 x 0.5 s independent steps under 1.5 s; tracing a
1000-step pipeline under 1 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHAIN = """
from conveyor import pipeline, step

@step
def inc(x: int) -> int:
    return x + 1

def plain_inc(x):
    return x + 1

@pipeline(enable_cache={cache})
def chain(n: int = {n}) -> None:
    value = inc(0)
    for _ in range(n - 1):
        value = inc(value)

@step
def nap(i: int) -> int:
    import time
    time.sleep(0.5)
    return i

@pipeline(enable_cache=False)
def naps() -> None:
    for i in range(20):
        nap(i)

@step
def ident(x: int) -> int:
    return x

@pipeline
def wide(n: int = 1000) -> None:
    value = ident(0)
    for i in range(n - 1):
        value = ident(value if i % 2 else i)
"""


def _best(cmd: list[str], repeat: int, env: dict[str, str] | None = None, cwd: str | None = None) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env, cwd=cwd)
        times.append(time.perf_counter() - start)
    return min(times)


def _row(name: str, value: float, baseline: float | None, target: str) -> None:
    ratio = f"{value / baseline:6.2f}x" if baseline else "       "
    base = f"{baseline * 1000:8.1f} ms" if baseline is not None else " " * 11
    print(f"{name:<44} {value * 1000:9.1f} ms   baseline {base}  {ratio}   target: {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    env = {**os.environ, "CONVEYOR_REPOSITORY": str(work), "PYTHONPATH": str(work)}
    try:
        python = sys.executable
        conveyor_cli = [python, "-m", "conveyor.cli"]
        subprocess.run([*conveyor_cli, "init"], check=True, env=env, cwd=work, stdout=subprocess.DEVNULL)

        bare = _best([python, "-c", "pass"], args.repeat)
        imp = _best([python, "-c", "import conveyor; from conveyor import step, pipeline"], args.repeat)
        helptime = _best([*conveyor_cli, "--help"], args.repeat, env=env, cwd=str(work))
        stacks = _best([*conveyor_cli, "stack", "list"], args.repeat, env=env, cwd=str(work))
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores\n")
        _row("import conveyor (beyond bare python)", imp - bare, None, "< 150 ms")
        _row("import conveyor", imp, bare, "within 150 ms of baseline")
        _row("conveyor --help", helptime, bare, "< 400 ms")
        _row("conveyor stack list", stacks, bare, "< 400 ms")

        (work / "bench_pipes.py").write_text(CHAIN.format(cache="False", n=100))
        (work / "bench_cached.py").write_text(CHAIN.format(cache="True", n=100))
        script = f"""
import sys, time
sys.path.insert(0, {str(work)!r})
import bench_pipes, bench_cached
from conveyor import Client
Client().store  # open the store before timing
start = time.perf_counter()
x = 0
for _ in range(100):
    x = bench_pipes.plain_inc(x)
plain = time.perf_counter() - start
bench_pipes.chain()  # warm up: code hashes, materializer lookups
start = time.perf_counter(); bench_pipes.chain(); chain = time.perf_counter() - start
bench_cached.chain()
start = time.perf_counter(); run = bench_cached.chain(); cached = time.perf_counter() - start
assert {{s.status for s in run.steps.values()}} == {{"cached"}}
start = time.perf_counter(); bench_pipes.naps(); naps = time.perf_counter() - start
start = time.perf_counter(); ir = bench_pipes.wide.trace(); trace = time.perf_counter() - start
assert len(ir.steps) == 1000
print(plain, chain, cached, naps, trace)
"""
        out = subprocess.run([python, "-c", script], check=True, capture_output=True, text=True, env=env, cwd=work)
        plain, chain, cached, naps, trace = map(float, out.stdout.split()[-5:])
        _row("100 plain function calls", plain, None, "(baseline)")
        _row("100-step chain, cache off", chain, plain, "")
        _row("  overhead per step", (chain - plain) / 100, None, "< 5 ms")
        _row("fully cached 100-step re-run", cached, None, "< 500 ms beyond import")
        _row("20 independent steps x 0.5 s sleep", naps, 0.5, "< 1500 ms")
        _row("trace 1000-step pipeline to IR", trace, None, "< 1000 ms")
        print(f"\n(best of {args.repeat} for the process timings; median noise on this machine is a few ms)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
