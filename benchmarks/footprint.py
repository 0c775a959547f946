"""Edge footprint: import time, resident memory after import, the CLI's time to first output.

Every figure is the median over N fresh interpreter processes (``sys.executable``), launched
round-robin (each round starts one process of every kind, so all kinds see the same load):

- import time: ``time.perf_counter()`` around ``import numpy`` / ``import streamrnn`` inside
  the child (the interpreter's own start-up excluded), and the whole process's wall time of
  ``python -c "import X"`` (start-up included) measured by the parent;
- RSS after import: ``VmRSS`` and ``VmHWM`` of the child right after the import
  (``/proc/self/status``), against a bare interpreter;
- the CLI: wall time from launching ``python -m streamrnn --version`` to its output, and from
  launching ``python -m streamrnn forecast - --column y`` (the header and one value written to
  its stdin at once) to its first forecast line.

    python benchmarks/footprint.py            # N = 21
    python benchmarks/footprint.py --quick    # N = 5

Run from the checkout root to measure the checkout's package (it must be built in place),
or from elsewhere to measure the installed one; the package path is printed.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Dict, List

CHILD = r"""
import sys, time
t0 = time.perf_counter()
{stmt}
t1 = time.perf_counter()
vals = {{}}
with open("/proc/self/status") as f:
    for line in f:
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            vals[k] = int(v.split()[0])
print(t1 - t0, vals["VmRSS"], vals["VmHWM"], {where})
"""

KINDS = {
    "bare interpreter": ("pass", "'-'"),
    "import numpy": ("import numpy", "numpy.__file__"),
    "import streamrnn": ("import streamrnn", "streamrnn.__file__"),
}


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return "load average " + ", ".join(f.read().split()[:3])
    except OSError:
        return "load average unknown"


def run_child(stmt: str, where: str) -> "tuple[float, float, int, int, str]":
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", CHILD.format(stmt=stmt, where=where)],
                       capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    imp, rss, hwm, path = r.stdout.split(maxsplit=3)
    return float(imp), wall, int(rss), int(hwm), path.strip()


def first_output(argv: List[str], stdin: "bytes | None") -> float:
    """Seconds from launching argv to the first line on its stdout."""
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable] + argv, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert p.stdin is not None and p.stdout is not None
    if stdin:
        p.stdin.write(stdin)
        p.stdin.flush()
    line = p.stdout.readline()
    t = time.perf_counter() - t0
    p.stdin.close()
    p.stdout.read()
    p.wait()
    if not line:
        raise RuntimeError(f"{argv} printed nothing (exit status {p.returncode})")
    return t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=21, help="processes of each kind (default 21)")
    ap.add_argument("--quick", action="store_true", help="N = 5")
    args = ap.parse_args()
    n = 5 if args.quick else args.n
    load0 = loadavg()
    samples: Dict[str, List[tuple]] = {k: [] for k in KINDS}
    cli: Dict[str, List[float]] = {"--version": [], "forecast": []}
    paths = {}
    for _ in range(n):
        for kind, (stmt, where) in KINDS.items():
            imp, wall, rss, hwm, path = run_child(stmt, where)
            samples[kind].append((imp, wall, rss, hwm))
            paths[kind] = path
        cli["--version"].append(first_output(["-m", "streamrnn", "--version"], None))
        cli["forecast"].append(first_output(["-m", "streamrnn", "forecast", "-", "--column", "y"],
                                            b"y\n1.5\n"))
    print(f"command: python benchmarks/footprint.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"at start: {load0}; at end: {loadavg()}")
    print(f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs; "
          f"streamrnn from {paths['import streamrnn']}, numpy from {paths['import numpy']}; "
          f"median of {n} fresh processes each, launched round-robin\n")
    print("| process | import time ms (in the child) | process wall ms | VmRSS after import MiB "
          "| VmHWM MiB |")
    print("|---|---|---|---|---|")
    med = {}
    for kind, rows in samples.items():
        imp, wall, rss, hwm = (statistics.median(c) for c in zip(*rows))
        med[kind] = (imp, wall, rss, hwm)
        print(f"| `python -c \"{KINDS[kind][0]}\"` | {imp * 1e3:.1f} | {wall * 1e3:.0f} | "
              f"{rss / 1024:.1f} | {hwm / 1024:.1f} |")
    s, np_ = med["import streamrnn"], med["import numpy"]
    print(f"\n`import streamrnn` / `import numpy`: import time {s[0] / np_[0]:.2f}×, "
          f"RSS {s[2] / np_[2]:.2f}× (+{(s[2] - np_[2]) / 1024:.1f} MiB over numpy, "
          f"+{(s[2] - med['bare interpreter'][2]) / 1024:.1f} MiB over a bare interpreter)\n")
    print("| CLI | ms to first output line (median) |")
    print("|---|---|")
    print(f"| `python -m streamrnn --version` | {statistics.median(cli['--version']) * 1e3:.0f} |")
    print(f"| `printf 'y\\n1.5\\n' \\| python -m streamrnn forecast - --column y` (first "
          f"forecast) | {statistics.median(cli['forecast']) * 1e3:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
