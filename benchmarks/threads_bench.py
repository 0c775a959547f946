"""Default BLAS threading against one thread, on a quiet host and with one core kept busy.

streamrnn's C core calls the BLAS that SciPy ships (OpenBLAS), which by default starts one
thread per core. This script runs the library as installed (no thread variables set) and
compares, in the same process and round-robin, the default thread count with BLAS limited to
one thread (``threadpoolctl.threadpool_limits(1)``, entered outside the timed calls), once with
the machine as it is ("quiet") and once while another process spins on one core ("busy": a
``while True: pass`` child, stopped with SIGSTOP while the quiet columns are measured and
resumed with SIGCONT for the busy ones). Every round times all four columns of a row once, so
their ratios compare numbers taken under the same outside load.

    pip install threadpoolctl     # or pip install --target DIR threadpoolctl; PYTHONPATH=DIR
    python benchmarks/threads_bench.py           # H = 16, 32, 64, 128, 256, 512 (~6 minutes)
    python benchmarks/threads_bench.py --quick   # H = 16, 128, 512, fewer rounds

Operations (LSTM float32, one layer): ``step`` = ``net.step(x, s, out)`` (D = 8); ``step_many``
= ``net.step_many(X, batch, out=)`` over 64 streams, time per stream-step (D = 8);
``learn_one`` = ``OnlineTrainer(k1=1, k2=32, Adam, clip_norm=1).learn_one`` per sample (D = 1,
O = 1, the online-training case of issue 20); ``learn_sequence`` =
``SequenceTrainer(Adam, clip_norm=1).learn_sequence`` on a window of T = 50 (D = 8, O = 1).
"""
from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List

_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_SET_AT_START = {v: os.environ[v] for v in _THREAD_VARS if v in os.environ}

import numpy as np  # noqa: E402

import streamrnn as sr  # noqa: E402

try:
    from threadpoolctl import ThreadpoolController
except ImportError:  # pragma: no cover - depends on the environment
    ThreadpoolController = None



def calibrate(fn: Callable[[], object], budget: float = 0.02) -> int:
    """Calls per timed block: about `budget` seconds, at least 3."""
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < 0.005:
        fn()
        n += 1
    return int(max(3, min(20000, budget * n / (time.perf_counter() - t0))))


def uptime() -> str:
    try:
        with open("/proc/loadavg") as f:
            return "load average " + ", ".join(f.read().split()[:3])
    except OSError:
        return "load average unknown"


def operations(H: int) -> Dict[str, Callable[[], object]]:
    rng = np.random.default_rng(0)
    ops: Dict[str, Callable[[], object]] = {}
    net = sr.LSTM(8, H, seed=0)
    s = net.new_state()
    x = rng.normal(size=8).astype(np.float32)
    out = np.empty(H, np.float32)
    ops["step"] = lambda: net.step(x, s, out)
    n = 64
    b = net.new_states(n)
    X = rng.normal(size=(n, 8)).astype(np.float32)
    outm = np.empty((n, H), np.float32)
    ops["step_many"] = lambda: net.step_many(X, b, out=outm)
    net1 = sr.LSTM(1, H, output_size=1, seed=0)
    tr = sr.OnlineTrainer(net1, optimizer=sr.Adam(lr=1e-3), k1=1, k2=32, clip_norm=1.0)
    series = np.sin(0.05 * np.arange(4097)).astype(np.float32)
    Xs, Ys = series[:-1].reshape(-1, 1).copy(), series[1:].reshape(-1, 1).copy()
    t = [0]

    def learn_one() -> None:
        i = t[0] = (t[0] + 1) % len(Xs)
        tr.learn_one(Xs[i], Ys[i])

    ops["learn_one"] = learn_one
    net2 = sr.LSTM(8, H, output_size=1, seed=0)
    st = sr.SequenceTrainer(net2, optimizer=sr.Adam(lr=1e-4), clip_norm=1.0)
    Xw = rng.normal(size=(50, 8)).astype(np.float32)
    Yw = rng.normal(size=(50, 1)).astype(np.float32)
    ops["learn_sequence"] = lambda: st.learn_sequence(Xw, Yw)
    return ops


