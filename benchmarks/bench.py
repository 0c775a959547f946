"""streamrnn benchmarks: per-step latency, many streams, online training, memory.

Every figure is the median over repeated rounds, and every ratio compares numbers measured
side by side (round-robin) in this one run; memory figures are measured (tracemalloc and RSS
growth over many live objects, each kind in a fresh process). BLAS is limited to one thread
(set below, before NumPy loads) and torch and onnxruntime to one thread, so latency figures
are single-core.

    python benchmarks/bench.py                 # the default table (a few minutes)
    python benchmarks/bench.py --full          # every D, H, dtype of the step grid
    python benchmarks/bench.py --only step     # one section: step, many, train, flops, memory
    python benchmarks/bench.py --clock cpu     # CPU time of the process: on a shared,
                                               # overloaded host (see RESULTS.md)
    python benchmarks/bench.py --quick         # float32 only, fewer rounds and objects

Columns: ours = ``net.step(x, s, out)`` from Python; C floor = the same C core over a whole
sequence without returning to Python (``net.run`` time / T); ref = the NumPy reference's
step; torch = ``torch.nn.LSTMCell/GRUCell/RNNCell`` called on preallocated input and state
tensors, one torch thread, with ``torch.inference_mode()`` entered once around the whole
measurement (the fastest loop a torch user would write, not a context per step); ORT =
onnxruntime (float32 only: it has no float64 recurrent kernels) running the model of
``streamrnn.interop.onnx.to_onnx(net, initial_state=True)`` on one step through I/O binding
(inputs and outputs bound once to preallocated OrtValues; the state ping-pongs between two
bindings), one intra-op and one inter-op thread.
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import contextlib
import platform
import statistics
import sys
import time
import tracemalloc
from typing import Callable, List, Optional

import numpy as np

import streamrnn as sr
from streamrnn import reference

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # torch is optional
    torch = None

try:
    import onnxruntime as ort

    from streamrnn.interop.onnx import to_onnx
except ImportError:  # onnx / onnxruntime are optional
    ort = None

# The clock of every timed block: time.perf_counter (wall) by default; --clock cpu switches to
# time.process_time (CPU time of this process), which leaves out the time other processes hold
# the core on a shared, overloaded machine. Valid here because every column runs on one thread
# (BLAS, torch and onnxruntime are all limited to one), so CPU time is the single core's busy
# time for the calls.
CLOCK: "list[Callable[[], float]]" = [time.perf_counter]

CLASSES = {"lstm": sr.LSTM, "gru": sr.GRU, "rnn": sr.RNN}
REF_CELL = {"lstm": "lstm", "gru": "gru", "rnn": "rnn_tanh"}


def median_time(fn: Callable[[], object], inner: int, rounds: int) -> float:
    """Median over rounds of the mean seconds per call (after one warm-up round)."""
    for _ in range(max(1, inner // 10)):
        fn()
    times: List[float] = []
    for _ in range(rounds):
        clock = CLOCK[0]
        t0 = clock()
        for _ in range(inner):
            fn()
        times.append((clock() - t0) / inner)
    return statistics.median(times)


def interleaved(fns: "dict[str, Callable[[], object]]", rounds: int,
                divisors: "Optional[dict[str, float]]" = None,
                inner: "Optional[dict[str, int]]" = None) -> "dict[str, float]":
    """Median seconds per call of each function, measured round-robin: every round times each
    function once, so all of them see the same machine load and their ratios stay honest on
    a shared, noisy machine."""
    inners = {k: (inner or {}).get(k) or calibrate(f) for k, f in fns.items()}
    for k, f in fns.items():  # warm-up
        for _ in range(max(1, inners[k] // 10)):
            f()
    samples: "dict[str, List[float]]" = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            n = inners[k]
            clock = CLOCK[0]
            t0 = clock()
            for _ in range(n):
                f()
            samples[k].append((clock() - t0) / n)
    div = divisors or {}
    return {k: statistics.median(v) / div.get(k, 1.0) for k, v in samples.items()}


def inner_for(seconds_per_call: float, budget: float = 0.02) -> int:
    return int(max(3, min(20000, budget / max(seconds_per_call, 1e-8))))


def calibrate(fn: Callable[[], object]) -> int:
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < 0.005:
        fn()
        n += 1
    return inner_for((time.perf_counter() - t0) / n)


def us(t: Optional[float]) -> str:
    return "—" if t is None else f"{t * 1e6:.2f}"


def ratio(a: Optional[float], b: Optional[float]) -> str:
    return "—" if a is None or b is None else f"{a / b:.1f}×"


def torch_mode() -> "contextlib.AbstractContextManager[object]":
    """``torch.inference_mode()`` entered once around a whole measurement (the torch loops
    inside it are what a user would write after entering it once); a no-op without torch."""
    return torch.inference_mode() if torch is not None else contextlib.nullcontext()


def ort_step(net: "sr.LSTM", x: np.ndarray) -> Callable[[], None]:
    """One onnxruntime step of ``net`` (float32, no head needed) through I/O binding.

    The model is ``to_onnx(net, initial_state=True)``; X, h0, c0 and the outputs Y, h_n, c_n
    are bound once to preallocated OrtValues, and two bindings swap the state buffers so that
    each call continues the stream (no copy, no allocation per call). Checked against
    ``net.step`` on three steps before it is timed."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(to_onnx(net, initial_state=True).SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    H = net.hidden_size
    names = [i.name for i in sess.get_inputs()]
    has_c = "c0" in names
    xv = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(x, np.float32).reshape(1, 1, -1))
    y = ort.OrtValue.ortvalue_from_numpy(np.zeros((1, 1, H), np.float32))
    hs = [ort.OrtValue.ortvalue_from_numpy(np.zeros((1, 1, H), np.float32)) for _ in range(2)]
    cs = [ort.OrtValue.ortvalue_from_numpy(np.zeros((1, 1, H), np.float32)) for _ in range(2)]
    binds = []
    for a, b in ((0, 1), (1, 0)):
        io = sess.io_binding()
        io.bind_ortvalue_input("X", xv)
        io.bind_ortvalue_input("h0", hs[a])
        io.bind_ortvalue_output("Y", y)
        io.bind_ortvalue_output("h_n", hs[b])
        if has_c:
            io.bind_ortvalue_input("c0", cs[a])
            io.bind_ortvalue_output("c_n", cs[b])
        binds.append(io)
    s = net.new_state()
    out = np.empty(H, np.float32)
    for i in range(3):  # the anchor computes the same step as ours
        net.step(x, s, out)
        sess.run_with_iobinding(binds[i % 2])
    got = hs[1].numpy().reshape(H)
    if not np.allclose(got, s.h.reshape(H), rtol=1e-4, atol=1e-5):
        raise AssertionError(f"onnxruntime step differs from net.step: {got[:4]} vs {s.h[:4]}")
    run = sess.run_with_iobinding
    k = [0]

    def step() -> None:
        k[0] ^= 1
        run(binds[k[0]])

    return step


