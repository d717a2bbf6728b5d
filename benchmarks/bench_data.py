"""conveyor-data's materializers against the libraries' own save and load, in the same run.

    python benchmarks/bench_data.py [--array-mb 100] [--rows 10000000] [--repeat 5] [--dir DIR]

Each measurement runs in a fresh process that first builds its data and runs
the operation once on a small slice (imports, first calls), then times it
``--repeat`` times; ``peak extra`` is how far the
process's peak resident memory (VmHWM, reset once the data is built) rose
above what it held then, i.e. the copies an operation makes; file pages a
memory-mapped load reads count too.

- array: a float64 array of ``--array-mb`` MB. raw = ``np.save`` + ``np.load``;
  conveyor = ``NumpyMaterializer.save`` + ``.load`` on a local artifact store
  (load memory-maps). "+ read" rows also sum every value after loading, so a
  lazy load pays for its reads; "artifact" adds what a step run does after
  ``save``: the content hash, the metadata and the views.
- frame: a DataFrame of ``--rows`` rows (float64 with NaN, int64, bool,
  datetime64[ns, UTC], category, str). raw = ``to_parquet`` + ``read_parquet``;
  conveyor = ``PandasMaterializer.save`` + ``.load``.

Ratios are conveyor's time over raw's: of the median wall times, of the
fastest runs, and of the median CPU times of the process (all its threads),
which other processes on a busy machine disturb least. The target is at most
1.3.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 1.3
_WHERE = [""]  # the folder the children write in ("" = the system's temporary folder)


def _reset_peak() -> bool:
    """Reset the process's peak resident memory to its current one (Linux 4.0+)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float:
    """The process's peak resident memory (VmHWM, else ru_maxrss), in MB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # KiB on Linux


def _current_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 1e6


# -- children: build data, time one method -----------------------------------------------
def _array(mb: int):
    import numpy as np

    return np.random.default_rng(0).standard_normal(mb * 1_000_000 // 8)


def _frame(rows: int):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.standard_normal(rows)
    x[::97] = np.nan
    labels = np.array([f"label-{i:03d}" for i in range(200)], dtype=object)
    return pd.DataFrame(
        {
            "x": x,
            "n": rng.integers(0, 1_000_000, rows),
            "flag": rng.random(rows) < 0.3,
            "t": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 10**9, rows), unit="s"),
            "group": pd.Categorical.from_codes(rng.integers(0, 50, rows), categories=[f"g{i}" for i in range(50)]),
            "name": pd.Series(labels[rng.integers(0, 200, rows)], dtype="str"),
        }
    )


def _method(case: str, method: str, folder: Path):
    """A function doing one save + load (+ read) for ``case`` with ``method``."""
    from conveyor.stores import LocalArtifactStore

    store = LocalArtifactStore(str(folder))
    counter = iter(range(10**6))

    def fresh() -> str:
        path = folder / f"a{next(counter)}"
        path.mkdir()
        return str(path)

    if case == "array":
        import numpy as np

        from conveyor_data import NumpyMaterializer

        read = method.endswith("+read")
        base = method.removesuffix("+read")

        def run(data):
            if base == "raw":
                path = Path(fresh()) / "a.npy"
                np.save(path, data)
                out = np.load(path)
            else:
                uri = fresh()
                m = NumpyMaterializer(uri, store)
                m.save(data)
                if base == "artifact":
                    store.content_hash(uri)
                    m.extract_metadata(data)
                    m.save_visualizations(data)
                out = NumpyMaterializer(uri, store).load(np.ndarray)
            if read:
                float(out.sum())
            return out

        return run
    if case == "frame":
        import pandas as pd

        from conveyor_data import PandasMaterializer

        def run(data):
            if method == "raw":
                path = Path(fresh()) / "f.parquet"
                data.to_parquet(path)
                return pd.read_parquet(path)
            uri = fresh()
            m = PandasMaterializer(uri, store)
            m.save(data)
            if method == "artifact":
                store.content_hash(uri)
                m.extract_metadata(data)
                m.save_visualizations(data)
            return PandasMaterializer(uri, store).load(pd.DataFrame)

        return run
    raise SystemExit(f"unknown case {case}")


def child(case: str, method: str, size: int, repeat: int, where: str) -> None:
    data = _array(size) if case == "array" else _frame(size)
    folder = Path(tempfile.mkdtemp(prefix="conveyor-bench-", dir=where or None))
    try:
        run = _method(case, method, folder)
        run(data[:1000] if case == "array" else data.iloc[:1000])  # warm up: imports, first calls
        gc.collect()
        # Without a reset, the peak is that of building the data (its temporaries included).
        before = _current_mb() if _reset_peak() else _peak_mb()
        times, cpu = [], []
        for _ in range(repeat):
            start, start_cpu = time.perf_counter(), time.process_time()
            out = run(data)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            del out
            gc.collect()
        print(json.dumps({"times": times, "cpu": cpu, "extra_mb": _peak_mb() - before}))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- parent: run children, print ratios ------------------------------------------------------
def measure(case: str, method: str, size: int, repeat: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", case, method, str(size), str(repeat), _WHERE[0]],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(title: str, case: str, size: int, repeat: int, pairs: list[tuple[str, str]]) -> list[str]:
    print(f"\n{title}")
    head = ("method", "median s", "min s", "ratio med", "ratio min", "cpu s", "ratio cpu", "peak extra MB")
    print(f"  {head[0]:<30}" + "".join(f"{h:>11}" for h in head[1:7]) + f"{head[7]:>15}")
    missed = []
    results: dict[str, dict] = {}
    # Two rounds in opposite orders, so that drift in the machine's speed hits both sides.
    methods = list(dict.fromkeys(m for pair in pairs for m in pair))
    for order in (methods, methods[::-1]):
        for method in order:
            r = measure(case, method, size, repeat)
            acc = results.setdefault(method, {"times": [], "cpu": [], "extra_mb": 0.0})
            acc["times"] += r["times"]
            acc["cpu"] += r["cpu"]
            acc["extra_mb"] = max(acc["extra_mb"], r["extra_mb"])

    def stats(name: str) -> tuple[float, float, float]:
        r = results[name]
        return statistics.median(r["times"]), min(r["times"]), statistics.median(r["cpu"])

    for baseline, method in pairs:
        b_med, b_min, b_cpu = stats(baseline)
        for name in (baseline, method):
            med, low, cpu = stats(name)
            label = f"{name} ({'baseline' if name == baseline else 'vs ' + baseline})"
            cells = (med, low, med / b_med, low / b_min, cpu, cpu / b_cpu)
            print(f"  {label:<30}" + "".join(f"{c:>11.3f}" for c in cells) + f"{results[name]['extra_mb']:>15.0f}")
        med, low, cpu = stats(method)
        if method.startswith("conveyor") and med / b_med > TARGET:
            missed.append(
                f"{case} {method}: median {med / b_med:.2f}x, fastest {low / b_min:.2f}x, cpu {cpu / b_cpu:.2f}x > {TARGET}x"
            )
    return missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--array-mb", type=int, default=100)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", default="", help="folder to write in (default: the system's temporary folder)")
    parser.add_argument("--child", nargs=5, metavar=("CASE", "METHOD", "SIZE", "REPEAT", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        case, method, size, repeat, where = args.child
        child(case, method, int(size), int(repeat), where)
        return
    _WHERE[0] = args.dir
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    print(f"numpy {np.__version__}, pandas {pd.__version__}, pyarrow {pa.__version__}, python {sys.version.split()[0]}")
    print(
        f"writing in {args.dir or tempfile.gettempdir()}; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    missed = report(
        f"array: float64, {args.array_mb} MB, save + load, {args.repeat} x 2 runs",
        "array",
        args.array_mb,
        args.repeat,
        [("raw", "conveyor"), ("raw+read", "conveyor+read"), ("raw+read", "artifact+read")],
    )
    missed += report(
        f"frame: {args.rows:,} rows x 6 columns, save + load, {max(1, args.repeat // 2)} x 2 runs",
        "frame",
        args.rows,
        max(1, args.repeat // 2),
        [("raw", "conveyor"), ("raw", "artifact")],
    )
    print('\ntarget: conveyor within 1.3x of raw ("artifact" rows are for information: they add hashing and views)')
    for line in missed:
        print(f"MISSED {line}")


if __name__ == "__main__":
    main()