def blas_loaded() -> str:
    """Whether the C core has loaded SciPy's BLAS by now (it loads it only for networks whose
    products exceed its own kernels' sizes); "n/a" for a streamrnn without lazy loading."""
    f = getattr(sr._core, "_blas_is_loaded", None)
    return "n/a" if f is None else ("yes" if f() else "no")


PER = {"step": 1, "step_many": 64, "learn_one": 1, "learn_sequence": 1}


def measure(fn: Callable[[], object], ctl: "ThreadpoolController", busy: subprocess.Popen,
            rounds: int) -> Dict[str, float]:
    """Median seconds per call of fn in the four settings, measured round-robin."""
    with ctl.limit(limits=1):
        inner = calibrate(fn)
    for _ in range(max(1, inner // 10)):
        fn()
    samples: Dict[str, List[float]] = {k: [] for k in
                                       ("quiet default", "quiet 1", "busy default", "busy 1")}
    for r in range(rounds):
        for load in ("quiet", "busy"):
            busy.send_signal(signal.SIGCONT if load == "busy" else signal.SIGSTOP)
            # alternate which thread setting goes first in a round
            for threads in (("default", "1") if r % 2 == 0 else ("1", "default")):
                if threads == "1":
                    cm = ctl.limit(limits=1)
                    cm.__enter__()
                # after a default-threads block OpenBLAS's workers keep spinning for a while
                # (and the spinner needs to be scheduled or stopped): wait before timing
                time.sleep(0.25)
                fn()  # first call after a switch: thread pool wake-up, outside the timing
                t0 = time.perf_counter()
                for _ in range(inner):
                    fn()
                samples[f"{load} {threads}"].append((time.perf_counter() - t0) / inner)
                if threads == "1":
                    cm.__exit__(None, None, None)
    busy.send_signal(signal.SIGSTOP)
    return {k: statistics.median(v) for k, v in samples.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="H = 16, 128, 512; 3 rounds")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--hidden", type=int, nargs="+", default=[16, 32, 64, 128, 256, 512])
    args = ap.parse_args()
    if args.quick:
        args.rounds = min(args.rounds, 3)
        args.hidden = [16, 128, 512]
    if ThreadpoolController is None:
        print("threadpoolctl is needed (pip install threadpoolctl)", file=sys.stderr)
        return 2
    set_vars = _SET_AT_START
    ctl = ThreadpoolController()
    blas = [(i["internal_api"], i["num_threads"], os.path.basename(i["filepath"]))
            for i in ctl.info() if i["user_api"] == "blas"]
    print(f"command: python benchmarks/threads_bench.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"streamrnn {sr.__version__}, numpy {np.__version__}, Python "
          f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs; "
          f"thread variables set: {set_vars or 'none'}; BLAS libraries loaded (api, default "
          f"threads, file): {blas}")
    print(f"at start: {uptime()}")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        busy.send_signal(signal.SIGSTOP)
        print("\n| operation | H | quiet: default µs | quiet: 1 thread µs | default / 1 thread "
              "| busy: default µs | busy: 1 thread µs | default / 1 thread | SciPy BLAS loaded |")
        print("|---|---|---|---|---|---|---|---|---|")
        for H in args.hidden:
            for name, fn in operations(H).items():
                m = {k: v / PER[name] * 1e6 for k, v in measure(fn, ctl, busy, args.rounds).items()}
                print(f"| {name} | {H} | {m['quiet default']:.2f} | {m['quiet 1']:.2f} | "
                      f"{m['quiet default'] / m['quiet 1']:.2f}× | {m['busy default']:.2f} | "
                      f"{m['busy 1']:.2f} | {m['busy default'] / m['busy 1']:.2f}× | "
                      f"{blas_loaded()} |", flush=True)
    finally:
        busy.send_signal(signal.SIGCONT)
        busy.kill()
        busy.wait()
    print(f"\nat end: {uptime()}. step_many is per stream-step (64 streams); learn_sequence per "
          f"window of 50 steps. Medians of {args.rounds} round-robin rounds. \"SciPy BLAS "
          f"loaded\": after the row's networks were made and run (\"no\": none of their calls "
          f"can reach a BLAS thread pool, so default and 1 thread run the same code).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