def bench_step(args: argparse.Namespace) -> None:
    print("\n### Per-step latency from Python (µs per step, median)\n")
    print("| cell | dtype | D | H | ours | C floor | Python overhead | NumPy ref | torch cell "
          "| ORT I/O binding | ours vs ref | ours vs torch | ours vs ORT |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    cells = ["lstm", "gru", "rnn"]
    if args.full:
        grid = [(D, H) for D in (1, 8, 32) for H in (16, 64, 128, 256, 512)]
        dtypes = ["float32", "float64"]
    else:
        grid = [(8, 16), (8, 64), (8, 128), (8, 256), (8, 512), (1, 64), (32, 64)]
        dtypes = ["float32", "float64"] if not args.quick else ["float32"]
    rng = np.random.default_rng(0)
    for cell in cells:
        for dtype in dtypes:
            for D, H in grid:
                net = CLASSES[cell](D, H, dtype=dtype, seed=0)
                s = net.new_state()
                x = rng.normal(size=D).astype(dtype)
                out = np.empty(H, dtype=dtype)
                T = 1000
                # the floor steps the same input as `ours` (libm's double exp/tanh take
                # input-dependent time, so a different input would skew the comparison)
                X = np.tile(x, (T, 1))
                Y = np.empty((T, H), dtype=dtype)
                s2 = net.new_state()
                ref = reference.Net(REF_CELL[cell], D, H, 1, None, params=net.parameters().copy())
                h, c = ref.zero_state()
                fns = {"ours": lambda: net.step(x, s, out),
                       "floor": lambda: net.run(X, s2, Y),
                       "ref": lambda: ref.step(x, h, c)}
                if torch is not None:
                    tdt = torch.float32 if dtype == "float32" else torch.float64
                    tc = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell,
                          "rnn": torch.nn.RNNCell}[cell](D, H).to(tdt)
                    tx = torch.from_numpy(x)[None, :]
                    th = torch.zeros(1, H, dtype=tdt)
                    tstate = (th, th.clone()) if cell == "lstm" else th

                    fns["torch"] = lambda: tc(tx, tstate)
                if ort is not None and dtype == "float32":
                    fns["ort"] = ort_step(net, x)
                with torch_mode():
                    m = interleaved(fns, args.rounds, {"floor": T})
                t_ours, t_floor, t_ref = m["ours"], m["floor"], m["ref"]
                t_torch, t_ort = m.get("torch"), m.get("ort")
                print(f"| {cell} | {dtype} | {D} | {H} | {us(t_ours)} | {us(t_floor)} | "
                      f"{(t_ours / t_floor - 1) * 100:.0f}% | {us(t_ref)} | {us(t_torch)} | "
                      f"{us(t_ort)} | {ratio(t_ref, t_ours)} | {ratio(t_torch, t_ours)} | "
                      f"{ratio(t_ort, t_ours)} |", flush=True)


def bench_many(args: argparse.Namespace) -> None:
    print("\n### Many streams: LSTM float32, D=8, H=64 (µs per stream-step, median)\n")
    print("| n streams | step_many | n × step | torch LSTMCell batch of n | step_many vs torch |")
    print("|---|---|---|---|---|")
    D, H = 8, 64
    rng = np.random.default_rng(1)
    net = sr.LSTM(D, H, seed=0)
    for n in (1, 64, 1024):
        b = net.new_states(n)
        X = rng.normal(size=(n, D)).astype(np.float32)
        out = np.empty((n, H), np.float32)
        states = [net.new_state() for _ in range(n)]
        o1 = np.empty(H, np.float32)

        def loop() -> None:
            for i in range(n):
                net.step(X[i], states[i], o1)

        fns = {"many": lambda: net.step_many(X, b, out=out), "loop": loop}
        if torch is not None:
            tc = torch.nn.LSTMCell(D, H)
            tX = torch.from_numpy(X)
            hc = (torch.zeros(n, H), torch.zeros(n, H))

            fns["torch"] = lambda: tc(tX, hc)
        with torch_mode():
            m = interleaved(fns, args.rounds, {k: n for k in fns})
        t_many, t_loop, t_torch = m["many"], m["loop"], m.get("torch")
        print(f"| {n} | {us(t_many)} | {us(t_loop)} | {us(t_torch)} | {ratio(t_torch, t_many)} |",
              flush=True)


def _torch_k1k2_equal(series: np.ndarray, K: int, H: int) -> Callable[[], None]:
    """Best online torch loop for k1 = k2 = K: one LSTMCell step per sample, graph kept,
    prediction read off it, backward/clip/step/detach every K samples."""
    cell = torch.nn.LSTMCell(1, H)
    head = torch.nn.Linear(H, 1)
    params = list(cell.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    st = {"hc": (torch.zeros(1, H), torch.zeros(1, H)), "t": 0, "losses": []}
    xs = torch.from_numpy(series.astype(np.float32)).reshape(-1, 1, 1)

    def one() -> None:
        t = st["t"] % (len(series) - 1)
        h, c = cell(xs[t], st["hc"])
        y = head(h)
        float(y.detach()[0, 0])  # the prediction, read before learning
        st["losses"].append((y[0, 0] - xs[t + 1][0, 0]) ** 2)
        st["hc"] = (h, c)
        st["t"] += 1
        if len(st["losses"]) == K:
            loss = torch.stack(st["losses"]).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            st["hc"] = (h.detach(), c.detach())
            st["losses"] = []

    return one


def _torch_k1_1(series: np.ndarray, K: int, H: int) -> Callable[[], None]:
    """Best online torch loop for k1 = 1, k2 = K: overlapping windows, which autograd cannot
    keep, so every sample re-runs the last K steps from the saved state with one nn.LSTM call
    and backpropagates; the saved state then advances one step."""
    lstm = torch.nn.LSTM(1, H)
    head = torch.nn.Linear(H, 1)
    params = list(lstm.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    xs = torch.from_numpy(series.astype(np.float32)).reshape(-1, 1, 1)
    st = {"start": (torch.zeros(1, 1, H), torch.zeros(1, 1, H)), "lo": 0, "t": 0}

    def one() -> None:
        t = st["t"] % (len(series) - 1)
        if t == 0:
            st["start"] = (torch.zeros(1, 1, H), torch.zeros(1, 1, H))
            st["lo"] = 0
        if t - st["lo"] + 1 > K:  # advance the saved state past the sample leaving the window
            with torch.no_grad():
                _, st["start"] = lstm(xs[st["lo"]:st["lo"] + 1], st["start"])
            st["lo"] += 1
        out, _ = lstm(xs[st["lo"]:t + 1], st["start"])
        y = head(out[-1])
        float(y.detach()[0, 0])  # the prediction, read before learning
        loss = (y[0, 0] - xs[t + 1][0, 0]) ** 2
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        st["t"] += 1

    return one


def bench_train(args: argparse.Namespace) -> None:
    print("\n### Online training: LSTM float32, D=1, H=64, Adam, clip_norm=1 "
          "(µs per learned sample, median)\n")
    print("| TBPTT | ours learn_one | ours learn_many | torch loop | ours vs torch |")
    print("|---|---|---|---|---|")
    H = 64
    series = np.sin(0.05 * np.arange(5000)).astype(np.float32)
    for k1, k2 in ((32, 32), (1, 32)):  # noqa: B007
        net = sr.LSTM(1, H, output_size=1, seed=0)
        tr = sr.OnlineTrainer(net, optimizer=sr.Adam(lr=1e-3), k1=k1, k2=k2, clip_norm=1.0)
        X = series[:-1].reshape(-1, 1).copy()
        Y = series[1:].reshape(-1, 1).copy()
        st = {"t": 0}

        def one() -> None:
            t = st["t"] % len(X)
            tr.learn_one(X[t], Y[t])
            st["t"] += 1

        net2 = sr.LSTM(1, H, output_size=1, seed=0)
        tr2 = sr.OnlineTrainer(net2, optimizer=sr.Adam(lr=1e-3), k1=k1, k2=k2, clip_norm=1.0)
        Xb, Yb = X[:256], Y[:256]
        fns = {"one": one, "many": lambda: tr2.learn_many(Xb, Yb)}
        if torch is not None:
            fns["torch"] = (_torch_k1k2_equal(series, 32, H) if k1 == 32
                            else _torch_k1_1(series, 32, H))
        # whole update windows per round (k1 = 32: one backward every 32 samples)
        m = interleaved(fns, args.rounds, {"many": len(Xb)},
                        {"one": 256, "many": 1, "torch": 64 if k1 == 32 else 16})
        t_one, t_many, t_torch = m["one"], m["many"], m.get("torch")
        print(f"| k1={k1}, k2={k2} | {us(t_one)} | {us(t_many)} | {us(t_torch)} | "
              f"{ratio(t_torch, t_one)} |", flush=True)


def bench_flops(args: argparse.Namespace) -> None:
    """Large layers are bound by memory bandwidth or arithmetic: compare the step's GFLOP/s
    with this machine's single-thread BLAS gemm rate (measured here, same run)."""
    from scipy.linalg import blas as sblas

    print("\n### Large layers against the machine's single-core gemm rate\n")
    print("| cell | dtype | D | H | C floor µs/step | GFLOP/s | weights MB | weights read GB/s "
          "| gemm GFLOP/s (1 thread) | fraction of gemm |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(2)
    gemm_rate = {}
    for dtype, fn in (("float32", sblas.sgemm), ("float64", sblas.dgemm)):
        a = np.asfortranarray(rng.normal(size=(512, 512)).astype(dtype))
        t = median_time(lambda: fn(1.0, a, a), 5, args.rounds)
        gemm_rate[dtype] = 2 * 512 ** 3 / t / 1e9
    for dtype in ("float32", "float64"):
        for H in (256, 512):
            D = 8
            net = sr.LSTM(D, H, dtype=dtype, seed=0)
            T = 200
            X = rng.normal(size=(T, D)).astype(dtype)
            Y = np.empty((T, H), dtype=dtype)
            s = net.new_state()
            t = median_time(lambda: net.run(X, s, Y), 3, args.rounds) / T
            flops = 2 * 4 * H * (D + H)
            mb = net.parameters().nbytes / 1e6
            print(f"| lstm | {dtype} | {D} | {H} | {t * 1e6:.2f} | {flops / t / 1e9:.1f} | "
                  f"{mb:.2f} | {mb / 1e3 / t:.0f} | {gemm_rate[dtype]:.1f} | "
                  f"{flops / t / 1e9 / gemm_rate[dtype]:.0%} |", flush=True)
    print("\nA single stream's step is a matrix-vector product: every weight is read once per "
          "step for 2 flops, so above ~256 units (weights beyond the 512 KB L2) it is bound by "
          "memory bandwidth, not by arithmetic; gemm reuses each weight many times.")


def _memory_rows(n: int) -> "List[tuple[str, int, Callable[[int], object]]]":
    """(label, number of objects, make) of each measured memory row."""
    rows: "List[tuple[str, int, Callable[[int], object]]]" = []
    for cls, name in ((sr.LSTM, "LSTM"), (sr.GRU, "GRU"), (sr.RNN, "RNN")):
        rows.append((f"{name} f32 D=8 H=64: one `State` (`net.new_state()`)", n,
                     lambda k, cls=cls: (lambda net: [net.new_state() for _ in range(k)])(
                         cls(8, 64, seed=0))))
    for cls, name in ((sr.LSTM, "LSTM"), (sr.GRU, "GRU"), (sr.RNN, "RNN")):
        def batch(k: int, cls: type = cls) -> object:
            net = cls(8, 64, seed=0)
            b = net.new_states(k)
            net.step_many(np.zeros((k, 8), np.float32), b)  # touches h, c and the scratch
            return b

        rows.append((f"{name} f32 D=8 H=64: one stream of a `StateBatch` of {n:,} after one "
                     f"`step_many` (batch / n)", n, batch))
    m = max(1, n // 20)
    for mode in ("shared", "per_key"):
        def add_keys(k: int, mode: str = mode) -> object:
            f = sr.Forecaster(hidden_size=32, seed=0, weights=mode)
            for i in range(k):
                f.learn_one(0.5, key=i)
            return f

        rows.append((f"`Forecaster(hidden_size=32, weights='{mode}')`: one key (one "
                     f"`learn_one` per key, {m:,} keys)", m, add_keys))
    return rows


def _memory_row(i: int, n: int) -> None:
    """Child process of bench_memory: measure row i alone in a fresh interpreter (so RSS
    growth is not hidden by memory freed by an earlier row). Prints "traced rss"."""
    import gc

    label, k, make = _memory_rows(n)[i]
    base = make(1)  # imports, the first network/trainer: not part of the per-object cost
    del base
    gc.collect()
    tracemalloc.start()
    t0 = tracemalloc.get_traced_memory()[0]
    rss0 = _rss_kib()
    keep = make(k)
    t1 = tracemalloc.get_traced_memory()[0]
    rss1 = _rss_kib()
    tracemalloc.stop()
    del keep
    print(f"{(t1 - t0) / k:.0f} {(rss1 - rss0) * 1024 / k:.0f}")


def bench_memory(args: argparse.Namespace) -> None:
    import subprocess

    n = args.memory_objects
    print(f"\n### Memory (measured, each row in a fresh process: traced = tracemalloc growth "
          f"(Python objects + NumPy buffers, which NumPy reports to tracemalloc) / number of "
          f"objects kept alive; RSS = resident-set growth / number, counts only touched "
          f"pages)\n")
    print("| object | traced bytes each | RSS bytes each |")
    print("|---|---|---|")
    for i, (label, _, _) in enumerate(_memory_rows(n)):
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--memory-row", str(i),
                            "--memory-objects", str(n)], capture_output=True, text=True,
                           check=True)
        tb, rb = r.stdout.split()
        print(f"| {label} | {tb} | {rb} |", flush=True)
    net = sr.LSTM(8, 64, output_size=1, seed=0)
    s = net.new_state()
    x = np.ones(8, np.float32)
    out = np.empty(1, np.float32)
    steps = args.memory_steps
    tracemalloc.start()
    for _ in range(1000):
        net.step(x, s, out)
    snap0 = tracemalloc.take_snapshot()
    rss0 = _rss_kib()
    for _ in range(steps):
        net.step(x, s, out)
    snap1 = tracemalloc.take_snapshot()
    rss1 = _rss_kib()
    tracemalloc.stop()
    grown = sum(st.size_diff for st in snap1.compare_to(snap0, "filename"))
    print(f"\n{steps:,} steps with `out=`: traced Python allocations grew by {grown} bytes, "
          f"RSS {rss0} KiB → {rss1} KiB.")


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return "load average " + ", ".join(f.read().split()[:3])
    except OSError:
        return "load average unknown"


def _rss_kib() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="the whole D × H × dtype grid")
    ap.add_argument("--quick", action="store_true", help="float32 only, fewer rounds")
    ap.add_argument("--only", choices=["step", "many", "train", "flops", "memory"],
                    action="append")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall: time.perf_counter; cpu: time.process_time (leaves out time "
                         "other processes hold the core; every column is single-threaded)")
    ap.add_argument("--memory-steps", type=int, default=1_000_000)
    ap.add_argument("--memory-objects", type=int, default=20_000)
    ap.add_argument("--memory-row", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.rounds = min(args.rounds, 5)
        args.memory_steps = min(args.memory_steps, 100_000)
        args.memory_objects = min(args.memory_objects, 2_000)
    if args.clock == "cpu":
        CLOCK[0] = time.process_time
    if args.memory_row is not None:
        _memory_row(args.memory_row, args.memory_objects)
        return 0
    print(f"streamrnn {sr.__version__} from {os.path.dirname(os.path.abspath(sr.__file__))}, "
          f"numpy {np.__version__}, "
          f"torch {torch.__version__ if torch is not None else 'not installed'}, "
          f"Python {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs, BLAS threads {os.environ.get('OPENBLAS_NUM_THREADS')}, "
          f"clock {args.clock}, {_loadavg()}")
    print(f"command: python benchmarks/bench.py {' '.join(sys.argv[1:])}".rstrip())
    sections = args.only or ["step", "many", "train", "flops", "memory"]
    for name in sections:
        globals()["bench_" + name](args)
    print(f"\nat end: {_loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
